"""The names dbrewind's objects have, SQL quoting, running generated SQL, and the ``.sql`` files.

The static SQL of the installation lives in ``.sql`` files beside this module
(see :mod:`.tracking`). :func:`_render` reads one and fills its placeholders:

* A file may start with a header: ``--`` comment lines up to the first blank
  line. It documents the file (what it creates, its placeholders) and is
  never sent to the server.
* A placeholder is ``{{name}}`` (letters, digits, underscores). PL/pgSQL uses
  ``$`` for dollar quotes and ``%`` in ``format()``/``RAISE``, and SQL uses
  ``{}`` in array literals; ``{{`` occurs in none of them.
* Every placeholder of the file must be given, and every value given must be
  used; the values are substituted in one pass, so a value (a user's schema
  name, say) that holds ``{{x}}`` is never substituted again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from importlib.resources import files
from typing import Any

from sqlalchemy.engine import Connection

__all__ = [
    "CREATED_COMMENT",
    "TRACKING_SCHEMA",
    "_DDL_MARK",
    "_DDL_TAGS",
    "_EVENT_TRIGGER",
    "_EXTERNAL",
    "_FK_VIOLATION",
    "_LOCK_NOT_AVAILABLE",
    "_OBJECT_IN_USE",
    "_OWN_DDL",
    "_SEEN_PREFIX",
    "_TRIGGER",
    "_UNDEFINED",
    "_driver_state",
    "_ident",
    "_lit",
    "_qualified",
    "_query",
    "_render",
    "_run_script",
    "_text_array",
    "_transaction",
    "logger",
]

TRACKING_SCHEMA = "dbrewind"
"""The schema that holds every tracking object."""

CREATED_COMMENT = "dbrewind test database"
"""``COMMENT ON DATABASE`` text marking a database dbrewind created."""

_TRIGGER = "dbrewind_track"
_EVENT_TRIGGER = "dbrewind_ddl"
_SEEN_PREFIX = "dbrewind.seen_"
"""Transaction-local settings ``dbrewind.seen_<n>``: table n was marked in this transaction."""
_DDL_MARK = "!ddl"
"""The mark the event trigger leaves after DDL; marks starting with ``!`` are not tables."""
_EXTERNAL = "!external"
_OWN_DDL = "dbrewind.own_ddl"
"""Transaction-local setting: the DDL running now is dbrewind's own (no ``!ddl`` mark)."""
_DDL_TAGS = (
    "CREATE TABLE",
    "CREATE TABLE AS",
    "SELECT INTO",
    "DROP TABLE",
    "ALTER TABLE",
    "CREATE SCHEMA",
    "DROP SCHEMA",
    "DROP OWNED",
)
# SQLSTATEs translated at the boundary.
_UNDEFINED = {"42P01", "42883", "3F000"}  # undefined table / function / schema
_FK_VIOLATION = "23503"
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
_OBJECT_IN_USE = "55006"


def _lit(value: str) -> str:
    """A SQL string literal that reads the same whatever ``standard_conforming_strings`` is:
    one holding a backslash is an escape string, ``E'..'``, with the backslash doubled."""
    quoted = "'" + value.replace("'", "''") + "'"
    if "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted


logger = logging.getLogger("dbrewind")


def _ident(name: str) -> str:
    """A double-quoted identifier, always quoted."""
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str) -> str:
    return f"{_ident(schema)}.{_ident(name)}"


def _text_array(values: Sequence[str]) -> str:
    if not values:
        return "'{}'::text[]"
    return "ARRAY[" + ", ".join(_lit(v) for v in values) + "]::text[]"


def _driver_state(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg (``sqlstate``) or psycopg2 (``pgcode``) error."""
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def _run_script(conn: Connection, sql: str) -> None:
    """Run several statements in one round trip, bypassing parameter parsing.

    Generated SQL embeds user identifiers, which may contain ``%`` or ``:``;
    without parameters the driver sends the text as it is.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def _query(conn: Connection, sql: str) -> Any:
    """Rows of one generated query without parameters; a ``%`` in it stays a literal ``%``.

    SQLAlchemy hands the driver an empty parameter list, and psycopg (like
    psycopg2) then reads ``%`` as the start of a placeholder.
    """
    return conn.exec_driver_sql(sql.replace("%", "%%"))


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    """``BEGIN`` .. ``COMMIT`` on an AUTOCOMMIT connection; ``ROLLBACK`` on error."""
    conn.exec_driver_sql("BEGIN")
    try:
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@cache
def _load(name: str) -> str:
    """The text of the package's ``.sql`` file ``name``, without its header."""
    text = (files(__package__) / name).read_text(encoding="utf-8")
    if text.startswith("--"):
        _header, _, text = text.partition("\n\n")
    return text


def _render(name: str, **values: str) -> str:
    """The ``.sql`` file ``name`` with each ``{{key}}`` replaced by ``values[key]``."""
    template = _load(name)
    wanted = set(_PLACEHOLDER.findall(template))
    if wanted != set(values):
        raise AssertionError(
            f"{name} has the placeholders {sorted(wanted)}, but {sorted(values)} were given"
        )
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
