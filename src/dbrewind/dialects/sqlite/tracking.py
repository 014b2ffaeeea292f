"""Installing tracking: the tables of ``install.sql``, a baseline copy per table with rows,
and three triggers per table that mark it dirty.

The SQL that depends on the schema is rendered by pure functions, which need
no database and can be tested as they are:

* :func:`trigger_sql` — the ``CREATE TRIGGER`` statements of one table.
* :func:`baseline_sql` — the copy of one table's rows, and the ``INSERT``
  that restores them.

The functions taking a connection run that SQL: :func:`_install` (the whole
installation, in one transaction), :func:`_drop_own_objects`,
:func:`_capture_baseline`, :func:`_create_triggers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from ...exceptions import SchemaChangedError
from ..base import SchemaInfo, Table, quote, short_name
from ._sql import (
    _OWN_TABLE_GLOBS,
    _OWN_TRIGGER_GLOBS,
    _SCHEMA_VERSION_KEY,
    BASELINE_PREFIX,
    MARKS,
    REGISTRY,
    STATE,
    TRIGGER_PREFIXES,
    _display,
    _ident,
    _literal,
    _statements,
    _transaction,
)
from .catalog import _flag_user_triggers, _RawTable, _sequences, _user_tables

__all__ = [
    "BaselineSQL",
    "_capture_baseline",
    "_create_triggers",
    "_drop_own_objects",
    "_install",
    "_store_schema_version",
    "baseline_sql",
    "own_tables_sql",
    "trigger_sql",
]

_ROWID_NAMES = ("rowid", "oid", "_rowid_")


# ------------------------------------------------------------ rendering (pure)
def own_tables_sql() -> tuple[str, ...]:
    """The ``CREATE TABLE`` statements of the installation's own tables (``install.sql``)."""
    return _statements("install.sql")


def trigger_sql(table: str) -> tuple[str, ...]:
    """The three ``AFTER INSERT/UPDATE/DELETE`` triggers that mark ``table`` dirty.

    Each inserts the mark only ``WHEN NOT EXISTS`` one, so after the first
    row a write costs one index probe (see the package docstring for why not
    ``INSERT OR IGNORE``).
    """
    marks = _ident(MARKS)
    name = _literal(table)
    return tuple(
        f"CREATE TRIGGER {_ident(short_name(prefix, table))} "
        f"AFTER {event} ON {_ident(table)} FOR EACH ROW "
        f"WHEN NOT EXISTS (SELECT 1 FROM {marks} WHERE tbl = {name}) "
        f"BEGIN INSERT INTO {marks} (tbl) VALUES ({name}) ON CONFLICT DO NOTHING; END"
        for event, prefix in TRIGGER_PREFIXES.items()
    )


@dataclass(frozen=True)
class BaselineSQL:
    """The SQL that copies one table's rows and the ``INSERT`` that puts them back."""

    copy: str
    """The copy's name: the prefix plus the table's name (shortened, with a hash)."""
    drop: str
    """``DROP TABLE IF EXISTS`` the copy (one left by an earlier capture)."""
    create: str
    """``CREATE TABLE <copy> AS SELECT ...``: the rows, with the ``rowid`` when it has one."""
    restore: str
    """``INSERT INTO <table> (...) SELECT * FROM <copy>``."""


def _rowid_name(columns: Sequence[str]) -> str | None:
    """A name that reaches the rowid of a table with these (all) columns, if one is free."""
    taken = {c.lower() for c in columns}
    return next((n for n in _ROWID_NAMES if n not in taken), None)


