"""The SQLite dialect: :class:`SQLiteDialect`, what :mod:`dbrewind.dialects.base` asks of
a database, answered for SQLite. Most methods hand the work to the modules beside this one."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from ..._url import Backend, DatabaseURL
from ...exceptions import ConfigurationError, ConnectionFailedError, NotADatabaseFileError
from ..base import (
    Capabilities,
    Dialect,
    Installation,
    Lock,
    RewindResult,
    SandboxOps,
    SchemaInfo,
    ServerReport,
    quote,
)
from ._sql import (
    _MARK_CREATED,
    LAYERS,
    LIFECYCLE,
    MARKS,
    META,
    REGISTRY,
    STATE,
    _display,
    _not_prepared,
    _require,
    _table_exists,
    _transaction,
)
from .catalog import _inspect, _marks, _untracked, _user_tables
from .files import (
    _acquire_lock,
    _create_database,
    _drop_database,
    _file_path,
    _list_databases,
    _lock_holder,
)
from .rewind import (
    _RECEIPT_SQL,
    _layer_depth,
    _nothing_to_do,
    _pop_layers,
    _push_locked,
    _rewind_locked,
    _write_transaction,
)
from .sandbox import SQLiteSandboxOps
from .tracking import _drop_own_objects, _install

__all__ = ["SQLiteDialect"]


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
        return _inspect(conn)

    # ---------------------------------------------------------------- tracking
    def install(self, conn: Connection, schema: SchemaInfo) -> None:
        """Replace any earlier installation, capture the baseline and add the triggers.

        Runs in one transaction: a crash part-way leaves the database as it was.
        """
        _install(conn, schema)

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

    def sandbox_receipt_sql(self) -> str | None:
        """No mark and no DDL since the last rewind: the check :meth:`rewind` starts with."""
        return _RECEIPT_SQL

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
        if _nothing_to_do(conn):
            return RewindResult()
        with _write_transaction(conn, "rewind", self.lock_timeout):
            return _rewind_locked(conn, reset_sequences=reset_sequences)

    def restore_counters(self, conn: Connection) -> None:
        """Rewind, with their counters, the tracked ``AUTOINCREMENT`` tables whose
        ``sqlite_sequence`` value is not their baseline's (rewinds with ``reset_sequences``
        off leave it moved; a rolled-back insert moves nothing here)."""
        if not _table_exists(conn, "sqlite_sequence"):
            return
        try:
            moved = [
                str(row[0])
                for row in conn.exec_driver_sql(
                    f"SELECT r.tbl FROM {quote(conn, REGISTRY)} r "
                    "LEFT JOIN sqlite_sequence s ON s.name = r.tbl "
                    "WHERE r.auto_increment AND s.seq IS NOT r.seq"
                )
            ]
        except DBAPIError as exc:
            raise _not_prepared(conn) from exc
        if moved:
            self.mark_dirty(conn, moved)
            self.rewind(conn, reset_sequences=True)

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
        if _nothing_to_do(conn):
            return ()
        _require(conn, LAYERS)
        with _write_transaction(conn, "push a baseline layer in", self.lock_timeout):
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
        with _write_transaction(conn, "pop baseline layers of", self.lock_timeout):
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
        the package docstring); it is never deleted. ``flock`` locks belong to
        the open file, so two acquisitions in one process exclude each other
        too. An in-memory database is private to its process: its lock is
        always granted.
        """
        return _acquire_lock(url, purpose, wait)

    def lock_holder(self, url: DatabaseURL, purpose: str) -> str | None:
        """``"dbrewind <pid>@<host>, lock file <path>"`` while someone holds it, else None.

        Nobody holds it when a shared ``flock`` can be taken (and at once
        released); an in-memory database's lock never blocks anyone.
        """
        return _lock_holder(url, purpose)

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
        return _list_databases(url, prefix)

    def server_report(self, conn: Connection) -> ServerReport:
        """The SQLite library's version, and the database's ``journal_mode`` and
        ``synchronous`` as dbrewind's connection has them."""
        version = str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())
        settings = {
            pragma: str(conn.exec_driver_sql(f"PRAGMA {pragma}").scalar())
            for pragma in ("journal_mode", "synchronous")
        }
        notes: tuple[str, ...] = ()
        synchronous = settings["synchronous"]
        if synchronous not in ("0", "1"):  # OFF, NORMAL; 2 is FULL, 3 EXTRA
            level = {"2": "FULL", "3": "EXTRA"}.get(synchronous, synchronous)
            notes = (
                f"synchronous={level}: every commit waits for the disk; a test database file "
                "can take PRAGMA synchronous=OFF (or a tmpfs directory) in the tests' setup",
            )
        return ServerReport(f"SQLite {version}", settings, notes)

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
        _create_database(url, template)

    def drop_database(self, url: DatabaseURL) -> None:
        """Remove the database file and its ``-wal``, ``-shm`` and ``-journal`` companions.

        Lock files stay: deleting one another process holds would let a third
        lock a new file of that name while the holder still runs.
        """
        _drop_database(url)

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
