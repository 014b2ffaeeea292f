"""The clean strategy as a library: one object that owns one test database.

::

    from dbrewind import Rewinder

    rewinder = Rewinder("postgresql://postgres@127.0.0.1/app_test")
    rewinder.prepare(metadata.create_all)   # once: setup, tracking, baseline
    ...                                      # a test commits whatever it likes
    rewinder.rewind()                        # only the dirty tables go back
    await rewinder.arewind()                 # the same, from async code

"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, TypeVar, get_args

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.exc import DBAPIError

from ._setups import SetupCallable, as_steps
from ._url import DatabaseURL, parse_url
from .dialects import Dialect, RewindResult, SchemaInfo, get_dialect
from .dialects.engines import make_engine
from .exceptions import (
    ConfigurationError,
    ConnectionFailedError,
    DatabaseNotFoundError,
    DbrewindError,
    NotPreparedError,
    SchemaChangedError,
    SetupError,
    UnsafeDatabaseError,
    _chain,
)

__all__ = ["ALLOW_ENV", "ResetSequences", "Rewinder", "SetupCallable", "reset_sequences_setting"]

T = TypeVar("T")

ResetSequences = Literal["auto", "always", "never"]
"""When a rewind puts sequences / ``AUTO_INCREMENT`` counters back (see :class:`Rewinder`)."""
RESET_SEQUENCES: tuple[str, ...] = get_args(ResetSequences)


def reset_sequences_setting(value: object, *, where: str) -> ResetSequences:
    """``value`` as a ``reset_sequences`` setting: ``auto``, ``always`` or ``never`` (any
    case; ``True`` is ``always``, ``False`` ``never``). A bad one raises
    :class:`~dbrewind.exceptions.ConfigurationError` naming ``where`` it was given."""
    if value is True:
        return "always"
    if value is False:
        return "never"
    if isinstance(value, str) and value.strip().lower() in RESET_SEQUENCES:
        return value.strip().lower()  # type: ignore[return-value]
    raise ConfigurationError(
        f"{where} = {value!r}: give one of {', '.join(RESET_SEQUENCES)} (or True for always, "
        "False for never)."
    )


ALLOW_ENV = "DBREWIND_ALLOW"
"""Environment variable: comma-separated database names dbrewind may write to
although their names do not say ``test``."""


class Rewinder:
    """Owns one test database: prepares it once, then puts dirty tables back to the baseline.

    :param url: the test database (``str`` or SQLAlchemy ``URL``); an async
        driver is fine, dbrewind uses the matching sync driver for its own work.
    :param schemas: PostgreSQL schemas whose tables to track (default ``public``).
    :param allow: allow writing to this database although its name does not
        say ``test`` and dbrewind did not create it.
    :param reset_sequences: when a rewind puts the sequences / ``AUTO_INCREMENT``
        counters of the dirty tables back to their baseline values, so that the
        next test gets the same ids: ``"always"`` (``True``), ``"never"``
        (``False``: ids go on from where the test left them; the rows are
        rewound all the same), or ``"auto"`` (the default): always where that is
        cheap (PostgreSQL, SQLite: :attr:`Dialect.cheap_counter_reset
        <dbrewind.dialects.base.Dialect.cheap_counter_reset>`), and on
        MySQL/MariaDB, where it is DDL, only when asked for:
        ``rewind(reset_sequences=True)`` or :meth:`restore_counters` (the pytest
        marker option ``@pytest.mark.dbrewind(reset_sequences=True)`` does both),
        as Django's ``TransactionTestCase.reset_sequences``.
    :param drop_created_tables: drop tables a test created (else only reported).
    :param truncate_threshold: a table whose rewind deleted more rows than this
        is emptied with ``TRUNCATE`` from then on (cheaper for large tables).
    :param lock_timeout: seconds a rewind waits for a lock another session
        holds (a transaction a test left open) before it raises
        :class:`~dbrewind.exceptions.LockTimeoutError`, which lists the
        sessions with a transaction open; ``None`` waits as long as the
        server lets it. MySQL counts whole seconds.
    :param engine: an existing sync engine to the same database to use for
        dbrewind's own connection (required for a shared in-memory SQLite).
    """

    def __init__(
        self,
        url: str | URL | DatabaseURL,
        *,
        schemas: Sequence[str] = (),
        allow: bool = False,
        reset_sequences: ResetSequences | bool = "auto",
        drop_created_tables: bool = False,
        truncate_threshold: int = 1000,
        lock_timeout: float | None = 10.0,
        engine: Engine | None = None,
    ) -> None:
        self.url: DatabaseURL = parse_url(url)
        self.dialect: Dialect = get_dialect(self.url.backend, schemas=tuple(schemas))
        self.lock_timeout = lock_timeout
        self.allow = allow
        self.reset_sequences = reset_sequences
        self._owed: set[str] = set()
        """Tables rewound without their counters since the last :meth:`restore_counters`."""
        self.drop_created_tables = drop_created_tables
        self.truncate_threshold = truncate_threshold
        self._engine = engine
        self._owns_engine = engine is None
        self._conn: Connection | None = None
        self._lock = threading.RLock()
        self._truncate: set[str] = set()
        self._schema: SchemaInfo | None = None
        self._verdict: tuple[list[str], str | None] | None = None
        #: Times dbrewind's own connection was found closed by the server and replaced.
        self.reconnects = 0
        #: What happened the last time it was (for a run's report), else "".
        self.last_reconnect = ""
        #: Faults dbrewind's own work survived: reconnects, and server faults its
        #: dialect cleared (:meth:`Dialect.repair <dbrewind.dialects.base.Dialect.repair>`).
        self.recoveries = 0
        #: What the last of them was and what dbrewind did (for a run's report), else "".
        self.last_recovery = ""
        #: Rewinds that found something to do, and their total time (seconds).
        self.rewinds = 0
        self.checks = 0
        self.seconds = 0.0

    def __repr__(self) -> str:
        return f"Rewinder({self.url.display()!r})"

    @property
    def reset_sequences(self) -> ResetSequences:
        """When rewinds put counters back: ``auto``, ``always`` or ``never`` (see the class
        doc); set it to any of those, or ``True`` / ``False``."""
        return self._reset_sequences

    @reset_sequences.setter
    def reset_sequences(self, value: ResetSequences | bool) -> None:
        self._reset_sequences = reset_sequences_setting(
            value, where=f"Rewinder(reset_sequences) for {self.url.display()}"
        )

    def resets_sequences(self, requested: bool | None = None) -> bool:
        """Whether a rewind puts counters back: ``requested`` when given (a test that
        asks, or asks not to), else what :attr:`reset_sequences` says for this database."""
        if requested is not None:
            return bool(requested)
        if self._reset_sequences == "auto":
            return self.dialect.cheap_counter_reset
        return self._reset_sequences == "always"

    @property
    def lock_timeout(self) -> float | None:
        """Seconds a rewind waits for a lock another session holds (see the class doc)."""
        return self.dialect.lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, seconds: float | None) -> None:
        if seconds is not None and not (isinstance(seconds, int | float) and seconds > 0):
            raise ConfigurationError(
                f"Rewinder(lock_timeout={seconds!r}) for {self.url.display()}: give a "
                "number of seconds above 0, or None to wait as long as the server lets it."
            )
        self.dialect.lock_timeout = None if seconds is None else float(seconds)

    # --------------------------------------------------------------- plumbing
    @property
    def engine(self) -> Engine:
        """A synchronous engine to the test database (created on first use)."""
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """dbrewind's own AUTOCOMMIT connection, kept open between calls; thread-safe.

        Waits first for what the previous rewind left running in the
        background (MySQL puts ``AUTO_INCREMENT`` counters back that way).
        """
        with self._lock:
            self.dialect.settle()
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                if self._conn is not None and self._conn.invalidated:
                    # a statement that tolerates errors found it closed by the server
                    self._reconnected("a statement found it closed", verified=False)
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            yield self._conn

    def _reconnected(self, lost: str, *, verified: bool) -> None:
        self.reconnects += 1
        found = ", found its tracking installed" if verified else ""
        self.last_reconnect = (
            f"dbrewind's own connection to {self.url.database!r} was lost ({lost}); it "
            f"reconnected{found} and carried on"
        )
        self._recovered(self.last_reconnect)

    def _recovered(self, what: str) -> None:
        self.recoveries += 1
        self.last_recovery = what

    def call(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` on dbrewind's own connection (see :meth:`connection`), surviving its loss.

        When the server closed that connection (a failover, a restart, an
        idle-connection reaper, ``pg_terminate_backend``/``KILL``), dbrewind
        opens a new one, checks that its tracking is still installed, and runs
        ``fn`` once more: ``fn`` must be safe to repeat (every rewind is). The
        loss is counted in :attr:`reconnects` and described in
        :attr:`last_reconnect`. A server fault the dialect knows how to clear
        (see :meth:`Dialect.repair <dbrewind.dialects.base.Dialect.repair>`) is
        cleared and ``fn`` run once more too. Both count in :attr:`recoveries`,
        the last described in :attr:`last_recovery`.
        """
        with self._lock:
            lost: str | None = None  # each fault is survived once a call
            repaired: str | None = None
            while True:
                conn: Connection | None = None
                raw: object = None
                try:
                    with self.connection() as conn:
                        raw = conn.connection.dbapi_connection
                        if lost is not None and not self.dialect.is_installed(conn):
                            raise NotPreparedError(
                                f"dbrewind's connection to {self.url.display()} was lost "
                                f"({lost}); on a new connection its tracking is gone (was the "
                                "database restored or recreated?). Prepare the database "
                                "again (Rewinder.prepare())."
                            ) from None
                        result = fn(conn)
                    break
                except NotPreparedError:
                    raise
                except Exception as exc:
                    # (also a second connection of dbrewind's, e.g. MySQL's counter reset)
                    gone = _disconnect(exc, self.engine.dialect, conn, raw)
                    if gone is not None and lost is None:
                        lost = gone
                        self._discard_connection()
                        continue
                    if gone is None and repaired is None:
                        repaired = self.dialect.repair(self.engine, exc)
                        if repaired is not None:
                            continue
                    raise
            if lost is not None:
                self._reconnected(lost, verified=True)
            if repaired is not None:
                self._recovered(repaired)
            return result

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Return dbrewind's connection and dispose of the engine it created."""
        with self._lock:
            self.dialect.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._owns_engine and self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> Rewinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ safety
    def _reasons(self, url: DatabaseURL, *, named: bool) -> list[str]:
        """Why ``url``'s name lets dbrewind write there; ``allow`` counts only for the
        database the URL names (``named``), not for one a connection reached instead."""
        reasons = []
        if named and self.allow:
            reasons.append("allowed explicitly (allow=True)")
        if url.name_says_test():
            reasons.append("its name says test")
        listed = {n.strip() for n in os.environ.get(ALLOW_ENV, "").split(",") if n.strip()}
        if url.database in listed or os.path.basename(url.database) in listed:
            reasons.append(f"listed in {ALLOW_ENV}")
        return reasons

    def _judge(self) -> tuple[list[str], str | None]:
        """Why this is a test database (empty: it is not provably one), and the name of
        the database a connection reached when it is not the one the URL names.

        Judged on the database the connection actually reached, as its server
        reports it: a proxy, a ``dbname``/``init_command`` connection option or a
        driver default cannot turn a test URL into a write elsewhere. A database
        that does not exist yet is judged by its name (creating it is safe).
        """
        url, dialect = self.url, self.dialect
        if url.is_memory:
            return ["it is in memory"], None
        if dialect.connect_creates_database and not dialect.database_exists(url):
            return self._reasons(url, named=True), None
        try:
            with self.connection() as conn:
                reached = dialect.connected_database(conn)
                if not dialect.reaches(url, reached):
                    actual = url.with_database(reached)
                    reasons = self._reasons(actual, named=False)
                    if not reasons and dialect.created_by_dbrewind(conn):
                        reasons = ["dbrewind created it"]
                    return reasons, actual.database
                reasons = self._reasons(url, named=True)
                if not reasons and dialect.created_by_dbrewind(conn):
                    reasons = ["dbrewind created it"]
                return reasons, None
        except DatabaseNotFoundError:
            return self._reasons(url, named=True), None
        except ConnectionFailedError:
            raise  # the server itself cannot be used: asking it again would wait again
        except (DBAPIError, DbrewindError):
            if dialect.database_exists(url):
                raise
            return self._reasons(url, named=True), None

    def test_database_reasons(self) -> list[str]:
        """Why dbrewind may write to this database (empty when it may not): its name
        says test, dbrewind created it, or the user allowed it (``allow=True`` or the
        ``DBREWIND_ALLOW`` variable) — judged on the database the connection reaches."""
        if self._verdict is None:
            self._verdict = self._judge()
        return list(self._verdict[0])

    def is_test_database(self) -> bool:
        """Whether dbrewind may write here (see :meth:`test_database_reasons`)."""
        return bool(self.test_database_reasons())

    def ensure_safe(self, action: str) -> None:
        """Raise :class:`UnsafeDatabaseError` unless this is provably a test database.

        Checked before dbrewind sends any write: nothing is created, set up,
        installed or rewound in a database that fails it.
        """
        if self.is_test_database():
            return
        assert self._verdict is not None
        reached = self._verdict[1]
        name = self.url.database
        if reached is not None:
            raise UnsafeDatabaseError(
                f"Refusing to {action} database {name!r} ({self.url.display()}): the "
                f"connection reached the database {reached!r} instead (a connection option, "
                "a proxy or a service definition sends it there), and dbrewind cannot show "
                f"that {reached!r} is a test database. Remove the option that redirects the "
                f"connection, or point dbrewind at a test database such as {name!r} itself."
            )
        stem = os.path.splitext(os.path.basename(name))[0]
        raise UnsafeDatabaseError(
            f"Refusing to {action} database {name!r} ({self.url.display()}): dbrewind cannot "
            "show it is a test database (no word of its name is 'test', 'tests' or "
            "'testing', and dbrewind did not create it). Point dbrewind at a test database "
            f"such as {stem + '_test'!r}, or allow this one explicitly with "
            f"Rewinder(..., allow=True) or the environment variable {ALLOW_ENV}={name}."
        )

    # ---------------------------------------------------------------- databases
    def exists(self) -> bool:
        """Whether the test database exists."""
        return self.url.is_memory or self.dialect.database_exists(self.url)

    def create(self, *, template: DatabaseURL | str | None = None) -> None:
        """Create the test database (as a copy of ``template`` when given)."""
        self.ensure_safe("create")
        tmpl = parse_url(template) if template is not None else None
        self.dialect.create_database(self.url, template=tmpl)
        # judged by its name until now: judge the database a connection reaches
        self._verdict = None
        try:
            self.ensure_safe("write to")
        except UnsafeDatabaseError:
            self.close()
            self.dialect.drop_database(self.url)  # empty, made just now: leave nothing
            raise

    def drop(self) -> None:
        """Drop the test database (after closing dbrewind's own connections)."""
        self.ensure_safe("drop")
        self.close()
        self.dialect.drop_database(self.url)
        self._verdict = None

    # ----------------------------------------------------------------- prepare
    def prepare(
        self,
        setup: SetupCallable | Sequence[SetupCallable] | None = None,
        *,
        recreate: bool = False,
    ) -> SchemaInfo:
        """Make the database ready: create it if missing, run ``setup``, install tracking.

        Once per session. Any earlier installation (a previous or crashed run)
        is first rewound to its own baseline and removed, so nothing a crashed
        test committed becomes part of the new baseline. ``setup`` runs inside
        one transaction and must be idempotent when the database is reused
        (``create_all`` is); ``recreate=True`` starts from an empty database.
        """
        self.ensure_safe("prepare")
        if recreate and not self.url.is_memory and self.dialect.database_exists(self.url):
            self.drop()
        if not self.exists():
            self.create()
        with self.connection() as conn:
            if self.dialect.is_installed(conn):
                self._undo_installation(conn)
                self.dialect.uninstall(conn)
        steps = as_steps(setup, what="Rewinder.prepare(setup)")
        for step in steps:
            with self.engine.begin() as conn:
                step(conn)
        schema = self.install()
        if steps and not schema.tables:
            raise SetupError(
                f"The setup ({', '.join(map(repr, steps))}) ran, but {self.url.display()} "
                "has no tables afterwards: it built its schema in another database (or, on "
                "PostgreSQL, in a schema not among those tracked: see schemas). Make it "
                "use the connection it receives, not an engine of its own or the "
                "application's settings."
            )
        return schema

    def _undo_installation(self, conn: Connection) -> None:
        """Rewind an earlier installation to its own baseline, below any layer a killed
        run left; what it cannot put back (a table that is gone) is left to the setup."""
        try:
            self.dialect.pop_baseline(conn, 0)
        except DbrewindError:
            with contextlib.suppress(DbrewindError):  # an older layout without layers
                self.dialect.rewind(conn)

    async def aprepare(
        self,
        setup: SetupCallable | Sequence[SetupCallable] | None = None,
        *,
        recreate: bool = False,
    ) -> SchemaInfo:
        """:meth:`prepare` without blocking the event loop."""
        return await asyncio.to_thread(self.prepare, setup, recreate=recreate)

    def install(self) -> SchemaInfo:
        """Install tracking on the database as it is now, and capture that as the baseline."""
        self.ensure_safe("install tracking in")
        with self.connection() as conn:
            schema = self.dialect.inspect(conn)
            self.dialect.install(conn, schema)
        self._schema = schema
        self._truncate.clear()
        return schema

    def uninstall(self) -> None:
        """Remove all tracking objects; the user's tables and rows stay as they are."""
        with self.connection() as conn:
            self.dialect.uninstall(conn)
        self._schema = None

    @property
    def schema(self) -> SchemaInfo:
        """The tables and foreign keys tracked since :meth:`install`."""
        if self._schema is None:
            with self.connection() as conn:
                if not self.dialect.is_installed(conn):
                    raise self._not_prepared()
                self._schema = self.dialect.inspect(conn)
        return self._schema

    def _not_prepared(self) -> NotPreparedError:
        return NotPreparedError(
            f"dbrewind tracking is not installed in {self.url.display()}. "
            "Call Rewinder.prepare() (or install()) once before tests run."
        )

    # ------------------------------------------------------------------ rewind
    def dirty_tables(self) -> list[str]:
        """Tables written to (and committed) since the last rewind."""
        return self.call(self.dialect.dirty_tables)

    def mark_dirty(self, *tables: str) -> list[str]:
        """Treat ``tables`` as written: the next :meth:`rewind` puts them back too.

        For changes no trigger sees, e.g. a ``TRUNCATE`` on MySQL of a table
        whose baseline is empty. Names are table keys as :meth:`dirty_tables`
        gives them; on PostgreSQL a bare name is found in the tracked schemas
        when it is not ambiguous. Returns the keys marked.
        """
        tracked = self.call(self.dialect.tracked_tables)
        keys = [_resolve_key(name, tracked, self.url, self.dialect) for name in tables]
        self.call(lambda conn: self.dialect.mark_dirty(conn, keys))
        return keys

    def rewind(
        self, *, raise_on_dropped: bool = True, reset_sequences: bool | None = None
    ) -> RewindResult:
        """Put the dirty tables back to the baseline; one round trip when none is dirty.

        ``reset_sequences``: put the dirty tables' counters back too (True), or not
        (False), this time; None: as :attr:`reset_sequences` says (see the class doc).

        Tables a test created are reported in the result (and dropped when
        ``drop_created_tables``); a table dropped and created again under its
        name is tracked again and rewound (``recreated_tables``; PostgreSQL and
        SQLite). A baseline table the test dropped (or altered so that its
        baseline rows no longer fit) raises :class:`SchemaChangedError` after
        everything else has been rewound, or with ``raise_on_dropped=False`` is
        only reported in ``dropped_tables``.

        MySQL/MariaDB: the ``ALTER TABLE .. AUTO_INCREMENT`` of a table with
        baseline rows may still be running when this returns, on a second
        connection that holds a WRITE lock on that table until its counter is
        back (nothing can see it before). The next call on this Rewinder waits
        for it and raises its error, if any; :meth:`close` waits for it too.
        """
        self.ensure_safe("rewind")
        started = time.perf_counter()
        reset = self.resets_sequences(reset_sequences)
        result = self.call(lambda conn: self._rewind(conn, reset))
        if not reset:
            self._owed.update(result.tables)
        result.seconds = time.perf_counter() - started
        self.checks += 1
        if result.tables:
            self.rewinds += 1
            self.seconds += result.seconds
            for key, count in result.deleted.items():
                if count > self.truncate_threshold:
                    self._truncate.add(key)
        if result.dropped_tables and raise_on_dropped:
            names = ", ".join(repr(t) for t in result.dropped_tables)
            raise SchemaChangedError(
                f"Table(s) {names} of the baseline were dropped (or altered so that their "
                f"baseline rows no longer fit) in {self.url.display()}, so they cannot be "
                "rewound; everything else was. Create them again before the rewind (in the "
                "test's teardown): dbrewind then restores their rows and tracks them again. "
                "Or prepare the database again (Rewinder.prepare())."
            )
        return result

    def _rewind(self, conn: Connection, reset: bool) -> RewindResult:
        try:
            result = self.dialect.rewind(
                conn, truncate=frozenset(self._truncate), reset_sequences=reset
            )
        except NotPreparedError:
            raise self._not_prepared() from None
        if result.created_tables and self.drop_created_tables:
            for key in result.created_tables:
                self.dialect.drop_table(conn, key)
        return result

    def restore_counters(self) -> RewindResult:
        """Put every tracked sequence / counter back to its baseline value now.

        For a test that must start from the baseline's ids whatever ran before it
        (a Django ``TransactionTestCase`` with ``reset_sequences = True``): the
        tables earlier rewinds left with their counters moved (``reset_sequences``
        ``"never"``, or ``"auto"`` on MySQL/MariaDB), and on MySQL/MariaDB the
        counters that rolled-back inserts used up (one catalog read finds those),
        are rewound with their counters. Waits until the counters are back
        (MySQL's background ``ALTER`` included).
        """
        self.ensure_safe("rewind")

        def work(conn: Connection) -> RewindResult:
            if self._owed:
                self.dialect.mark_dirty(conn, sorted(self._owed))
            self.dialect.restore_counters(conn)
            return self._rewind(conn, True)

        result = self.call(work)
        self._owed.clear()
        self.dialect.settle()
        return result

    async def arewind(self, *, reset_sequences: bool | None = None) -> RewindResult:
        """:meth:`rewind` from async code, without blocking the event loop."""
        return await asyncio.to_thread(self.rewind, reset_sequences=reset_sequences)

    async def adirty_tables(self) -> list[str]:
        """:meth:`dirty_tables` from async code."""
        return await asyncio.to_thread(self.dirty_tables)


