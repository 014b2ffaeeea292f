"""Names, quoting and the statement runner every part of the MySQL dialect shares.

The names of dbrewind's objects in a database, how identifiers and string
literals are written, :func:`_sql` (driver-level SQL), error numbers, the
transaction helper, and the runners that spread DDL over a few sessions.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import NullPool
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import DBAPIError

from ..._url import DatabaseURL
from ..base import describe_sessions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "CASCADE_TABLE",
    "CREATED_COMMENT",
    "LAYERS_TABLE",
    "MARKS_TABLE",
    "META_TABLE",
    "PREFIX",
    "RESET_PROCEDURE",
    "REWIND_PROCEDURE",
    "SIGNATURE_TABLE",
    "STATE_TABLE",
    "TABLES_TABLE",
    "VERSION_SQL",
    "_COPY_DEPTH",
    "_DEFINER",
    "_LOCK_MAX_WAIT",
    "_LOCK_NAME_LIMIT",
    "_LOCK_WAITS_SQL",
    "_LOCK_WAIT_TIMEOUT",
    "_MISSING_ERRNOS",
    "_OPEN_TRANSACTIONS_SQL",
    "_PAUSE_VAR",
    "_SCHEMA_CHANGED_ERRNOS",
    "_STATE_KEY_LENGTH",
    "_TRIGGER_TAGS",
    "_autocommit_engine",
    "_current_database",
    "_empty_tables",
    "_errno",
    "_first_line",
    "_ident",
    "_is_mariadb",
    "_lit",
    "_open_transactions",
    "_row_counts",
    "_run_batches",
    "_sql",
    "_transaction",
    "takes_returning",
]

PREFIX = "dbrewind_"
"""Every tracking object's name starts with this; user tables with it are ignored."""
MARKS_TABLE = "dbrewind_marks"
TABLES_TABLE = "dbrewind_tables"
CASCADE_TABLE = "dbrewind_cascade"
META_TABLE = "dbrewind_meta"
"""MySQL (no schema comments): holds the creation mark; survives :meth:`uninstall`."""
STATE_TABLE = "dbrewind_state"
"""Key/value state of the installation (:meth:`MySQLDialect.write_state`)."""
LAYERS_TABLE = "dbrewind_layers"
"""Per pushed layer and table: the table's ``dbrewind_tables`` row before the push."""
SIGNATURE_TABLE = "dbrewind_signature"
"""One row: the table list's signature at install, which the rewind compares with."""
REWIND_PROCEDURE = "dbrewind_rewind"
RESET_PROCEDURE = "dbrewind_reset_counters"
"""Runs the DDL that puts ``AUTO_INCREMENT`` counters back (called by the rewind, or in the
background under ``LOCK TABLES``: see :class:`_CounterReset`)."""
CREATED_COMMENT = "dbrewind test database"
"""``CREATE DATABASE .. COMMENT`` text marking a database dbrewind created (MariaDB)."""

_PAUSE_VAR = "@dbrewind_paused"
_STATE_KEY_LENGTH = 255
_LOCK_NAME_LIMIT = 64
"""``GET_LOCK`` names: at most 64 characters on MySQL 8 (MariaDB takes longer ones)."""
_LOCK_MAX_WAIT = 31_536_000
"""A year: the longest ``GET_LOCK`` wait (MariaDB returns NULL for a negative one), and the
lock connection's ``wait_timeout``, so the server does not end an idle lease."""
_COPY_DEPTH = re.compile(r"dbrewind_b([0-9]*)_")
_TRIGGER_TAGS = ("i", "u", "d")
_SIMPLE = re.compile(r"[A-Za-z0-9_ $#@.,:;!?()+\-*/=<>\[\]{}|~^%&]*")
_DEFINER = re.compile(r"\s+DEFINER\s*=\s*(`[^`]*`|'[^']*'|[^@\s]+)@(`[^`]*`|'[^']*'|\S+)", re.I)
_SCHEMA_CHANGED_ERRNOS = {1054, 1146}  # unknown column, table doesn't exist
_MISSING_ERRNOS = {1305}  # procedure does not exist
_LOCK_WAIT_TIMEOUT = 1205  # row lock (innodb_lock_wait_timeout) or metadata lock
_LOCK_WAITS_SQL = (
    "SELECT r.trx_mysql_thread_id, LEFT(COALESCE(r.trx_query, ''), 300), "
    "TIMESTAMPDIFF(MICROSECOND, r.trx_wait_started, NOW(6)) / 1e6 "
    "FROM information_schema.INNODB_LOCK_WAITS w "
    "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
    "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id "
    "WHERE b.trx_mysql_thread_id = {session} ORDER BY r.trx_mysql_thread_id"
)
"""InnoDB sessions whose statement waits for a row lock the session ``{session}``
holds: thread id, statement, seconds waited."""
_OPEN_TRANSACTIONS_SQL = (
    "SELECT t.trx_mysql_thread_id, COALESCE(p.COMMAND, ''), "
    "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), LEFT(COALESCE(t.trx_query, ''), 120) "
    "FROM information_schema.INNODB_TRX t "
    "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
    "WHERE t.trx_mysql_thread_id <> CONNECTION_ID() "
    "AND (p.DB IS NULL OR p.DB = DATABASE()) "
    "ORDER BY t.trx_started LIMIT 5"
)


def _ident(name: str) -> str:
    """Backtick-quote an identifier (the same rule SQLAlchemy's MySQL preparer applies)."""
    return "`" + name.replace("`", "``") + "`"


