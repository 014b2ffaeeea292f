"""SQLite: row-level tracking triggers, baseline copies in the same file, file-level databases.

What is tracked: every ordinary table and every ``WITHOUT ROWID`` table of the
``main`` schema. Views, SQLite's internal ``sqlite_*`` tables, dbrewind's own
``dbrewind_*`` tables, virtual tables (FTS, R*Tree, ...) and their shadow
tables are left alone: a virtual table's storage belongs to its module, and
rewriting the shadow tables behind the module's back could corrupt it.

Objects dbrewind adds to the database (all prefixed ``dbrewind_``):

* ``dbrewind_marks(tbl)``: one row per table written to since the last
  rewind. Three ``AFTER INSERT/UPDATE/DELETE ... FOR EACH ROW`` triggers per
  table (``dbrewind_i_*``, ``dbrewind_u_*``, ``dbrewind_d_*``) add the row.
  The trigger inserts only ``WHEN NOT EXISTS`` a mark, so after the first row
  a write costs one index probe. (``INSERT OR IGNORE`` in the trigger body
  would not do: SQLite lets the conflict clause of the statement that fired
  the trigger, e.g. ``INSERT OR ABORT``, override the one in the body.)
* ``dbrewind_b_*``: a copy of each table that held rows when tracking was
  installed (with the ``rowid`` for rowid tables, so rows come back with the
  same ``rowid`` and the next implicit id is what it was).
* ``dbrewind_tables``: the tracked tables, their baseline copy, the
  ``INSERT`` that restores it and the table's ``sqlite_sequence`` value
  (``AUTOINCREMENT`` counter) at install time.
* ``dbrewind_state``: the ``PRAGMA schema_version`` after install, so a rewind
  can tell cheaply whether any DDL ran since.
* ``dbrewind_meta``: the mark saying dbrewind created the database (kept by
  :meth:`SQLiteDialect.uninstall`).

A rewind runs in one ``BEGIN IMMEDIATE ... COMMIT`` on dbrewind's own
connection with ``PRAGMA foreign_keys`` switched off for its duration (the
pragma cannot change inside a transaction, and is put back afterwards), so
the order of the deletes does not matter and ``ON DELETE CASCADE`` does not
fire. ``PRAGMA synchronous`` is off for the rewind too, so its commit does
not wait for the disk (over ten times faster on a file database); a power
cut during a rewind can cost the test database, never the application's
data, and the application's own connections keep their setting. The user's
own triggers on the tables being rewound are dropped and recreated inside
the same transaction, so they do not fire on the rewind's deletes and
re-inserts either.

An in-memory database lives only as long as its connection: dbrewind must
share the application's connection (a ``StaticPool`` engine given to
:class:`dbrewind.Rewinder` as ``engine=``). It always exists and cannot be
dropped or cloned.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError

from .._url import Backend, DatabaseURL
from ..exceptions import (
    ConfigurationError,
    DbrewindError,
    LockTimeoutError,
    NotPreparedError,
    SchemaChangedError,
)
from .base import (
    LOCK_ADVICE,
    Capabilities,
    Dialect,
    ForeignKey,
    RewindResult,
    SchemaInfo,
    Table,
    describe_wait,
    quote,
    short_name,
)

__all__ = ["SQLiteDialect"]

MARKS = "dbrewind_marks"
REGISTRY = "dbrewind_tables"
STATE = "dbrewind_state"
META = "dbrewind_meta"
BASELINE_PREFIX = "dbrewind_b_"
TRIGGER_PREFIXES = {"INSERT": "dbrewind_i_", "UPDATE": "dbrewind_u_", "DELETE": "dbrewind_d_"}

_OWN_TABLE_GLOBS = (MARKS, REGISTRY, STATE, BASELINE_PREFIX + "*")
_OWN_TRIGGER_GLOBS = tuple(prefix + "*" for prefix in TRIGGER_PREFIXES.values())
_SCHEMA_VERSION_KEY = "schema_version"
_ROWID_NAMES = ("rowid", "oid", "_rowid_")
_AUTOINCREMENT = re.compile(r"\bAUTOINCREMENT\b", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)
_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
_MARK_CREATED = (
    f'CREATE TABLE IF NOT EXISTS "{META}" (key TEXT PRIMARY KEY, value TEXT)',
    f"INSERT OR REPLACE INTO \"{META}\" (key, value) VALUES ('created_by', 'dbrewind')",
)


def _literal(value: str) -> str:
    """``value`` as an SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class _RawTable:
    name: str
    sql: str
    without_rowid: bool


