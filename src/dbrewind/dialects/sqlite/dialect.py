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
  (``AUTOINCREMENT`` counter) of the baseline in force.
* ``dbrewind_state``: the ``PRAGMA schema_version`` after install (and after
  each rewind or push that saw DDL), so a rewind can tell cheaply whether any
  DDL ran since.
* ``dbrewind_lifecycle(key, value)``: the text key/value state the lifecycle
  records with the installation (:meth:`SQLiteDialect.write_state`); no
  trigger watches it, so writing it dirties nothing.
* ``dbrewind_layers``: one row per table captured by a baseline layer
  (:meth:`SQLiteDialect.push_baseline`): its depth, the layer's own copy
  ``dbrewind_b<depth>_*`` of the table's rows, and the registry entry
  (copy, restore ``INSERT``, counter) that was in force below it, which
  :meth:`SQLiteDialect.pop_baseline` puts back.
* ``dbrewind_meta``: the mark saying dbrewind created the database (kept by
  :meth:`SQLiteDialect.uninstall`).

Beside the database file (never inside it, never deleted, and left alone by
:meth:`SQLiteDialect.drop_database`): ``<file>-dbrewind-<purpose>.lock``, the
files :meth:`SQLiteDialect.acquire_lock` takes an exclusive ``flock`` on, each
holding ``<pid>@<host>`` of its holder; when that directory cannot be written,
``dbrewind-locks/<hash>.lock`` in the system's temporary directory instead.

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
re-inserts either. Pushing and popping a baseline layer run the same way,
each in one transaction, so a crash leaves the layers as they were.

An in-memory database lives only as long as its connection: dbrewind must
share the application's connection (a ``StaticPool`` engine given to
:class:`dbrewind.Rewinder` as ``engine=``). It always exists, cannot be
dropped or cloned, and is private to its process: its locks are always granted.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Connection, CursorResult
from sqlalchemy.exc import DBAPIError

from ..._url import Backend, DatabaseURL
from ...exceptions import (
    ConfigurationError,
    ConnectionFailedError,
    DatabaseCreationError,
    DbrewindError,
    LeaseError,
    LockTimeoutError,
    NotADatabaseFileError,
    NotPreparedError,
    SchemaChangedError,
)
from ..base import (
    LOCK_ADVICE,
    Capabilities,
    Dialect,
    ForeignKey,
    Installation,
    Lock,
    OuterTransaction,
    RewindResult,
    SandboxOps,
    SchemaInfo,
    Table,
    describe_wait,
    quote,
    short_name,
)

if sys.platform != "win32":
    import fcntl

__all__ = ["SQLiteDialect"]

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
_ROWID_NAMES = ("rowid", "oid", "_rowid_")
_AUTOINCREMENT = re.compile(r"\bAUTOINCREMENT\b", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)
_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
_LOCK_FILE = re.compile(r"-dbrewind-\w+\.lock\Z")
_LOCK_POLL = 0.05
"""Seconds between two tries of a lock another process holds."""
_SQLITE_HEADER = b"SQLite format 3\x00"
_RECREATED_SAVEPOINT = "dbrewind_recreated"
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


class SQLiteSandboxOps(SandboxOps):
    """The rollback sandbox on SQLite (sqlite3, aiosqlite): the sandbox issues ``BEGIN``
    itself, and sqlite3's ``isolation_level`` says whether a connection autocommits."""

    def autocommit(self, raw: Any, driver: Any) -> bool:
        """sqlite3's ``isolation_level`` None: autocommit."""
        return raw.isolation_level is None

    def isolation_autocommit(self, level: Any) -> bool:
        """sqlite3's ``isolation_level`` None: autocommit."""
        return level is None

    def begin(self, raw: Any, run: Callable[[str], None]) -> OuterTransaction:
        """``BEGIN``, with sqlite3's own transaction handling off until the sandbox ends."""
        # take control of BEGIN: pysqlite's legacy mode would commit before DDL
        # and breaks SAVEPOINT nesting
        saved = raw.isolation_level
        raw.isolation_level = None

        def restore() -> None:
            raw.isolation_level = saved

        try:
            run("BEGIN")
        except BaseException:
            with suppress(Exception):
                restore()
            raise
        return OuterTransaction(explicit=True, restore=restore)

    def transaction_probe(self, driver: Any) -> Callable[[], bool] | None:
        """sqlite3's (and aiosqlite's) ``in_transaction``."""
        return lambda: bool(driver.in_transaction)

    def blocked_by_write_lock(self, error: BaseException) -> bool:
        """SQLite allows one writer at a time: "database is locked"."""
        return "locked" in str(error)