def _sql(
    conn: Connection, statement: str, params: tuple[Any, ...] | None = None
) -> CursorResult[Unpack[tuple[Any, ...]]]:
    """Run driver-level SQL; without ``params``, a ``%`` in it stays a literal ``%``."""
    if params is None:
        # the MySQL drivers always %-format the statement (paramstyle "format")
        return conn.exec_driver_sql(statement.replace("%", "%%"))
    return conn.exec_driver_sql(statement, params)


def _lit(value: str) -> str:
    """A string literal that reads the same under any ``sql_mode``.

    Plain names become ``'name'``; anything with a quote or a backslash (whose
    meaning depends on ``NO_BACKSLASH_ESCAPES``) becomes a hex literal.
    """
    if _SIMPLE.fullmatch(value) and "'" not in value:
        return f"'{value}'"
    return f"_utf8mb4 X'{value.encode().hex()}'"


def _errno(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _autocommit_engine(url: DatabaseURL) -> Engine:
    """A short-lived engine of dbrewind's own, for creating and dropping databases."""
    from ..engines import make_engine

    return make_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__


def _open_transactions(conn: Connection) -> str:
    """Other sessions with an InnoDB transaction open (needs the PROCESS privilege)."""
    return describe_sessions(
        lambda: [
            f"id {thread}, {command or 'unknown state'}, transaction open for {seconds} s"
            + (f", running: {query!r}" if query else "")
            for thread, command, seconds, query in _sql(conn, _OPEN_TRANSACTIONS_SQL)
        ]
    )


def _is_mariadb(conn: Connection) -> bool:
    return bool(getattr(conn.dialect, "is_mariadb", False))


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    """One transaction on ``conn``, committed at the end, rolled back on an error.

    On dbrewind's ``AUTOCOMMIT`` connection with ``START TRANSACTION`` /
    ``COMMIT`` statements; on any other with the connection's own.
    """
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return
    _sql(conn, "START TRANSACTION")
    try:
        yield
    except BaseException:
        with suppress(DBAPIError):
            _sql(conn, "ROLLBACK")
        raise
    _sql(conn, "COMMIT")


def _current_database(conn: Connection) -> str:
    """``DATABASE()``, or ``?`` when the connection cannot say (for error messages)."""
    try:
        return str(_sql(conn, "SELECT DATABASE()").scalar() or "")
    except DBAPIError:  # pragma: no cover - the connection itself is broken
        return "?"


_DDL_WORKERS = 4
"""Connections that create/drop triggers at once: trigger DDL waits on file syncs,
so a few sessions overlap them (measured 1.3-1.9x faster for 180 triggers)."""


def _run_batches(
    conn: Connection, batches: Sequence[Sequence[tuple[str, tuple[Any, ...] | None]]]
) -> None:
    """Run each batch's statements in order on one session; batches spread over sessions.

    ``conn`` runs a share itself; the other shares run on short-lived
    ``AUTOCOMMIT`` connections of ``conn``'s engine. The first driver error is
    raised after every session has stopped.
    """
    batches = [b for b in batches if b]
    workers = min(_DDL_WORKERS, len(batches) // 8 + 1)
    if workers <= 1:
        for batch in batches:
            for statement, params in batch:
                _sql(conn, statement, params)
        return
    shares = [batches[i::workers] for i in range(workers)]
    errors: list[BaseException] = []

    def run(share: Sequence[Sequence[tuple[str, tuple[Any, ...] | None]]], own: bool) -> None:
        try:
            if own:
                target = conn
            else:
                target = conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                for batch in share:
                    if errors:
                        return
                    for statement, params in batch:
                        _sql(target, statement, params)
            finally:
                if not own:
                    target.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(share, False)) for share in shares[1:]]
    for thread in threads:
        thread.start()
    run(shares[0], True)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _empty_tables(conn: Connection, names: Sequence[str]) -> list[str]:
    """Which of ``names`` hold no rows: one non-locking ``EXISTS`` probe each, 200 a query."""
    empty: list[str] = []
    for start in range(0, len(names), 200):
        chunk = names[start : start + 200]
        probes = ", ".join(f"NOT EXISTS (SELECT 1 FROM {_ident(n)})" for n in chunk)
        row = _sql(conn, f"SELECT {probes}").one()
        empty.extend(n for n, hit in zip(chunk, row, strict=True) if hit)
    return empty


def _row_counts(
    conn: Connection, names: Sequence[str], schema: str | None = None
) -> dict[str, int]:
    """Row counts of ``names`` (in ``schema`` or the current database), one query per 200."""
    prefix = f"{_ident(schema)}." if schema is not None else ""
    counts: dict[str, int] = {}
    for start in range(0, len(names), 200):
        chunk = names[start : start + 200]
        sql = " UNION ALL ".join(
            f"SELECT {i}, COUNT(*) FROM {prefix}{_ident(n)}" for i, n in enumerate(chunk)
        )
        for i, count in _sql(conn, sql):
            counts[chunk[int(i)]] = int(count)
    return counts


VERSION_SQL = "SELECT VERSION()"
"""The server's version string (``10.11.6-MariaDB-0+deb12u1``, ``8.0.36``), for
:func:`takes_returning` on a connection that is not SQLAlchemy's (peewee's)."""


def takes_returning(version: str) -> bool:
    """Whether a server of this ``VERSION()`` takes ``INSERT .. RETURNING``: MariaDB
    10.5 and later; no MySQL."""
    if "mariadb" not in version.lower():
        return False
    parts = version.split("-", 1)[0].split(".")
    return tuple(int(p) for p in parts[:2] if p.isdigit()) >= (10, 5)