@dataclass(frozen=True)
class _Tracked:
    """One row of ``dbrewind_tables``."""

    name: str
    restore: str | None
    seq: int | None
    auto_increment: bool
    user_triggers: bool


class SQLiteDialect(Dialect):
    """SQLite 3.24+ (upsert in the tracking triggers); ``RETURNING`` from 3.35."""

    name: ClassVar[Backend] = "sqlite"
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_ddl=True,
        statement_triggers=False,
        truncate_trigger=False,
        implicit_commits=False,
        server_side_rewind=False,
        deferrable_constraints=True,
        concurrent_writers=False,
        savepoints=True,
        select_for_update=False,
        returning=sqlite3.sqlite_version_info >= (3, 35, 0),
    )

    # ----------------------------------------------------------- introspection
    def inspect(self, conn: Connection) -> SchemaInfo:
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

    # ---------------------------------------------------------------- tracking
    def install(self, conn: Connection, schema: SchemaInfo) -> None:
        """Replace any earlier installation, capture the baseline and add the triggers.

        Runs in one transaction: a crash part-way leaves the database as it was.
        """
        raw = _user_tables(conn)
        with _transaction(conn, "install tracking in"):
            _drop_own_objects(conn)
            conn.exec_driver_sql(f"CREATE TABLE {quote(conn, MARKS)} (tbl TEXT PRIMARY KEY)")
            conn.exec_driver_sql(
                f"CREATE TABLE {quote(conn, REGISTRY)} (tbl TEXT PRIMARY KEY, baseline TEXT, "
                "restore_sql TEXT, seq INTEGER, auto_increment INTEGER NOT NULL, "
                "user_triggers INTEGER NOT NULL DEFAULT 0)"
            )
            conn.exec_driver_sql(
                f"CREATE TABLE {quote(conn, STATE)} (key TEXT PRIMARY KEY, value INTEGER)"
            )
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

    def uninstall(self, conn: Connection) -> None:
        """Drop triggers, marks, registry and baseline copies; keep the creation mark."""
        with _transaction(conn, "remove tracking from"):
            _drop_own_objects(conn)

    def is_installed(self, conn: Connection) -> bool:
        """Whether the tracking registry ``dbrewind_tables`` exists."""
        return _table_exists(conn, REGISTRY)

    def dirty_tables(self, conn: Connection) -> list[str]:
        """Names of the tables marked dirty, sorted."""
        try:
            rows = conn.exec_driver_sql(f"SELECT tbl FROM {quote(conn, MARKS)} ORDER BY tbl")
            return [row[0] for row in rows]
        except DBAPIError as exc:
            raise _not_prepared(conn) from exc

    def mark_dirty(self, conn: Connection, keys: Sequence[str]) -> None:
        """One ``INSERT OR IGNORE`` into ``dbrewind_marks``, committed."""
        if not keys:
            return
        values = ", ".join("(?)" for _ in keys)
        try:
            conn.exec_driver_sql(
                f"INSERT OR IGNORE INTO {quote(conn, MARKS)} (tbl) VALUES {values}", tuple(keys)
            )
            if conn.in_transaction():
                conn.commit()
        except DBAPIError as exc:
            raise _not_prepared(conn) from exc

    def tracked_tables(self, conn: Connection) -> list[str]:
        """Names of the tables tracking was installed on, sorted."""
        try:
            rows = conn.exec_driver_sql(f"SELECT tbl FROM {quote(conn, REGISTRY)} ORDER BY tbl")
            return [row[0] for row in rows]
        except DBAPIError as exc:
            raise _not_prepared(conn) from exc

    def rewind(
        self,
        conn: Connection,
        *,
        truncate: frozenset[str] = frozenset(),
        reset_sequences: bool = True,
    ) -> RewindResult:
        """Put dirty tables back to the baseline in one transaction.

        SQLite has no ``TRUNCATE``: every table is emptied with ``DELETE``,
        so ``truncate`` changes nothing and ``RewindResult.truncated`` stays
        empty. When no table is marked and no DDL ran, this is one query.

        A tracked table that was dropped and created again (its tracking
        triggers are gone) gets its triggers back and is rewound like a dirty
        table; tables that appeared or vanished are reported in the result.
        """
        del truncate  # no TRUNCATE in SQLite; DELETE is what it would do anyway
        if self._nothing_to_do(conn):
            return RewindResult()
        foreign_keys, synchronous, busy = conn.exec_driver_sql(
            "SELECT f.foreign_keys, s.synchronous, b.timeout FROM pragma_foreign_keys AS f, "
            "pragma_synchronous AS s, pragma_busy_timeout AS b"
        ).one()
        wait = busy
        if self.lock_timeout is not None:
            wait = max(1, round(self.lock_timeout * 1000))
        if foreign_keys:
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        if synchronous:
            conn.exec_driver_sql("PRAGMA synchronous = OFF")
        if wait != busy:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait)}")
        try:
            with _transaction(conn, "rewind", lock_timeout=wait / 1000):
                return _rewind_locked(conn, reset_sequences=reset_sequences)
        finally:
            if foreign_keys:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
            if synchronous:
                conn.exec_driver_sql(f"PRAGMA synchronous = {int(synchronous)}")
            if wait != busy:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy)}")

    def _nothing_to_do(self, conn: Connection) -> bool:
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

    # ---------------------------------------------------------------- databases
    def database_exists(self, url: DatabaseURL) -> bool:
        """Whether the database file exists; an in-memory database always exists."""
        if url.is_memory:
            return True
        return os.path.isfile(_file_path(url))

    def create_database(self, url: DatabaseURL, *, template: DatabaseURL | None = None) -> None:
        """Create the database file (and its directory), or copy ``template`` into it.

        The copy uses SQLite's online backup API, so a template that another
        connection is using is copied consistently. An in-memory database
        always exists (nothing to create) and can be neither source nor target
        of a copy.
        """
        if template is not None:
            _check_clone(url, template)
        if url.is_memory:
            return
        path = _file_path(url)
        if os.path.exists(path):
            raise DbrewindError(
                f"Cannot create {url.display()}: the file {path!r} already exists. "
                "Drop it first (Rewinder.drop() or prepare(recreate=True)), or use it as it is."
            )
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        try:
            with closing(_connect(url)) as target:
                if template is not None:
                    with closing(_connect(template)) as source:
                        source.backup(target)
                _mark_created(target)
        except sqlite3.Error as exc:
            _remove_files(path)
            source_text = f" from {template.display()}" if template is not None else ""
            raise DbrewindError(
                f"Could not create {url.display()}{source_text}: {exc}. Check that the "
                "directory is writable and the template is a readable SQLite database."
            ) from exc

    def drop_database(self, url: DatabaseURL) -> None:
        """Remove the database file and its ``-wal``, ``-shm`` and ``-journal`` companions."""
        if url.is_memory:
            raise ConfigurationError(
                f"Cannot drop the in-memory database {url.display()}: it disappears when its "
                "last connection closes. Close the engine (Rewinder.close()) instead."
            )
        _remove_files(_file_path(url))

    def created_by_dbrewind(self, conn: Connection) -> bool:
        """Whether ``dbrewind_meta`` says dbrewind created this database."""
        if not _table_exists(conn, META):
            return False
        row = conn.exec_driver_sql(
            f"SELECT value FROM {quote(conn, META)} WHERE key = 'created_by'"
        ).first()
        return row is not None and row[0] == "dbrewind"

    def mark_created(self, conn: Connection) -> None:
        """Record in ``dbrewind_meta`` that dbrewind created this database."""
        for statement in _MARK_CREATED:
            conn.exec_driver_sql(statement)


