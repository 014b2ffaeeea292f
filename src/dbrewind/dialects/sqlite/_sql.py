"""The names of dbrewind's objects in a SQLite database, quoting, the ``.sql`` files, and
the transaction and error helpers every part of the dialect shares.

The static SQL lives in ``.sql`` files beside this module; :func:`_statements`
reads one. A file may start with a header: ``--`` comment lines up to the
first blank line, which document it and are never sent. After it comes one
statement per line, each ending in ``;`` (which is not sent either).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.resources import files

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..._url import DatabaseURL
from ...exceptions import DbrewindError, LockTimeoutError, NotPreparedError
from ..base import LOCK_ADVICE, describe_wait

__all__ = [
    "BASELINE_PREFIX",
    "LAYERS",
    "LIFECYCLE",
    "MARKS",
    "META",
    "REGISTRY",
    "STATE",
    "TRIGGER_PREFIXES",
    "_AUTOINCREMENT",
    "_MARK_CREATED",
    "_OWN_TABLE_GLOBS",
    "_OWN_TRIGGER_GLOBS",
    "_SCHEMA_VERSION_KEY",
    "_WITHOUT_ROWID",
    "_display",
    "_ident",
    "_literal",
    "_not_prepared",
    "_require",
    "_statements",
    "_table_exists",
    "_transaction",
]

MARKS = "dbrewind_marks"
REGISTRY = "dbrewind_tables"
STATE = "dbrewind_state"
LIFECYCLE = "dbrewind_lifecycle"
LAYERS = "dbrewind_layers"
META = "dbrewind_meta"
BASELINE_PREFIX = "dbrewind_b_"
TRIGGER_PREFIXES = {"INSERT": "dbrewind_i_", "UPDATE": "dbrewind_u_", "DELETE": "dbrewind_d_"}

_OWN_TABLE_GLOBS = (
    MARKS,
    REGISTRY,
    STATE,
    LIFECYCLE,
    LAYERS,
    BASELINE_PREFIX + "*",
    "dbrewind_b[0-9]*",  # the copies of baseline layers: dbrewind_b<depth>_*
)
_OWN_TRIGGER_GLOBS = tuple(prefix + "*" for prefix in TRIGGER_PREFIXES.values())
_SCHEMA_VERSION_KEY = "schema_version"
_AUTOINCREMENT = re.compile(r"\bAUTOINCREMENT\b", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)


def _ident(name: str) -> str:
    """``name`` as an SQLite identifier, always quoted (double quotes doubled).

    What :func:`dbrewind.dialects.base.quote` gives on an SQLite connection,
    without one: for the SQL rendered by pure functions.
    """
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """``value`` as an SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@cache
def _statements(name: str) -> tuple[str, ...]:
    """The statements of the ``.sql`` file ``name`` beside this module, header left out."""
    text = (files(__package__) / name).read_text(encoding="utf-8")
    if text.startswith("--"):
        _header, _, text = text.partition("\n\n")
    return tuple(line.removesuffix(";") for line in text.splitlines() if line.strip())


_MARK_CREATED = _statements("mark_created.sql")
"""The creation mark: ``dbrewind_meta`` and its ``created_by`` row."""


def _display(conn: Connection) -> str:
    return DatabaseURL(conn.engine.url, "sqlite").display()


def _not_prepared(conn: Connection) -> NotPreparedError:
    return NotPreparedError(
        f"dbrewind tracking is not installed in {_display(conn)}. "
        "Call Rewinder.prepare() (or install()) once before tests run."
    )


def _table_exists(conn: Connection, name: str) -> bool:
    row = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).first()
    return row is not None


def _require(conn: Connection, table: str) -> None:
    """Raise :class:`NotPreparedError` unless tracking, with ``table``, is installed."""
    if _table_exists(conn, table):
        return
    if not _table_exists(conn, REGISTRY):
        raise _not_prepared(conn)
    raise NotPreparedError(
        f"The dbrewind tracking in {_display(conn)} was installed by an older dbrewind, "
        f"without {table!r}. Install it again (Rewinder.prepare() or install())."
    )


@contextmanager
def _transaction(
    conn: Connection, action: str, *, lock_timeout: float | None = None
) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on an AUTOCOMMIT connection, ``ROLLBACK`` on error.

    With ``lock_timeout`` (the busy timeout in force, seconds), a write lock
    that another connection keeps longer raises :class:`LockTimeoutError`.
    """
    dbapi = conn.connection.dbapi_connection
    if getattr(dbapi, "in_transaction", False):
        raise DbrewindError(
            f"Cannot {action} {_display(conn)}: its connection is inside a transaction "
            "(an in-memory database shares one connection with the application). "
            "Commit or roll back the application's transaction before dbrewind runs."
        )
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except DBAPIError as exc:
        if lock_timeout is not None and "locked" in str(exc.orig):
            raise LockTimeoutError(
                f"Cannot {action} {_display(conn)}: waited {describe_wait(lock_timeout)} for "
                f"a lock that another connection holds, the write lock ({exc.orig}); nothing "
                f"changed. SQLite cannot say which connection holds it. {LOCK_ADVICE}"
            ) from exc
        raise DbrewindError(
            f"Cannot {action} {_display(conn)}: could not take the write lock ({exc.orig}). "
            "Another connection holds a write transaction; commit or close it first."
        ) from exc
    try:
        yield
    except BaseException:
        if getattr(dbapi, "in_transaction", True):  # SQLite may have rolled back already
            conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")
