"""Reading the schema: the tables dbrewind tracks, their columns, foreign keys and counters,
and which triggers are dbrewind's and which the user's."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, CursorResult

from ..base import ForeignKey, SchemaInfo, Table, quote, short_name
from ._sql import (
    _AUTOINCREMENT,
    _OWN_TRIGGER_GLOBS,
    _WITHOUT_ROWID,
    MARKS,
    REGISTRY,
    TRIGGER_PREFIXES,
    _table_exists,
)

__all__ = [
    "_RawTable",
    "_columns",
    "_flag_user_triggers",
    "_inspect",
    "_marks",
    "_sequences",
    "_untracked",
    "_user_tables",
    "_user_triggers",
]


@dataclass(frozen=True)
class _RawTable:
    name: str
    sql: str
    without_rowid: bool


def _inspect(conn: Connection) -> SchemaInfo:
    """Ordinary and ``WITHOUT ROWID`` tables of ``main``, their columns and foreign keys."""
    raw = _user_tables(conn)
    by_lower = {name.lower(): name for name in raw}
    columns: dict[str, list[str]] = {name: [] for name in raw}
    rows = conn.exec_driver_sql(
        "SELECT m.name, c.name, c.hidden FROM sqlite_master AS m "
        "JOIN pragma_table_xinfo(m.name) AS c WHERE m.type = 'table' ORDER BY m.name, c.cid"
    )
    for table, column, hidden in rows:
        if table in columns and hidden == 0:
            columns[table].append(column)
    fks: dict[tuple[str, int], ForeignKey] = {}
    rows = conn.exec_driver_sql(
        'SELECT m.name, f.id, f."table", f.on_delete FROM sqlite_master AS m '
        "JOIN pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table'"
    )
    for child, fk_id, parent, on_delete in rows:
        target = by_lower.get(str(parent).lower())
        if child in raw and target is not None:
            fks[(child, fk_id)] = ForeignKey(child=child, parent=target, on_delete=on_delete)
    tables = {
        name: Table(
            key=name,
            name=name,
            columns=tuple(columns[name]),
            auto_increment=bool(_AUTOINCREMENT.search(info.sql)),
        )
        for name, info in sorted(raw.items())
    }
    ordered = tuple(fks[k] for k in sorted(fks))
    return SchemaInfo(tables=tables, foreign_keys=ordered)


def _user_tables(conn: Connection) -> dict[str, _RawTable]:
    """The tables dbrewind tracks, by name (see the package docstring for what is left out)."""
    found: dict[str, _RawTable] = {}
    if sqlite3.sqlite_version_info >= (3, 37, 0):
        rows: Sequence[Any] = conn.exec_driver_sql(
            "SELECT l.name, l.wr, m.sql FROM pragma_table_list AS l "
            "JOIN sqlite_master AS m ON m.name = l.name AND m.type = 'table' "
            "WHERE l.schema = 'main' AND l.type = 'table'"
        ).all()
        for name, wr, sql in rows:
            found[name] = _RawTable(name, sql or "", bool(wr))
    else:  # pragma: no cover - SQLite older than 3.37 (Python builds with an old library)
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        ).all()
        virtual = [n for n, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL")]
        for name, sql in rows:
            if name in virtual or any(name.startswith(v + "_") for v in virtual):
                continue
            found[name] = _RawTable(name, sql or "", bool(_WITHOUT_ROWID.search(sql or "")))
    return {
        name: info
        for name, info in found.items()
        if not name.lower().startswith(("sqlite_", "dbrewind_"))
    }


def _sequences(conn: Connection) -> dict[str, int]:
    if not _table_exists(conn, "sqlite_sequence"):
        return {}
    rows = conn.exec_driver_sql("SELECT name, seq FROM sqlite_sequence")
    return {row[0]: row[1] for row in rows}


def _columns(conn: Connection, table: str) -> tuple[str, ...]:
    """The columns a baseline restore inserts (generated and hidden ones left out)."""
    rows = conn.exec_driver_sql(
        "SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid", (table,)
    )
    return tuple(row[0] for row in rows)


def _marks(conn: Connection) -> list[str]:
    """Names in ``dbrewind_marks``."""
    return [row[0] for row in conn.exec_driver_sql(f"SELECT tbl FROM {quote(conn, MARKS)}")]


def _untracked(conn: Connection, names: Sequence[str]) -> list[str]:
    """Which of these tables lack one of their tracking triggers (they were recreated)."""
    rows: CursorResult[Any] = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    )
    present = {row[0] for row in rows}
    return [
        name
        for name in names
        if any(short_name(p, name) not in present for p in TRIGGER_PREFIXES.values())
    ]


def _user_triggers(conn: Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the user's triggers on these tables."""
    if not tables:
        return []
    own = " AND ".join("name NOT GLOB ?" for _ in _OWN_TRIGGER_GLOBS)
    marks = ", ".join("?" for _ in tables)
    rows = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
        f"AND tbl_name COLLATE NOCASE IN ({marks}) AND {own} ORDER BY rowid",
        (*tables, *_OWN_TRIGGER_GLOBS),
    )
    return [(name, sql) for name, sql in rows]


def _flag_user_triggers(conn: Connection) -> None:
    """Record in ``dbrewind_tables`` which tables carry triggers of the user's own.

    Kept up to date at install and whenever DDL ran, so a rewind looks the
    triggers up only for tables that have some.
    """
    own = " AND ".join("m.name NOT GLOB ?" for _ in _OWN_TRIGGER_GLOBS)
    registry = quote(conn, REGISTRY)
    conn.exec_driver_sql(
        f"UPDATE {registry} SET user_triggers = EXISTS (SELECT 1 FROM sqlite_master AS m "
        f"WHERE m.type = 'trigger' AND m.tbl_name = {registry}.tbl COLLATE NOCASE AND {own})",
        _OWN_TRIGGER_GLOBS,
    )