# --------------------------------------------------------------------- helpers
def _display(conn: Connection) -> str:
    return DatabaseURL(conn.engine.url, "sqlite").display()


def _not_prepared(conn: Connection) -> NotPreparedError:
    return NotPreparedError(
        f"dbrewind tracking is not installed in {_display(conn)}. "
        "Call Rewinder.prepare() (or install()) once before tests run."
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


def _user_tables(conn: Connection) -> dict[str, _RawTable]:
    """The tables dbrewind tracks, by name (see the module docstring for what is left out)."""
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


def _table_exists(conn: Connection, name: str) -> bool:
    row = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).first()
    return row is not None


def _sequences(conn: Connection) -> dict[str, int]:
    if not _table_exists(conn, "sqlite_sequence"):
        return {}
    rows = conn.exec_driver_sql("SELECT name, seq FROM sqlite_sequence")
    return {row[0]: row[1] for row in rows}


def _drop_own_objects(conn: Connection) -> None:
    """Drop every tracking trigger and table (not ``dbrewind_meta``); inside a transaction."""
    triggers = " OR ".join("name GLOB ?" for _ in _OWN_TRIGGER_GLOBS)
    rows = conn.exec_driver_sql(
        f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND ({triggers})",
        _OWN_TRIGGER_GLOBS,
    ).all()
    for (name,) in rows:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(conn, name)}")
    tables = " OR ".join("name GLOB ?" for _ in _OWN_TABLE_GLOBS)
    rows = conn.exec_driver_sql(
        f"SELECT name FROM sqlite_master WHERE type = 'table' AND ({tables})",
        _OWN_TABLE_GLOBS,
    ).all()
    for (name,) in rows:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(conn, name)}")