class SQLiteDialect(Dialect):
    """SQLite 3.24+ (upsert in the tracking triggers); ``RETURNING`` from 3.35."""

    name: ClassVar[Backend] = "sqlite"
    sandbox: ClassVar[SandboxOps] = SQLiteSandboxOps()
    name_limit: ClassVar[int] = 200  # a file name (most file systems allow 255 bytes)
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
            # TEXT affinity: a value such as '007' is kept as written, never made a number
            conn.exec_driver_sql(
                f"CREATE TABLE {quote(conn, LIFECYCLE)} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            conn.exec_driver_sql(
                f"CREATE TABLE {quote(conn, LAYERS)} (depth INTEGER NOT NULL, "
                "tbl TEXT NOT NULL, layer_copy TEXT, baseline TEXT, restore_sql TEXT, "
                "seq INTEGER, PRIMARY KEY (depth, tbl))"
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
        """Drop triggers, marks, registry, state, layers and baseline copies.

        Keeps the creation mark ``dbrewind_meta``.
        """
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
        table, and is listed in ``recreated_tables``; when its baseline rows no
        longer fit it (its columns changed) it is left as it is, untracked, and
        listed in ``dropped_tables`` while the other tables are rewound.
        Tables that appeared or vanished are reported in the result.
        """
        del truncate  # no TRUNCATE in SQLite; DELETE is what it would do anyway
        if self._nothing_to_do(conn):
            return RewindResult()
        with self._write_transaction(conn, "rewind"):
            return _rewind_locked(conn, reset_sequences=reset_sequences)

    @contextmanager
    def _write_transaction(self, conn: Connection, action: str) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT`` with foreign keys and ``synchronous`` off.

        The busy timeout is :attr:`lock_timeout` meanwhile. The pragmas cannot
        change inside a transaction, so they are switched around it and put
        back afterwards, whatever happens.
        """
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
            with _transaction(conn, action, lock_timeout=wait / 1000):
                yield
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

    # ---------------------------------------------------------------- lifecycle
    def installation(self, conn: Connection) -> Installation:
        """The registry, marks, layers and state, against the tables there are now, by name.

        An installation made before ``dbrewind_lifecycle`` and
        ``dbrewind_layers`` existed reads as installed with empty state and
        no layers (so the lifecycle rewinds and reinstalls it).
        """
        own = {
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'dbrewind_*'"
            )
        }
        if not {MARKS, REGISTRY, STATE} <= own:
            return Installation(installed=False)
        tracked = sorted(
            row[0] for row in conn.exec_driver_sql(f"SELECT tbl FROM {quote(conn, REGISTRY)}")
        )
        current = _user_tables(conn)
        state: dict[str, str] = {}
        if LIFECYCLE in own:
            rows = conn.exec_driver_sql(f"SELECT key, value FROM {quote(conn, LIFECYCLE)}")
            state = {str(key): str(value) for key, value in rows}
        depth = _layer_depth(conn) if LAYERS in own else 0
        return Installation(
            installed=True,
            state=state,
            tracked=tuple(tracked),
            untracked=tuple(sorted(_untracked(conn, [n for n in tracked if n in current]))),
            missing=tuple(n for n in tracked if n not in current),
            created=tuple(sorted(set(current) - set(tracked))),
            dirty=tuple(sorted(_marks(conn))),
            depth=depth,
        )

    def write_state(self, conn: Connection, values: Mapping[str, str]) -> None:
        """Upsert ``values`` into ``dbrewind_lifecycle`` in one committed transaction."""
        _require(conn, LIFECYCLE)
        if not values:
            return
        with _transaction(conn, "record state in"):
            conn.exec_driver_sql(
                f"INSERT INTO {quote(conn, LIFECYCLE)} (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(key, value) for key, value in values.items()],
            )

    def push_baseline(self, conn: Connection) -> tuple[str, ...]:
        """Copy the dirty tables' rows into a new layer ``dbrewind_b<depth>_*``, in one transaction.

        Each captured table's registry entry moves to ``dbrewind_layers`` at
        the new depth and the registry points at the new copy and at the
        table's ``sqlite_sequence`` value now; its mark is cleared. A tracked
        table that was dropped and created again since the last rewind (its
        writes went unseen) gets its triggers back and is captured too.
        """
        if self._nothing_to_do(conn):
            return ()
        _require(conn, LAYERS)
        with self._write_transaction(conn, "push a baseline layer in"):
            return _push_locked(conn)

    def pop_baseline(
        self, conn: Connection, depth: int, *, reset_sequences: bool = True
    ) -> RewindResult:
        """Put back the registry entries the layers above ``depth`` replaced, then rewind.

        Highest layer first, each layer's copies are dropped and the entries
        it kept return to ``dbrewind_tables``; then every table of the dropped
        layers and every dirty table is rewound, all in one transaction.
        """
        current = self._depth(conn)
        if not 0 <= depth <= current:
            raise ConfigurationError(
                f"Cannot pop the baseline layers of {_display(conn)} down to depth {depth}: "
                f"it has {current} layer(s) above the install's own baseline (depth 0). "
                f"Give a depth from 0 to {current}."
            )
        if depth == current:
            return self.rewind(conn, reset_sequences=reset_sequences)
        with self._write_transaction(conn, "pop baseline layers of"):
            popped = _pop_layers(conn, depth)
            return _rewind_locked(conn, reset_sequences=reset_sequences, also=popped)

    def _depth(self, conn: Connection) -> int:
        """Layers pushed; 0 for an installation older than ``dbrewind_layers``."""
        if _table_exists(conn, LAYERS):
            return _layer_depth(conn)
        if not self.is_installed(conn):
            raise _not_prepared(conn)
        return 0

    def acquire_lock(self, url: DatabaseURL, purpose: str, *, wait: float) -> Lock | None:
        """An exclusive ``flock`` on ``<file>-dbrewind-<purpose>.lock``, tried until ``wait``.

        The lock file is beside the database file, or under
        ``<tmp>/dbrewind-locks/`` when that directory cannot be written (see
        the module docstring); it is never deleted. ``flock`` locks belong to
        the open file, so two acquisitions in one process exclude each other
        too. An in-memory database is private to its process: its lock is
        always granted.
        """
        if url.is_memory:
            return _PrivateLock(f"{purpose} lock of {url.display()} (private to this process)")
        if sys.platform == "win32":
            raise _no_flock(url, purpose)
        path, fd = _open_lock_file(url, purpose)
        try:
            deadline = time.monotonic() + max(wait, 0.0)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        os.close(fd)
                        return None
                    time.sleep(min(_LOCK_POLL, remaining))
        except OSError as exc:
            os.close(fd)
            raise LeaseError(
                f"Cannot take the {purpose!r} lock of {url.display()} on {path!r}: "
                f"{exc.strerror or exc}. File locks need a local file system that supports "
                "flock; keep the database (or TMPDIR) on one."
            ) from exc
        except BaseException:
            os.close(fd)
            raise
        with suppress(OSError):  # who holds it is a courtesy for messages
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}".encode(), 0)
        return _FileLock(path, fd)

    def lock_holder(self, url: DatabaseURL, purpose: str) -> str | None:
        """``"dbrewind <pid>@<host>, lock file <path>"`` while someone holds it, else None.

        Nobody holds it when a shared ``flock`` can be taken (and at once
        released); an in-memory database's lock never blocks anyone.
        """
        if url.is_memory:
            return None
        if sys.platform == "win32":
            raise _no_flock(url, purpose)
        for path in _lock_paths(url, purpose):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    who = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
                    return f"dbrewind {who or '(name not written yet)'}, lock file {path}"
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return None

    def columns_stamp(self, conn: Connection) -> str | None:
        """``PRAGMA schema_version``: SQLite counts every change of the schema."""
        return str(conn.exec_driver_sql("PRAGMA schema_version").scalar())

    def list_databases(self, url: DatabaseURL, prefix: str) -> list[str]:
        """SQLite files in the directory of ``url``'s file whose name starts with ``prefix``.

        In the form of ``url.database`` (its directory joined with the file
        name), sorted. ``-wal``/``-shm``/``-journal`` companions, dbrewind's
        lock files and files that are not SQLite databases are left out; an
        in-memory database has no siblings.
        """
        if url.is_memory:
            return []
        directory = os.path.dirname(_file_path(url))
        try:
            names = os.listdir(directory or os.curdir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in names:
            if not name.startswith(prefix) or name.endswith(_COMPANION_SUFFIXES):
                continue
            if _LOCK_FILE.search(name):
                continue
            path = os.path.join(directory, name)
            if _is_sqlite_file(path):
                found.append(_sibling_database(url, path))
        return sorted(found)

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
            raise DatabaseCreationError(
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
            raise DatabaseCreationError(
                f"Could not create {url.display()}{source_text}: {exc}. Check that the "
                "directory is writable and the template is a readable SQLite database."
            ) from exc

    def drop_database(self, url: DatabaseURL) -> None:
        """Remove the database file and its ``-wal``, ``-shm`` and ``-journal`` companions.

        Lock files stay: deleting one another process holds would let a third
        lock a new file of that name while the holder still runs.
        """
        if url.is_memory:
            raise ConfigurationError(
                f"Cannot drop the in-memory database {url.display()}: it disappears when its "
                "last connection closes. Close the engine (Rewinder.close()) instead."
            )
        _remove_files(_file_path(url))

    connect_creates_database: ClassVar[bool] = True
    databases_are_files: ClassVar[bool] = True
    url_scheme: ClassVar[str] = "sqlite"

    def connect_params_url(self, database: str, params: Mapping[str, Any]) -> URL:
        """The file ``database`` names: nothing else reaches a SQLite database."""
        return URL.create(self.url_scheme, database=database)

    def base_name(self, url: DatabaseURL) -> str:
        """The file's name without its suffix: ``dir/app_test.db`` is ``app_test``."""
        return Path(url.database).stem

    def sibling(self, url: DatabaseURL, name: str) -> DatabaseURL:
        """The file ``name`` plus the suffix of ``url``'s file, in its directory."""
        path = Path(url.database)
        return url.with_database(str(path.with_name(name + path.suffix)))

    def identity(self, url: DatabaseURL) -> tuple[str, str, int | None, str]:
        """The resolved path of the file (of a ``file:`` URI's too); ``:memory:``."""
        if url.is_memory:
            return ("sqlite", "", None, ":memory:")
        path = url.database
        if path.startswith("file:"):
            path = path[len("file:") :].split("?", 1)[0]
        return ("sqlite", "", None, str(Path(path).expanduser().resolve()))

    def connect_defaults(self, driver: str) -> dict[str, object]:
        """Wait up to 30 s for another writer's lock (sqlite3's default is 5 s: too short
        for threads or processes writing at once on a busy machine)."""
        return {"timeout": 30} if driver in ("pysqlite", "aiosqlite") else {}

    def open_connection(
        self,
        driver: str,
        connect: Callable[..., Any],
        cargs: Sequence[Any],
        cparams: dict[str, Any],
    ) -> Any:
        """sqlite3 opens a file of any kind and says "file is not a database" only at the
        first statement, deep inside whatever sent it: the header is read here at once
        (``PRAGMA schema_version``, microseconds), so such a URL fails as it connects."""
        conn = connect(*cargs, **cparams)
        try:
            cursor = conn.cursor()
            cursor.execute("PRAGMA schema_version")
            cursor.close()
        except Exception:
            conn.close()
            raise
        return conn

    def connect_failure(self, error: BaseException) -> type[ConnectionFailedError] | None:
        """A file that is not a SQLite database (``SQLITE_NOTADB``); else the base's."""
        if getattr(error, "sqlite_errorname", None) == "SQLITE_NOTADB":
            return NotADatabaseFileError
        if "file is not a database" in str(error):
            return NotADatabaseFileError
        return super().connect_failure(error)

    def connected_database(self, conn: Connection) -> str:
        """The main database's real file (symbolic links resolved), from ``PRAGMA
        database_list``; ``""`` in memory. A test-named link to an application's file
        reaches that file, whose own name is what counts."""
        for _seq, name, path in conn.exec_driver_sql("PRAGMA database_list"):
            if name == "main":
                return os.path.realpath(path) if path else ""
        return ""

    def reaches(self, url: DatabaseURL, reached: str) -> bool:
        """The file the URL names itself (its directory may be a link), or both in memory."""
        if url.is_memory or not reached:
            return url.is_memory and not reached
        path = _file_path(url)
        named = os.path.join(
            os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path)
        )
        return named == reached

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
    select = [quote(conn, c) for c in table.columns]
    insert = list(select)
    rowid = None if info.without_rowid else _rowid_name(all_columns)
    if rowid is not None:
        select.insert(0, f"{rowid} AS {quote(conn, 'dbrewind_rowid')}")
        insert.insert(0, rowid)
    copy = short_name(prefix, table.name)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(conn, copy)}")
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


