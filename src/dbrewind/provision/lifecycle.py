"""The lifecycle of a test database, the same for every entry point.

An entry point (the pytest plugin, the unittest classes, the peewee and
peewee-async sandboxes, a ``clean_db_urls`` suite, the CLI) describes what it
needs as a :class:`Target` and calls :func:`acquire`; it gets the process's
one :class:`Database` for it, ready:

``clone`` (the plugin, ``dbrewind.unittest`` with ``database_url``)
    The setup runs once into a template ``<name>_tmpl_<fingerprint8>``, built
    under a server-wide lock and kept while the fingerprint holds. This
    process works on a clone of it: ``<name>`` (``<name>_gw0`` under xdist),
    or the next free slot (``<name>_r1``...) when another live run holds that
    one. A clone left by an earlier run is reused after checking it against
    the template (fingerprint, tracking version, tables and columns by name)
    and rewinding what that run left; anything else gets a fresh clone.
``in place`` (``dbrewind.unittest`` with an ``engine``)
    The database the engine names: what an earlier run left is rewound, the
    setup runs in place, and the baseline is captured after it.
``adopt`` (the peewee sandboxes, ``clean_db_urls``, a setup-less unittest class)
    The database as the user's own setup left it: its state at first use is
    the baseline.

Whatever the mode, nothing a previous run left is trusted: the installed
tracking (its version, the tables it covers by name, the digest of their
columns) is compared with the database as it is, and re-prepared where it
differs. Every database this process works on is *leased* for the process's
life (:meth:`dbrewind.dialects.Dialect.acquire_lock`; the lease dies with the
process). Rows a wider fixture scope commits become a baseline layer
(:meth:`Database.push_layer`) rewound when that scope ends. At the end,
:meth:`Database.release` rewinds to the base baseline and records a clean
release, so the next run can tell a crashed run's leftovers (rewound) from
what its own setup wrote (kept as the new baseline).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from .._url import DatabaseURL, parse_url
from ..dialects import Installation, Lock, RewindResult, get_dialect
from ..dialects.engines import make_async_engine, make_engine
from ..exceptions import (
    DatabaseCreationError,
    DbrewindError,
    LockTimeoutError,
    SchemaChangedError,
)
from ..rewinder import ALLOW_ENV, Rewinder
from .fingerprint import fingerprint, schema_digest, tracking_version
from .lockwatch import PLUGIN_FIX, LockWatch, Watched
from .naming import sibling, stem, template_name
from .setup_files import changed
from .target import (
    CLEAN,
    FINGERPRINT,
    HOLDER,
    ORIGIN,
    SCHEMA,
    SETUP_FILES,
    VERSION,
    Target,
    holder_name,
    identity,
)
from .templates import build_lock, choose_clone, ensure_template

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ROLLBACK_ONLY_ORIGINS", "Database"]

logger = logging.getLogger("dbrewind")


class Database:
    """One test database this process works on, with its lease, baseline layers and engines.

    Made by :func:`~dbrewind.provision.registry.acquire`. ``rewinder`` is None
    when the safety net is off for it (:attr:`safety_net`): a database that is
    not provably a test database, or one another run holds; then only rollback
    sandboxes may use it.
    """

    def __init__(
        self, target: Target, url: DatabaseURL, *, forget: Callable[[Database], None]
    ) -> None:
        self.target = target
        self._forget = forget
        """Called once when released: the registry lets go of it."""
        self.url = url
        self.rewinder: Rewinder | None = None
        self.template: DatabaseURL | None = None
        self.fingerprint = ""
        self.lease: Lock | None = None
        self.built_template = False
        self.prepare_seconds = 0.0
        self.reclones = 0
        self.notes: list[str] = []
        """What the lifecycle did that a user should hear of (slots, reinstalls...)."""
        self.problems: list[str] = []
        """What the last :meth:`after_test` had to repair that fails the test (read and
        cleared by the caller)."""
        self.released = False
        self._state: dict[str, str] = {}
        self._layers: list[tuple[object, int | None]] = []
        self._depth = 0
        self._engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._scope_engines: dict[bool, Any] = {}
        self._lock = threading.RLock()
        self._sandboxes = 0
        self._stamp: str | None = None
        self._columns: str | None = None
        self._quiet: object = None
        """The dialect's DDL value (:meth:`Dialect.quick_state`) read before the last
        after-test check of the schema that found it as tracked; None: none yet."""
        self._out: dict[int, tuple[Any, int]] = {}
        """The connections of :attr:`engine` checked out now, by record: (record, seq)."""
        self._checkouts = 0
        self._lock_watch: LockWatch | None = None
        self.escaped_nothing_in: str | None = None
        """Set by a library sandbox (the peewee ones) whose block ended in a pytest
        test's teardown and saw that nothing outside it left this database dirty: that
        test's ``PYTEST_CURRENT_TEST`` (see :meth:`note_escaped_nothing`)."""

    def __repr__(self) -> str:
        return f"Database({self.url.display()!r}, {self.target.mode})"

    @property
    def safety_net(self) -> bool:
        """Whether this database is tracked and cleaned (else: rollback sandboxes only)."""
        return self.rewinder is not None

    @property
    def in_sandbox(self) -> bool:
        """A sandbox spanning several tests (a unittest class's) is open on it: its owner
        rewinds when it ends, and nobody else may meanwhile."""
        return self._sandboxes > 0

    def enter_sandbox(self) -> None:
        """A sandbox that outlives single tests starts on this database (see :attr:`in_sandbox`)."""
        with self._lock:
            self._sandboxes += 1

    def leave_sandbox(self) -> None:
        """That sandbox ended."""
        with self._lock:
            self._sandboxes = max(0, self._sandboxes - 1)

    def note_escaped_nothing(self) -> None:
        """A sandbox's block just ended, and its check (the dialect's receipt on its
        rollback, or the rewind) found that nothing outside it left the database dirty.

        When that is in a pytest test's teardown (a fixture ended the block, as the
        plugin's own ``db`` does), the plugin's check after that test has nothing to
        find and is counted, not sent (:meth:`after_test`'s ``escaped_nothing``).
        Anywhere else (the test's own code may write after the block) it is forgotten.
        As after the plugin's ``db``, what a fixture torn down later commits is found by
        the next check (the next block's, or the plugin's after the next test).
        """
        current = os.environ.get("PYTEST_CURRENT_TEST", "")
        self.escaped_nothing_in = current if current.endswith(" (teardown)") else None

    def watch_locks(self, sandbox: Any, what: str, fix: str = PLUGIN_FIX) -> Watched | None:
        """Watch, while a test runs, for statements of other connections that wait on
        the locks of ``sandbox`` (its ``session_id``; see :mod:`dbrewind.provision.lockwatch`);
        give what this returns to :meth:`unwatch_locks` when the test's sandbox ends.
        ``what`` names the sandbox in the failure, ``fix`` says what to do instead."""
        limit = self.target.lock_wait
        if limit is None:
            return None
        session = sandbox.session_id
        if session is None:
            return None
        with self._lock:
            if self._lock_watch is None:
                self._lock_watch = LockWatch(self.url, get_dialect(self.url.backend), limit)
        return self._lock_watch.watch(session, what, fix)

    def unwatch_locks(self, watched: Watched | None, *, report: bool = True) -> list[str]:
        """Stop watching; the waits found and ended, one message each. With ``report``
        each also becomes one of :attr:`problems` (the plugin fails the test with them);
        an entry point that fails its test itself passes ``report=False``."""
        if watched is None or self._lock_watch is None:
            return []
        found = self._lock_watch.unwatch(watched)
        if report:
            self.problems += found
        return found

    # ---------------------------------------------------------------- engines
    @property
    def engine(self) -> Engine:
        """A sync engine on the database (the target's own when it gave one)."""
        if self._engine is None:
            given = self.target.engine
            if given is not None and identity(parse_url(given.url)) == identity(self.url):
                self._engine = given
            else:
                self._engine = make_engine(self.url)
            self._watch(self._engine)
        return self._engine

    # ------------------------------------------------------ leaked connections
    def _watch(self, engine: Engine) -> None:
        """Keep track of the connections checked out of ``engine``'s pool (:meth:`take_back`)."""
        if isinstance(engine.pool, StaticPool):  # one shared connection: the database itself
            return
        from ..sandbox.proxies import ProxyConnection

        def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            if not isinstance(dbapi_connection, ProxyConnection):  # a sandbox's: it reclaims
                self._out[id(record)] = (record, self._checkouts)
                self._checkouts += 1

        def checked_in(_dbapi_connection: Any, record: Any) -> None:
            self._out.pop(id(record), None)

        event.listen(engine, "checkout", checked_out)
        event.listen(engine, "checkin", checked_in)

    def checkouts(self) -> int:
        """A mark for :meth:`take_back`: connections checked out from now on count."""
        return self._checkouts

    def take_back(self, since: int) -> int:
        """Close the connections of :attr:`engine` checked out since the mark ``since`` and
        still out; the number closed.

        The policy for a connection a test leaked (never closed): its owner is
        gone, and an open transaction on it would hold locks that block the
        rewind (or, on SQLite, the whole database) for every later test. So it
        is invalidated: the server rolls back what it had not committed, and
        the pool opens a fresh connection in its place. A caller that still
        holds it gets SQLAlchemy's usual behaviour for an invalidated
        connection (a reconnect, or ``PendingRollbackError`` inside a
        transaction until it rolls back).
        """
        taken = 0
        for record, seq in list(self._out.values()):
            if seq < since:
                continue
            self._out.pop(id(record), None)
            fairy = record.fairy_ref() if record.fairy_ref is not None else None
            if fairy is None or fairy.dbapi_connection is None:
                continue
            with contextlib.suppress(Exception):  # a connection the server already closed
                fairy.invalidate()
            taken += 1
        return taken

    @property
    def async_engine(self) -> AsyncEngine:
        """An unpooled async engine on the database: usable from any event loop."""
        if self._async_engine is None:
            self._async_engine = make_async_engine(self.url)
        return self._async_engine

    def loop_async_engine(self) -> AsyncEngine:
        """A new pooled async engine on the database, for one event loop: its connections
        belong to the loop they were opened on, so it must be used on that loop only and
        disposed there (awaited) before the loop closes."""
        return make_async_engine(self.url, pooled=True)

    def scope_engine(self, is_async: bool = False) -> Any:
        """An engine of its own for the data a wider-scoped fixture writes
        (``module_db_session``): :attr:`engine` and :attr:`async_engine` run inside
        the test's sandbox while one is open, and a scope's commits must be real, to
        be kept as its layer. Sync: an ``Engine``; ``is_async``: an unpooled
        ``AsyncEngine``."""
        if self.url.is_memory and not is_async:
            return self.engine  # an in-memory database has the one connection
        engine = self._scope_engines.get(is_async)
        if engine is None:
            engine = make_async_engine(self.url) if is_async else make_engine(self.url)
            self._scope_engines[is_async] = engine
        return engine

    def dispose_engines(self) -> None:
        """Close the pooled connections of the engines made here (they reconnect on use)."""
        if self._engine is not None and self._engine is not self.target.engine:
            self._engine.dispose()
        for is_async, engine in self._scope_engines.items():
            (engine.sync_engine if is_async else engine).dispose()
        if self._async_engine is not None:
            # NullPool keeps no connection, so nothing awaits closing
            self._async_engine.sync_engine.dispose()

    # ------------------------------------------------------------------ state
    def _write_state(self, **values: str) -> None:
        assert self.rewinder is not None
        self._state.update(values)
        with self.rewinder.connection() as conn:
            self.rewinder.dialect.write_state(conn, self._state)

    def _install(self) -> None:
        """Install tracking on the database as it is now (the new base baseline)."""
        assert self.rewinder is not None
        schema = self.rewinder.install()
        self._state[SCHEMA] = schema_digest(schema)
        self._state[VERSION] = tracking_version(self.url.backend)
        self._write_state()
        self._layers = [(owner, None) for owner, _depth in self._layers]
        self._depth = 0

    def _installation(self) -> tuple[Installation, str]:
        assert self.rewinder is not None
        with self.rewinder.connection() as conn:
            found = self.rewinder.dialect.installation(conn)
            digest = schema_digest(self.rewinder.dialect.inspect(conn)) if found.installed else ""
        return found, digest

    def _matches(self, found: Installation, digest: str) -> bool:
        state = found.state
        return (
            found.intact
            and state.get(VERSION) == tracking_version(self.url.backend)
            and state.get(SCHEMA) == digest
        )

    # -------------------------------------------------------------- per test
    def before_test(self, *, reset_sequences: bool | None = None) -> None:
        """Before a test that asks to start from the baseline's ids (``reset_sequences``
        True): put back every counter earlier tests left moved
        (:meth:`Rewinder.restore_counters <dbrewind.Rewinder.restore_counters>`).
        Nothing otherwise."""
        if self.rewinder is None or not reset_sequences:
            return
        with self._lock:
            self.rewinder.restore_counters()

    def after_test(
        self,
        *,
        check_schema: bool = False,
        reset_sequences: bool | None = None,
        escaped_nothing: bool = False,
    ) -> RewindResult:
        """Put the database back to its innermost baseline after a test.

        A table the test created is dropped; one it dropped and created again is
        tracked again and rewound. A baseline table it dropped cannot be rewound:
        a clone is then made again from its template (counted in
        :attr:`reclones`); an adopted database raises
        :class:`~dbrewind.exceptions.SchemaChangedError` saying what to do.

        ``check_schema``: the test may have changed the schema (it committed
        for real). Where a rewind does not see recreated tables by itself
        (MySQL), a cheap stamp of the table list is compared before the rewind,
        and the installation looked at only when the stamp moved.

        ``reset_sequences``: the test's own say on putting counters back (None: the
        database's ``reset_sequences`` setting; see :class:`~dbrewind.Rewinder`).

        ``escaped_nothing``: the test's sandbox saw, as it ended, that nothing
        outside it left the database dirty (:attr:`dbrewind.sandbox.Sandbox.escaped_nothing`):
        the check is counted, not sent.
        """
        if self.rewinder is None:
            return RewindResult()
        if escaped_nothing and not check_schema:
            self.rewinder.checks += 1
            return RewindResult()
        with self._lock:
            dialect = self.rewinder.dialect
            quiet: object = None
            no_ddl = False  # no DDL ran anywhere since the last check: the stamps stand
            if check_schema:
                state = self.rewinder.call(dialect.quick_state)
                if state is not None:
                    clean, quiet = state
                    no_ddl = quiet is not None and quiet == self._quiet
                    if clean and no_ddl:
                        self.rewinder.checks += 1  # nothing written, no DDL: one read
                        return RewindResult()
                self._quiet = None
            watch = check_schema and not dialect.sees_recreated_tables and not no_ddl
            moved = False
            if watch:
                moved = self.rewinder.call(dialect.schema_stamp) != self._stamp
            columns = None
            if check_schema and not no_ddl:
                columns = self.rewinder.call(dialect.columns_stamp)
            try:
                result = self._rewind(reset_sequences)
            except SchemaChangedError as exc:  # MySQL: a table's columns changed under it
                if self.template is None:
                    raise
                self._remake(f"a table changed its columns ({exc})")
                return RewindResult()
            if result.dropped_tables:
                self._schema_lost(result)
                return result
            if moved:
                result = self._mend(result)
            if self._altered(columns):
                if self.template is None:
                    raise SchemaChangedError(
                        f"A test altered the columns of a table of {self.url.display()} (ALTER "
                        "TABLE) and committed; dbrewind rewound the rows, but cannot undo the "
                        "change. Undo it before the test ends (in its teardown), or let "
                        "dbrewind clone the database from a template (the pytest plugin's "
                        "dbrewind_setup, or a unittest class's database_url)."
                    )
                self._remake("the columns of a table were altered")
                return result
            own_ddl = bool(result.truncated or result.created_tables)
            if watch and (moved or own_ddl):
                self._restamp()
            elif no_ddl and own_ddl:
                # the rewind's own DDL (TRUNCATE, a created table dropped) moved the
                # stamps: they are read again only when DDL runs that is not the
                # rewind's (they scan the server's whole dictionary)
                self._stamp = self._columns = None
            if check_schema and own_ddl and quiet is not None:
                # ... and the DDL value, read again now
                state = self.rewinder.call(dialect.quick_state)
                quiet = state[1] if state is not None else None
            if check_schema:
                self._quiet = quiet
            return result

    def _rewind(self, reset_sequences: bool | None = None) -> RewindResult:
        """The rewind. On a clone, a lock wait that outlasts ``lock_timeout`` ends the
        sessions holding a transaction open there, and the rewind runs again.

        The policy: a clone is dbrewind's own, leased by this run, so a session
        inside a transaction on it is one the tests left open (through an
        engine dbrewind does not see; its own engines' connections were taken
        back already). Left alone, its locks would fail every later test's
        rewind; ended, the next test starts from the baseline. The test is
        failed all the same, naming the session (:attr:`problems`). On a
        database dbrewind did not make, the
        :class:`~dbrewind.exceptions.LockTimeoutError` stands.
        """
        assert self.rewinder is not None
        try:
            return self.rewinder.rewind(raise_on_dropped=False, reset_sequences=reset_sequences)
        except LockTimeoutError:
            if self.template is None:
                raise
            ended = self.rewinder.call(self.rewinder.dialect.end_open_transactions)
            if not ended:
                raise
        result = self.rewinder.rewind(raise_on_dropped=False, reset_sequences=reset_sequences)
        self.problems.append(
            f"a session kept a transaction open on {self.url.display()} after the test, and "
            f"its locks blocked the rewind for more than {self.rewinder.lock_timeout or 0:g} s; "
            f"as the database is dbrewind's own clone, dbrewind ended it ({'; '.join(ended)}) "
            "and rewound, so the next test starts from the baseline. Commit or roll back, and "
            "close, every connection a test opens before the test ends."
        )
        return result

    def _schema_moved(self) -> bool:
        """Whether tables were created, dropped or recreated since tracking was installed.

        Cheap where the dialect keeps a schema stamp (MySQL: the full
        installation is read only when the stamp moved); elsewhere the
        installation, read by name.
        """
        assert self.rewinder is not None
        dialect = self.rewinder.dialect
        with self.rewinder.connection() as conn:
            stamp = None if dialect.sees_recreated_tables else dialect.schema_stamp(conn)
            if stamp is not None and stamp == self._stamp:
                return False
            moved = not dialect.installation(conn).intact
        if not moved:
            self._stamp = stamp  # dbrewind's own tables moved it (a layer's copies)
        return moved

    def _restamp(self) -> None:
        """Remember the schema stamps as they are now (tables where rewinds need it; columns)."""
        assert self.rewinder is not None
        dialect = self.rewinder.dialect
        with self.rewinder.connection() as conn:
            if not dialect.sees_recreated_tables:
                self._stamp = dialect.schema_stamp(conn)
            self._columns = dialect.columns_stamp(conn)

    def _altered(self, columns: str | None) -> bool:
        """After a rewind: whether a baseline table's columns differ from the baseline's
        (a test altered it). Compared in full only when the columns stamp moved."""
        assert self.rewinder is not None
        if columns is None or columns == self._columns:
            return False
        with self.rewinder.connection() as conn:
            digest = schema_digest(self.rewinder.dialect.inspect(conn))
        if digest == self._state.get(SCHEMA):
            self._restamp()  # another change moved it (a created table the rewind dropped)
            return False
        return True

    def _mend(self, result: RewindResult) -> RewindResult:
        """The schema moved during the test: give recreated tables their tracking back."""
        assert self.rewinder is not None
        with self.rewinder.connection() as conn:
            found = self.rewinder.dialect.installation(conn)
        if found.missing:
            self._schema_lost(RewindResult(dropped_tables=found.missing))
            return result
        if not found.untracked:
            return result
        if self.template is not None:
            names = ", ".join(repr(t) for t in found.untracked)
            self._remake(f"table(s) {names} were dropped and created again")
            return result
        with self.rewinder.connection() as conn:
            mended = self.rewinder.dialect.retrack(conn, found.untracked)
        return RewindResult(
            tables=tuple(sorted({*result.tables, *mended.tables})),
            deleted={**result.deleted, **mended.deleted},
            truncated=result.truncated | mended.truncated,
            created_tables=result.created_tables,
            recreated_tables=mended.recreated_tables,
            seconds=result.seconds,
        )

    def _remake(self, what: str) -> None:
        assert self.template is not None
        self._reclone()
        self.notes.append(
            f"{what} in {self.url.database!r}; dbrewind made the database again from its "
            f"template {self.template.database!r}"
        )

    def _schema_lost(self, result: RewindResult) -> None:
        names = ", ".join(repr(t) for t in result.dropped_tables)
        if self.template is not None:
            self._remake(f"table(s) {names} were dropped or altered")
            return
        raise SchemaChangedError(
            f"Table(s) {names} of the baseline were dropped (or changed so that their baseline "
            f"rows no longer fit) in {self.url.display()}; dbrewind rewound everything else. "
            "Create them again before the test ends (in its teardown or a fixture's "
            "finalizer): dbrewind then restores their rows and tracks them again. The next run "
            "re-captures the baseline from what the setup leaves."
        )

    # ---------------------------------------------------------------- layers
    def refresh(self, owner: object) -> tuple[str, ...]:
        """After a wider-scoped fixture was set up: keep what it committed for its scope.

        Committed rows become a baseline layer owned by ``owner`` (popped by
        :meth:`pop_layer`). Tables it created, dropped or recreated make dbrewind
        track the schema as it now is (a new base baseline). Returns the tables
        captured in the layer.
        """
        if self.rewinder is None or self.released:
            return ()
        with self._lock:
            if self._schema_moved():
                if self._depth:
                    self.notes.append(
                        f"a fixture ({owner!r}) changed the schema of {self.url.database!r} "
                        "while the rows of a wider-scoped fixture were kept as a layer; "
                        "dbrewind tracks the schema as it is now, with those rows in its baseline"
                    )
                self._install()
                self._restamp()
                self._layers.append((owner, None))
                return ()
            # (even when nothing is marked: on MySQL a TRUNCATE marks nothing, and the
            # push finds it)
            with self.rewinder.connection() as conn:
                keys = self.rewinder.dialect.push_baseline(conn)
            if keys:
                self._restamp()  # the layer's copies are tables too
                self._depth += 1
                self._layers.append((owner, self._depth))
            else:
                self._layers.append((owner, None))
            return keys

    def pop_layer(self, owner: object) -> RewindResult | None:
        """The scope of ``owner`` ended: rewind to the baseline below its layer."""
        if self.rewinder is None or self.released:
            return None
        with self._lock:
            index = next((i for i, (o, _d) in enumerate(self._layers) if o is owner), None)
            if index is None:
                return None
            below = [d for _o, d in self._layers[:index] if d is not None]
            self._layers = self._layers[:index]
            return self._pop_to(below[-1] if below else 0)

    def _pop_to(self, depth: int) -> RewindResult:
        rewinder = self.rewinder
        assert rewinder is not None
        result = rewinder.call(
            lambda conn: rewinder.dialect.pop_baseline(
                conn, depth, reset_sequences=rewinder.resets_sequences()
            )
        )
        self._depth = depth
        if result.dropped_tables:
            self._schema_lost(result)
        self._restamp()
        return result

    # --------------------------------------------------------------- release
    def release(self) -> None:
        """Rewind to the base baseline, record a clean release, give up the lease, close.

        Idempotent. A database the user's own teardown dropped (or whose tables
        it dropped) is simply let go: the next run re-prepares it.
        """
        with self._lock:
            if self.released:
                return
            self.released = True
            self._forget(self)
            try:
                if self.rewinder is not None:
                    try:
                        self._pop_to(0)
                        with self.rewinder.connection() as conn:
                            self.rewinder.dialect.restore_counters(conn)
                        self._write_state(**{CLEAN: "1"})
                    except Exception as exc:  # the database or its tables may be gone
                        logger.debug("dbrewind: %s not released cleanly: %s", self, exc)
            finally:
                if self._lock_watch is not None:
                    self._lock_watch.close()
                if self.rewinder is not None:
                    self.rewinder.close()
                self.dispose_engines()
                if self.lease is not None:
                    self.lease.release()

    # ------------------------------------------------------------- preparing
    def _rewinder(self, url: DatabaseURL, *, clone: bool) -> Rewinder:
        target = self.target
        return Rewinder(
            url,
            schemas=target.schemas,
            allow=target.allow or clone,
            lock_timeout=target.lock_timeout,
            reset_sequences=target.reset_sequences,
            drop_created_tables=True,
            # an in-memory database lives on its one connection: share it
            engine=self.engine if url.is_memory else None,
        )

    def _prepare_clone(self, reserved: tuple[DatabaseURL, Lock, str | None] | None) -> None:
        """Clone mode: the template built or reused, this process's clone (``reserved``
        by :func:`~dbrewind.provision.registry.reserve`, or chosen now) made or reused."""
        target = self.target
        base = target.url
        with Rewinder(base, allow=target.allow) as configured:
            # the names derived from it are as safe as it is
            configured.ensure_safe("prepare")
            limit = configured.dialect.name_limit
        sa_dialect = base.sync_url().get_dialect()()
        self.fingerprint = fingerprint(
            target.setups or (),
            paths=target.fingerprint_paths,
            root=target.fingerprint_root,
            extra=[stem(base)],
            dialect=sa_dialect,
            backend=base.backend,
        )
        self.template = sibling(base, template_name(stem(base), self.fingerprint, limit))
        candidate, lease, note = reserved or choose_clone(target)
        self.lease = lease
        self.url = candidate
        if note is not None:
            self.notes.append(note)
        self.rewinder = self._rewinder(candidate, clone=True)
        self._state = {
            FINGERPRINT: self.fingerprint,
            ORIGIN: self.template.database,
        }
        if not target.rebuild and self._reuse_clone():
            return
        self._build_and_clone()

    def _build_and_clone(self) -> None:
        assert self.template is not None
        with build_lock(self.target.url):
            if ensure_template(self.target, self.template, self.fingerprint, self.notes):
                self.built_template = True
            self._clone()

    def _reuse_clone(self) -> bool:
        """Keep the clone an earlier run left when it still is what the template makes."""
        assert self.rewinder is not None
        if not self.rewinder.exists():
            return False
        try:
            found, digest = self._installation()
        except DbrewindError:
            found, digest = Installation(installed=False), ""
        state = found.state
        root = self.target.fingerprint_root
        if root is not None and changed(state.get(SETUP_FILES), root):
            return False  # the template is built again (and says why), then cloned
        if (
            not self._matches(found, digest)
            or state.get(FINGERPRINT) != self.fingerprint
            or state.get(ORIGIN) != self._state[ORIGIN]
        ):
            if not found.installed or HOLDER not in state:
                self.notes.append(self._not_a_clone(installed=found.installed))
            return False
        self._state.update(state)
        repaired = self._pop_to(0) if found.depth or found.dirty else None
        self._repair_left_behind(state, found, repaired)
        self._write_state(**{HOLDER: holder_name(), CLEAN: "0"})
        return True

    def _not_a_clone(self, *, installed: bool) -> str:
        """What to say of a database found where this run's clone goes that is not one:
        half-made by a run that ended while making it, or made by someone else. One
        dbrewind never touched that holds tables is refused unless ``target.replace``."""
        assert self.rewinder is not None
        with self.rewinder.connection() as conn:
            ours = self.rewinder.dialect.created_by_dbrewind(conn)
            tables = [] if ours or installed else sorted(self.rewinder.dialect.inspect(conn).tables)
        if tables and not self.target.replace:
            shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if tables[5:] else "")
            raise DatabaseCreationError(
                f"{self.url.display()} exists, holds tables ({shown}) and was not made by "
                "dbrewind (created by hand, by the application's own scripts or another "
                "tool): dbrewind would replace it with a clone of its template, and what it "
                "holds would be lost. Drop it, point dbrewind_url at another name, or let "
                "dbrewind replace it (--dbrewind-replace, ini dbrewind_replace = true, "
                "Target(replace=True))."
            )
        if ours:
            return (
                f"{self.url.database!r} was left half-made by a run that ended while making it "
                "(killed or crashed); dbrewind made it again from its template"
            )
        return (
            f"{self.url.database!r} existed but was not a clone dbrewind made (created by hand "
            "or by another tool); dbrewind replaced it with a clone of its template"
        )

    def _repair_left_behind(
        self, state: Mapping[str, str], found: Installation, repaired: RewindResult | None
    ) -> None:
        """After ``repaired`` (the rewind of what was dirty, if anything was): put back the
        counters a run that ended without releasing this database moved, and say so.

        A database is leased while a run works on it and released cleanly at
        its end (:data:`CLEAN`); one found unreleased was held by a run that
        was killed (SIGKILL, ``os._exit`` of pytest-timeout's thread method, a
        crash). Its lease died with it; what it committed is rewound, and the
        counters its rolled-back writes moved (a sandbox's inserts) are put back.
        """
        if state.get(CLEAN) == "1" or CLEAN not in state:
            return
        assert self.rewinder is not None
        with self.rewinder.connection() as conn:
            self.rewinder.dialect.restore_counters(conn)
        who = state.get(HOLDER) or "an earlier run"
        if repaired is not None and (repaired.tables or found.depth):
            names = ", ".join(repr(t) for t in (repaired.tables or found.dirty)) or "-"
            layers = f" and {found.depth} baseline layer(s)" if found.depth else ""
            what = f"dbrewind rewound what it left in table(s) {names}{layers}"
        else:
            what = "it left no rows to rewind (its counters were put back)"
        self.notes.append(
            f"{self.url.database!r} was not released by the run that held it ({who}; killed "
            f"or crashed): its lease had ended with it, and {what}"
        )

    def _clone(self) -> None:
        assert self.rewinder is not None
        assert self.template is not None
        rewinder = self.rewinder
        rewinder.close()
        if rewinder.exists():
            rewinder.drop()
        rewinder.create(template=self.template)
        with rewinder.connection() as conn:
            self._state.update(rewinder.dialect.installation(conn).state)
        self._write_state(**{HOLDER: holder_name(), CLEAN: "0"})

    def _reclone(self) -> None:
        self.dispose_engines()
        self._build_and_clone()
        self._layers = [(owner, None) for owner, _depth in self._layers]
        self._depth = 0
        self.reclones += 1
        self._restamp()

    def _prepare_here(self) -> None:
        """In place or adopted: lease, check what is installed, run the setup if any."""
        target = self.target
        rewinder = self._rewinder(self.url, clone=False)
        if not rewinder.is_test_database():
            rewinder.close()
            if target.origin not in ROLLBACK_ONLY_ORIGINS:
                rewinder.ensure_safe("use")  # raises: nothing is sent to it
            # peewee's own test cases roll back and never commit: they may still run there
            self.notes.append(_not_a_test_database(self.url))
            return
        # an in-memory database is private to this process: nothing to lease
        if not self.url.is_memory:
            self.lease = get_dialect(self.url.backend).acquire_lock(self.url, "lease", wait=0)
        if self.lease is None and not self.url.is_memory:
            holder = get_dialect(self.url.backend).lock_holder(self.url, "lease")
            rewinder.close()
            self.notes.append(
                f"{self.url.display()} is in use by another run ({holder or 'a live session'}); "
                "this run's safety net is off there: only rollback sandboxes may use it"
            )
            return
        self.rewinder = rewinder
        if not rewinder.exists():
            rewinder.create()
        found, digest = self._installation()
        self._state = dict(found.state)
        if target.setups is not None:
            # In place: first undo what an earlier run left, then run the setup.
            if self._matches(found, digest) and (found.depth or found.dirty):
                self._pop_to(0)
            for step in target.setups:
                with rewinder.engine.begin() as conn:
                    step(conn)
            found, digest = self._installation()
            if not self._matches(found, digest) or found.dirty:
                self._install()
        elif not self._matches(found, digest):
            self._install()
        elif found.depth or found.dirty:
            if found.state.get(CLEAN) == "1":
                # Written after a clean release: this run's own setup did it.
                self._install()
            else:
                repaired = self._pop_to(0)  # what a run that died left behind
                self._repair_left_behind(found.state, found, repaired)
        self._write_state(**{HOLDER: holder_name(), CLEAN: "0"})


#: Origins whose tests run in a pure rollback sandbox on a database that is not
#: provably a test database (peewee-async's ``TransactionTestCase`` semantics,
#: which its users' suites rely on); every other entry point refuses it.
ROLLBACK_ONLY_ORIGINS = frozenset({"peewee"})


def _not_a_test_database(url: DatabaseURL) -> str:
    return (
        f"{url.database!r} ({url.display()}) is not provably a test database, so dbrewind's "
        "safety net is off there: rollback sandboxes run, nothing is tracked or cleaned. To "
        f"turn it on, use a database whose name says test, or set {ALLOW_ENV}={url.database}"
    )