def _rowid_name(columns: Sequence[str]) -> str | None:
    """A name that reaches the rowid of a table with these (all) columns, if one is free."""
    taken = {c.lower() for c in columns}
    return next((n for n in _ROWID_NAMES if n not in taken), None)


def _capture_baseline(conn: Connection, table: Table, info: _RawTable) -> tuple[str | None, str]:
    """Copy the table's rows when it has any; return (copy name, restore INSERT or '')."""
    q_table = quote(conn, table.name)
    if conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {q_table})").scalar() == 0:
        return None, ""
    all_columns = [
        row[0]
        for row in conn.exec_driver_sql("SELECT name FROM pragma_table_xinfo(?)", (table.name,))
    ]
    select = [quote(conn, c) for c in table.columns]
    insert = list(select)
    rowid = None if info.without_rowid else _rowid_name(all_columns)
    if rowid is not None:
        select.insert(0, f"{rowid} AS {quote(conn, 'dbrewind_rowid')}")
        insert.insert(0, rowid)
    copy = short_name(BASELINE_PREFIX, table.name)
    conn.exec_driver_sql(
        f"CREATE TABLE {quote(conn, copy)} AS SELECT {', '.join(select)} FROM {q_table}"
    )
    restore = f"INSERT INTO {q_table} ({', '.join(insert)}) SELECT * FROM {quote(conn, copy)}"
    return copy, restore


def _create_triggers(conn: Connection, table: str) -> None:
    marks = quote(conn, MARKS)
    name = _literal(table)
    for event, prefix in TRIGGER_PREFIXES.items():
        conn.exec_driver_sql(
            f"CREATE TRIGGER {quote(conn, short_name(prefix, table))} "
            f"AFTER {event} ON {quote(conn, table)} FOR EACH ROW "
            f"WHEN NOT EXISTS (SELECT 1 FROM {marks} WHERE tbl = {name}) "
            f"BEGIN INSERT INTO {marks} (tbl) VALUES ({name}) ON CONFLICT DO NOTHING; END"
        )


def _store_schema_version(conn: Connection) -> None:
    conn.exec_driver_sql(
        f"INSERT OR REPLACE INTO {quote(conn, STATE)} (key, value) "
        "SELECT ?, schema_version FROM pragma_schema_version",
        (_SCHEMA_VERSION_KEY,),
    )


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