def _columns(conn: Connection, table: str) -> tuple[str, ...]:
    """The columns a baseline restore inserts (generated and hidden ones left out)."""
    rows = conn.exec_driver_sql(
        "SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid", (table,)
    )
    return tuple(row[0] for row in rows)


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


def _is_sqlite_file(path: str) -> bool:
    """A regular file that is empty or starts with SQLite's header."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(_SQLITE_HEADER))
    except OSError:  # a directory, unreadable, or gone meanwhile
        return False
    return head in (b"", _SQLITE_HEADER)


def _sibling_database(url: DatabaseURL, path: str) -> str:
    """``path`` written as ``url.database`` names its file (``file:`` URIs stay URIs)."""
    return f"file:{path}" if url.database.startswith("file:") else path


# ------------------------------------------------------------------------ locks
class _FileLock(Lock):
    """An exclusive ``flock`` held on an open lock file until :meth:`release`."""

    def __init__(self, path: str, fd: int) -> None:
        self.name = path
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with suppress(OSError):
                os.ftruncate(fd, 0)  # nobody's name in it while nobody holds it
            fcntl.flock(fd, fcntl.LOCK_UN)  # a forked child may share the open file
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        state = "released" if self._fd is None else "held"
        return f"<SQLite lock {self.name!r}, {state}>"


class _PrivateLock(Lock):
    """The lock of an in-memory database: nobody else can reach it, so it is always held."""

    def __init__(self, name: str) -> None:
        self.name = name

    def release(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"<SQLite lock {self.name!r}>"


def _lock_paths(url: DatabaseURL, purpose: str) -> tuple[str, str]:
    """(the lock file beside the database file, the one in the temporary directory)."""
    real = os.path.realpath(_file_path(url))
    tag = re.sub(r"\W", "_", purpose, flags=re.ASCII)[:40]
    if tag != purpose:  # keep purposes that differ only in odd characters apart
        tag += "_" + hashlib.sha1(purpose.encode()).hexdigest()[:10]
    digest = hashlib.sha256(f"{real}\0{purpose}".encode()).hexdigest()[:32]
    fallback = os.path.join(tempfile.gettempdir(), "dbrewind-locks", f"{digest}.lock")
    return f"{real}-dbrewind-{tag}.lock", fallback


def _no_flock(url: DatabaseURL, purpose: str) -> ConfigurationError:
    return ConfigurationError(
        f"Cannot use the {purpose!r} lock of {url.display()}: SQLite's locks are flock locks "
        "on files, which Windows lacks. Run dbrewind's lifecycle on Linux or macOS."
    )


def _open_lock_file(url: DatabaseURL, purpose: str) -> tuple[str, int]:
    """Open (creating) the lock file: beside the database, else in the temporary directory."""
    beside, fallback = _lock_paths(url, purpose)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    with suppress(OSError):  # as create_database would; a failure shows in os.open
        os.makedirs(os.path.dirname(beside), exist_ok=True)
    try:
        return beside, os.open(beside, flags, 0o666)
    except OSError as exc:
        first = exc
    try:
        os.makedirs(os.path.dirname(fallback), exist_ok=True)
        return fallback, os.open(fallback, flags, 0o666)
    except OSError as exc:
        raise LeaseError(
            f"Cannot create the {purpose!r} lock file of {url.display()}: neither {beside!r} "
            f"({first.strerror or first}) nor {fallback!r} ({exc.strerror or exc}) can be "
            "written. Make the database's directory writable, or point TMPDIR at a "
            "writable directory."
        ) from exc