def _disconnect(
    exc: BaseException, dialect: SADialect, conn: Connection | None, raw: object
) -> str | None:
    """What a lost connection said, when ``exc`` (or what caused it) says the server closed
    a connection (``conn``, whose driver connection is ``raw``, or another one); else None.
    SQLAlchemy tells a disconnect on every database, for its own errors and the driver's."""
    for error in _chain(exc):
        if isinstance(error, DBAPIError):
            if error.connection_invalidated:
                return _first_line(error.orig or error)
        elif isinstance(error, dialect.loaded_dbapi.Error) and (
            (conn is not None and conn.invalidated) or dialect.is_disconnect(error, raw, None)  # type: ignore[arg-type]
        ):
            return _first_line(error)
    return None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _resolve_key(name: str, tracked: Sequence[str], url: DatabaseURL, dialect: Dialect) -> str:
    if name in tracked:
        return name
    matches = [k for k in tracked if dialect.split_key(k)[1] == name]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(tracked[:12]) + (", ..." if len(tracked) > 12 else "")
    if matches:
        raise ConfigurationError(
            f"Table {name!r} is in several tracked schemas of {url.display()}: "
            f"{', '.join(matches)}. Name it with its schema."
        )
    raise ConfigurationError(
        f"{name!r} is not a table dbrewind tracks in {url.display()} (tracked: {shown or 'none'}). "
        "A table created after prepare() is not tracked: prepare again to track it."
    )