def _rewind_locked(conn: Connection, *, reset_sequences: bool) -> RewindResult:
    """The rewind proper, inside ``BEGIN IMMEDIATE`` with foreign keys off."""
    version_row = conn.exec_driver_sql(
        f"SELECT schema_version, (SELECT value FROM {quote(conn, STATE)} WHERE key = ?) "
        "FROM pragma_schema_version",
        (_SCHEMA_VERSION_KEY,),
    ).one()
    created: list[str] = []
    dropped: list[str] = []
    if version_row[0] == version_row[1]:
        # No DDL since install: every marked table is a tracked table that still exists.
        registry = _registry(conn, marked_only=True)
        to_rewind = sorted(registry)
    else:
        _flag_user_triggers(conn)
        registry = _registry(conn, marked_only=False)
        dirty = set(_marks(conn))
        current = _user_tables(conn)
        created = sorted(set(current) - set(registry))
        dropped = sorted(set(registry) - set(current))
        for name in _untracked(conn, [n for n in registry if n in current]):
            _create_triggers(conn, name)
            dirty.add(name)
        to_rewind = sorted(n for n in dirty if n in registry and n not in dropped)
    user_triggers = _user_triggers(conn, [n for n in to_rewind if registry[n].user_triggers])
    for trigger_name, _sql in user_triggers:
        conn.exec_driver_sql(f"DROP TRIGGER {quote(conn, trigger_name)}")
    deleted: dict[str, int] = {}
    for name in to_rewind:
        entry = registry[name]
        q_table = quote(conn, name)
        try:
            deleted[name] = conn.exec_driver_sql(f"DELETE FROM {q_table}").rowcount
            if entry.restore is not None:
                conn.exec_driver_sql(entry.restore)
            if reset_sequences and entry.auto_increment:
                _restore_sequence(conn, name, entry.seq)
        except DBAPIError as exc:
            raise SchemaChangedError(
                f"Could not put table {name!r} of {_display(conn)} back to its baseline: "
                f"{exc.orig}. The table's definition changed since tracking was installed; "
                "prepare the database again (Rewinder.prepare / pytest --dbrewind-rebuild)."
            ) from exc
    for _name, sql in user_triggers:
        conn.exec_driver_sql(sql)
    conn.exec_driver_sql(f"DELETE FROM {quote(conn, MARKS)}")
    if not created and not dropped:
        _store_schema_version(conn)
    return RewindResult(
        tables=tuple(to_rewind),
        deleted=deleted,
        created_tables=tuple(created),
        dropped_tables=tuple(dropped),
    )


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


def _restore_sequence(conn: Connection, table: str, seq: int | None) -> None:
    conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
    if seq is not None:
        conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))


# ------------------------------------------------------------------ databases
def _file_path(url: DatabaseURL) -> str:
    """The file behind a file URL (``file:`` URIs with ``?uri=true`` included)."""
    name = url.database
    if name.startswith("file:"):
        name = name[len("file:") :].split("?", 1)[0]
    return name


def _connect(url: DatabaseURL) -> sqlite3.Connection:
    uri = str(url.url.query.get("uri", "")).lower() in {"1", "true"}
    return sqlite3.connect(url.database, uri=uri, isolation_level=None)


def _check_clone(url: DatabaseURL, template: DatabaseURL) -> None:
    if template.backend != "sqlite":
        raise ConfigurationError(
            f"Cannot create the SQLite database {url.display()} from the {template.backend} "
            f"database {template.display()}: a template must be an SQLite file."
        )
    for which, candidate in (("template", template), ("target", url)):
        if candidate.is_memory:
            raise ConfigurationError(
                f"Cannot copy {template.display()} to {url.display()}: the {which} is an "
                "in-memory database, which cannot be cloned. Use SQLite files for both."
            )
    if not os.path.isfile(_file_path(template)):
        raise ConfigurationError(
            f"Cannot create {url.display()} from template {template.display()}: the template "
            "file does not exist. Prepare the template first."
        )


def _mark_created(dbapi: sqlite3.Connection) -> None:
    """Write the creation mark through a plain ``sqlite3`` connection in autocommit mode."""
    for statement in _MARK_CREATED:
        dbapi.execute(statement)


def _remove_files(path: str) -> None:
    for candidate in (path, *(path + suffix for suffix in _COMPANION_SUFFIXES)):
        with suppress(FileNotFoundError):
            os.remove(candidate)
