"""Rewinding, and pushing and popping baseline layers: each in one ``BEGIN IMMEDIATE``
transaction with foreign keys and ``synchronous`` off (see the package docstring)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ...exceptions import SchemaChangedError
from ..base import RewindResult, Table, quote
from ._sql import (
    _AUTOINCREMENT,
    _SCHEMA_VERSION_KEY,
    BASELINE_PREFIX,
    LAYERS,
    MARKS,
    REGISTRY,
    STATE,
    _display,
    _not_prepared,
    _transaction,
)
from .catalog import (
    _columns,
    _flag_user_triggers,
    _marks,
    _RawTable,
    _sequences,
    _untracked,
    _user_tables,
    _user_triggers,
)
from .tracking import _capture_baseline, _create_triggers, _store_schema_version

__all__ = [
    "_RECEIPT_SQL",
    "_Tracked",
    "_layer_depth",
    "_nothing_to_do",
    "_pop_layers",
    "_push_locked",
    "_rewind_locked",
    "_write_transaction",
]

_RECREATED_SAVEPOINT = "dbrewind_recreated"


@dataclass(frozen=True)
class _Tracked:
    """One row of ``dbrewind_tables``."""

    name: str
    restore: str | None
    seq: int | None
    auto_increment: bool
    user_triggers: bool


@contextmanager
def _write_transaction(conn: Connection, action: str, lock_timeout: float | None) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` with foreign keys and ``synchronous`` off.

    The busy timeout is ``lock_timeout`` (the dialect's) meanwhile. The pragmas
    cannot change inside a transaction, so they are switched around it and put
    back afterwards, whatever happens.
    """
    foreign_keys, synchronous, busy = conn.exec_driver_sql(
        "SELECT f.foreign_keys, s.synchronous, b.timeout FROM pragma_foreign_keys AS f, "
        "pragma_synchronous AS s, pragma_busy_timeout AS b"
    ).one()
    wait = busy
    if lock_timeout is not None:
        wait = max(1, round(lock_timeout * 1000))
    if foreign_keys:
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    if synchronous:
        conn.exec_driver_sql("PRAGMA synchronous = OFF")
    if wait != busy:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait)}")
    try:
        with _transaction(conn, action, lock_timeout=wait / 1000):
            yield
    finally:
        if foreign_keys:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        if synchronous:
            conn.exec_driver_sql(f"PRAGMA synchronous = {int(synchronous)}")
        if wait != busy:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy)}")


_RECEIPT_SQL = (
    f'SELECT NOT EXISTS (SELECT 1 FROM "{MARKS}") AND CAST(schema_version AS TEXT) = '
    f"(SELECT CAST(value AS TEXT) FROM \"{STATE}\" WHERE key = '{_SCHEMA_VERSION_KEY}') "
    "FROM pragma_schema_version"
)
""":func:`_nothing_to_do` as one literal query (for the sandbox's connection)."""


def _nothing_to_do(conn: Connection) -> bool:
    """One query: no marks and no DDL since install (or the last rewind)."""
    try:
        row = conn.exec_driver_sql(
            f"SELECT EXISTS (SELECT 1 FROM {quote(conn, MARKS)}), schema_version, "
            f"(SELECT value FROM {quote(conn, STATE)} WHERE key = ?) "
            "FROM pragma_schema_version",
            (_SCHEMA_VERSION_KEY,),
        ).one()
    except DBAPIError as exc:
        raise _not_prepared(conn) from exc
    return not row[0] and row[1] == row[2]


def _registry(conn: Connection, *, marked_only: bool) -> dict[str, _Tracked]:
    """Rows of ``dbrewind_tables``: all of them, or those of the marked tables."""
    sql = (
        f"SELECT tbl, restore_sql, seq, auto_increment, user_triggers FROM {quote(conn, REGISTRY)}"
    )
    if marked_only:
        sql += f" WHERE tbl IN (SELECT tbl FROM {quote(conn, MARKS)})"
    return {
        name: _Tracked(name, restore or None, seq, bool(auto), bool(triggers))
        for name, restore, seq, auto, triggers in conn.exec_driver_sql(sql)
    }