def baseline_sql(
    table: Table,
    all_columns: Sequence[str],
    *,
    without_rowid: bool,
    prefix: str = BASELINE_PREFIX,
) -> BaselineSQL:
    """The copy of ``table``'s columns (``table.columns``, those a restore inserts).

    ``all_columns``: every column of the table, hidden ones included, which
    decides the name the ``rowid`` is reached by; a rowid table's copy keeps
    it, so rows come back with the same ``rowid``.
    """
    q_table = _ident(table.name)
    select = [_ident(c) for c in table.columns]
    insert = list(select)
    rowid = None if without_rowid else _rowid_name(all_columns)
    if rowid is not None:
        select.insert(0, f"{rowid} AS {_ident('dbrewind_rowid')}")
        insert.insert(0, rowid)
    copy = short_name(prefix, table.name)
    return BaselineSQL(
        copy=copy,
        drop=f"DROP TABLE IF EXISTS {_ident(copy)}",
        create=f"CREATE TABLE {_ident(copy)} AS SELECT {', '.join(select)} FROM {q_table}",
        restore=f"INSERT INTO {q_table} ({', '.join(insert)}) SELECT * FROM {_ident(copy)}",
    )


# ------------------------------------------------------------------- running it
def _install(conn: Connection, schema: SchemaInfo) -> None:
    """Replace any earlier installation, capture the baseline and add the triggers.

    Runs in one transaction: a crash part-way leaves the database as it was.
    """
    raw = _user_tables(conn)
    with _transaction(conn, "install tracking in"):
        _drop_own_objects(conn)
        for statement in own_tables_sql():
            conn.exec_driver_sql(statement)
        sequences = _sequences(conn)
        for table in schema.tables.values():
            info = raw.get(table.name)
            if info is None:
                raise SchemaChangedError(
                    f"Table {table.name!r} vanished from {_display(conn)} while tracking "
                    "was being installed. Prepare the database again."
                )
            baseline, restore = _capture_baseline(conn, table, info)
            conn.exec_driver_sql(
                f"INSERT INTO {quote(conn, REGISTRY)} "
                "(tbl, baseline, restore_sql, seq, auto_increment) VALUES (?, ?, ?, ?, ?)",
                (
                    table.name,
                    baseline,
                    restore,
                    sequences.get(table.name),
                    int(table.auto_increment),
                ),
            )
            _create_triggers(conn, table.name)
        _flag_user_triggers(conn)
        _store_schema_version(conn)


def _drop_own_objects(conn: Connection) -> None:
    """Drop every tracking trigger and table (not ``dbrewind_meta``); inside a transaction."""
    for kind, globs in (("trigger", _OWN_TRIGGER_GLOBS), ("table", _OWN_TABLE_GLOBS)):
        names = " OR ".join("name GLOB ?" for _ in globs)
        rows = conn.exec_driver_sql(
            f"SELECT name FROM sqlite_master WHERE type = '{kind}' AND ({names})", globs
        ).all()
        for (name,) in rows:
            conn.exec_driver_sql(f"DROP {kind.upper()} IF EXISTS {quote(conn, name)}")


def _capture_baseline(
    conn: Connection, table: Table, info: _RawTable, prefix: str = BASELINE_PREFIX
) -> tuple[str | None, str]:
    """Copy the table's rows when it has any; return (copy name, restore INSERT or '').

    The copy is named ``prefix`` + the table's name (shortened, with a hash).
    """
    q_table = quote(conn, table.name)
    if conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {q_table})").scalar() == 0:
        return None, ""
    all_columns = [
        row[0]
        for row in conn.exec_driver_sql("SELECT name FROM pragma_table_xinfo(?)", (table.name,))
    ]
    plan = baseline_sql(table, all_columns, without_rowid=info.without_rowid, prefix=prefix)
    conn.exec_driver_sql(plan.drop)
    conn.exec_driver_sql(plan.create)
    return plan.copy, plan.restore


def _create_triggers(conn: Connection, table: str) -> None:
    for statement in trigger_sql(table):
        conn.exec_driver_sql(statement)


def _store_schema_version(conn: Connection) -> None:
    conn.exec_driver_sql(
        f"INSERT OR REPLACE INTO {quote(conn, STATE)} (key, value) "
        "SELECT ?, schema_version FROM pragma_schema_version",
        (_SCHEMA_VERSION_KEY,),
    )