def _rewind_locked(
    conn: Connection, *, reset_sequences: bool, also: Collection[str] = ()
) -> RewindResult:
    """The rewind proper, inside ``BEGIN IMMEDIATE`` with foreign keys off.

    ``also``: tracked tables to rewind although they are not marked (those of
    popped layers).
    """
    version_row = conn.exec_driver_sql(
        f"SELECT schema_version, (SELECT value FROM {quote(conn, STATE)} WHERE key = ?) "
        "FROM pragma_schema_version",
        (_SCHEMA_VERSION_KEY,),
    ).one()
    created: list[str] = []
    dropped: list[str] = []
    recreated: list[str] = []
    current: dict[str, _RawTable] = {}
    if version_row[0] == version_row[1]:
        # No DDL since install: every marked table is a tracked table that still exists.
        registry = _registry(conn, marked_only=True)
        if also:
            everything = _registry(conn, marked_only=False)
            registry.update((name, everything[name]) for name in also if name in everything)
        to_rewind = sorted(registry)
    else:
        _flag_user_triggers(conn)
        registry = _registry(conn, marked_only=False)
        dirty = set(_marks(conn)) | set(also)
        current = _user_tables(conn)
        created = sorted(set(current) - set(registry))
        dropped = sorted(set(registry) - set(current))
        recreated = _untracked(conn, [n for n in registry if n in current])
        dirty.update(recreated)
        to_rewind = sorted(n for n in dirty if n in registry and n not in dropped)
    user_triggers = _user_triggers(conn, [n for n in to_rewind if registry[n].user_triggers])
    for trigger_name, _sql in user_triggers:
        conn.exec_driver_sql(f"DROP TRIGGER {quote(conn, trigger_name)}")
    deleted: dict[str, int] = {}
    unfit: list[str] = []
    for name in to_rewind:
        entry = registry[name]
        if name in recreated:
            count = _restore_recreated(conn, entry, current[name], reset_sequences)
            if count is None:
                unfit.append(name)
            else:
                deleted[name] = count
            continue
        try:
            deleted[name] = _restore_table(conn, entry, reset_sequences=reset_sequences)
        except DBAPIError as exc:
            raise SchemaChangedError(
                f"Could not put table {name!r} of {_display(conn)} back to its baseline: "
                f"{exc.orig}. The table's definition changed since tracking was installed; "
                "prepare the database again (Rewinder.prepare / pytest --dbrewind-rebuild)."
            ) from exc
    for _name, sql in user_triggers:
        conn.exec_driver_sql(sql)
    conn.exec_driver_sql(f"DELETE FROM {quote(conn, MARKS)}")
    if not created and not dropped and not unfit:
        _store_schema_version(conn)
    return RewindResult(
        tables=tuple(n for n in to_rewind if n not in unfit),
        deleted=deleted,
        created_tables=tuple(created),
        dropped_tables=tuple(sorted([*dropped, *unfit])),
        recreated_tables=tuple(n for n in recreated if n not in unfit),
    )


def _restore_table(conn: Connection, entry: _Tracked, *, reset_sequences: bool) -> int:
    """Empty the table, insert its baseline rows, put its counter back; rows deleted."""
    deleted: int = conn.exec_driver_sql(f"DELETE FROM {quote(conn, entry.name)}").rowcount
    if entry.restore is not None:
        conn.exec_driver_sql(entry.restore)
    if reset_sequences and entry.auto_increment:
        _restore_sequence(conn, entry.name, entry.seq)
    return deleted


def _restore_recreated(
    conn: Connection, entry: _Tracked, info: _RawTable, reset_sequences: bool
) -> int | None:
    """Track a table created again under its name and restore its baseline rows.

    Returns the rows deleted, or None (and changes nothing) when the baseline
    rows do not fit the table as it is now.
    """
    savepoint = quote(conn, _RECREATED_SAVEPOINT)
    conn.exec_driver_sql(f"SAVEPOINT {savepoint}")
    try:
        entry = _retrack(conn, entry, info)
        deleted = _restore_table(conn, entry, reset_sequences=reset_sequences)
    except DBAPIError:
        conn.exec_driver_sql(f"ROLLBACK TO {savepoint}")
        conn.exec_driver_sql(f"RELEASE {savepoint}")
        return None
    conn.exec_driver_sql(f"RELEASE {savepoint}")
    return deleted


def _retrack(conn: Connection, entry: _Tracked, info: _RawTable) -> _Tracked:
    """Give a recreated table its triggers back and record whether it has AUTOINCREMENT now."""
    _create_triggers(conn, entry.name)
    auto_increment = bool(_AUTOINCREMENT.search(info.sql))
    if auto_increment == entry.auto_increment:
        return entry
    conn.exec_driver_sql(
        f"UPDATE {quote(conn, REGISTRY)} SET auto_increment = ? WHERE tbl = ?",
        (int(auto_increment), entry.name),
    )
    return replace(entry, auto_increment=auto_increment)


def _layer_depth(conn: Connection) -> int:
    depth = conn.exec_driver_sql(f"SELECT max(depth) FROM {quote(conn, LAYERS)}").scalar()
    return int(depth or 0)


def _push_locked(conn: Connection) -> tuple[str, ...]:
    """The push proper, inside ``BEGIN IMMEDIATE``: capture the dirty tables in a new layer."""
    version, stored = conn.exec_driver_sql(
        f"SELECT schema_version, (SELECT value FROM {quote(conn, STATE)} WHERE key = ?) "
        "FROM pragma_schema_version",
        (_SCHEMA_VERSION_KEY,),
    ).one()
    registry = _registry(conn, marked_only=False)
    current = _user_tables(conn)
    # a marked table that is gone cannot be captured; the next rewind reports it
    capture = {n for n in _marks(conn) if n in registry and n in current}
    created: list[str] = []
    dropped: list[str] = []
    if version != stored:
        _flag_user_triggers(conn)
        created = sorted(set(current) - set(registry))
        dropped = sorted(set(registry) - set(current))
        for name in _untracked(conn, [n for n in registry if n in current]):
            _retrack(conn, registry[name], current[name])
            capture.add(name)
    captured = tuple(sorted(capture))
    if captured:
        depth = _layer_depth(conn) + 1
        prefix = f"{BASELINE_PREFIX[:-1]}{depth}_"
        sequences = _sequences(conn)
        layers, q_registry = quote(conn, LAYERS), quote(conn, REGISTRY)
        for name in captured:
            table = Table(key=name, name=name, columns=_columns(conn, name))
            copy, restore = _capture_baseline(conn, table, current[name], prefix)
            conn.exec_driver_sql(
                f"INSERT INTO {layers} (depth, tbl, layer_copy, baseline, restore_sql, seq) "
                f"SELECT ?, tbl, ?, baseline, restore_sql, seq FROM {q_registry} WHERE tbl = ?",
                (depth, copy, name),
            )
            conn.exec_driver_sql(
                f"UPDATE {q_registry} SET baseline = ?, restore_sql = ?, seq = ? WHERE tbl = ?",
                (copy, restore, sequences.get(name), name),
            )
        marks = ", ".join("?" for _ in captured)
        conn.exec_driver_sql(f"DELETE FROM {quote(conn, MARKS)} WHERE tbl IN ({marks})", captured)
    if not created and not dropped:
        _store_schema_version(conn)  # the layer's copies are DDL of dbrewind's own
    return captured


def _pop_layers(conn: Connection, depth: int) -> frozenset[str]:
    """Drop the layers above ``depth``, highest first, putting back the entries they kept.

    Returns the tables they held; inside ``BEGIN IMMEDIATE``.
    """
    layers = quote(conn, LAYERS)
    rows = conn.exec_driver_sql(
        f"SELECT tbl, layer_copy, baseline, restore_sql, seq FROM {layers} "
        "WHERE depth > ? ORDER BY depth DESC",
        (depth,),
    ).all()
    for name, copy, baseline, restore, seq in rows:
        if copy is not None:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(conn, copy)}")
        conn.exec_driver_sql(
            f"UPDATE {quote(conn, REGISTRY)} SET baseline = ?, restore_sql = ?, seq = ? "
            "WHERE tbl = ?",
            (baseline, restore, seq, name),
        )
    conn.exec_driver_sql(f"DELETE FROM {layers} WHERE depth > ?", (depth,))
    return frozenset(row[0] for row in rows)


def _restore_sequence(conn: Connection, table: str, seq: int | None) -> None:
    conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
    if seq is not None:
        conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))
