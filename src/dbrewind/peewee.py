"""A rollback sandbox for synchronous peewee tests, with dbrewind's safety net.

::

    from dbrewind.peewee import PeeweeSandbox

    with PeeweeSandbox(database):
        User.create(name="ada")
        with database.atomic():          # a savepoint, to any depth
            ...
        try:
            User.create(name="ada")      # IntegrityError: only this statement is undone
        except IntegrityError:
            pass
        assert User.select().count() == 1
    # everything above is rolled back; writes that escaped (another thread's
    # connection) were rewound by the safety net and reported in ``leaked``

The block runs inside one outer transaction on the current thread's
connection. Transactions the code under test opens become savepoints:
``database.atomic()``, ``transaction()``, ``savepoint()``, ``begin()`` /
``commit()`` / ``rollback()`` and raw ``BEGIN``/``COMMIT``/``ROLLBACK``
statements through ``database.execute_sql``. On PostgreSQL every statement
runs under its own savepoint, so a failing statement is undone alone and the
transaction stays usable (MySQL and SQLite undo a failing statement by
themselves). Statements that would end the outer transaction behind dbrewind's
back are refused: MySQL DDL, ``TRUNCATE`` and the other statements that commit
implicitly, and a change of autocommit, with
:class:`~dbrewind.exceptions.SandboxBrokenError` (as the SQLAlchemy sandbox
refuses them); two-phase commit with :class:`~dbrewind.exceptions.SandboxError`.

The safety net: the database is taken up through :mod:`dbrewind.provision`
(the pytest plugin's own when the URL is its): tracking is checked against
the tables as they are, by name, and installed again when the suite's setup
recreated them; the database as it is at the first block is the baseline.
After each block, any table a write outside the sandbox (another thread,
another connection) committed to is rewound and reported in
:attr:`PeeweeSandbox.leaked`. On a database that is not provably a test
database, or one another run holds, the sandbox runs without a safety net,
after one :class:`~dbrewind.SafetyNetWarning`.

The statement routing (:class:`SavepointRouter`) does no I/O and is shared
with :mod:`dbrewind.peewee_async`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import ContextDecorator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import peewee

from ._sql import autocommit_setting, commits_implicitly, transaction_control
from ._url import Backend, DatabaseURL, parse_url
from .dialects import RewindResult, get_dialect
from .dialects._syntax import syntax_for
from .exceptions import ConfigurationError, SandboxBrokenError, SandboxError
from .rewinder import Rewinder
from .sandbox import LeakCallback

if TYPE_CHECKING:
    from .provision import Database

__all__ = [
    "LeakCallback",
    "PeeweeSandbox",
    "Route",
    "SandboxOptions",
    "SavepointRouter",
    "TransactionTestCase",
    "backend_of",
    "close_rewinders",
    "database_url",
    "safety_net_database",
    "tracking_rewinder",
]

logger = logging.getLogger("dbrewind")

# peewee's translation of driver exceptions into peewee.IntegrityError & co.
_wrap_errors: Any = getattr(peewee, "__exception_wrapper__")  # noqa: B009


def _lost(database: Any) -> bool:
    """Whether ``database``'s connection no longer answers (after a statement on it failed)."""
    try:
        with _wrap_errors:
            database.cursor().execute("SELECT 1")
    except Exception:
        return True
    return False


# ------------------------------------------------------------------ databases
def backend_of(database: peewee.Database) -> Backend:
    """The dbrewind backend of a peewee (or peewee-async) database."""
    if isinstance(database, peewee.SqliteDatabase):
        return "sqlite"
    if isinstance(database, peewee.PostgresqlDatabase):
        return "postgresql"
    if isinstance(database, peewee.MySQLDatabase):
        return "mysql"
    raise ConfigurationError(
        f"dbrewind does not know the peewee database class {type(database).__name__}: "
        "use a SqliteDatabase, PostgresqlDatabase or MySQLDatabase (or their "
        "peewee-async counterparts)."
    )


def database_url(database: peewee.Database) -> DatabaseURL:
    """The URL of the database a peewee database object connects to.

    Built from its connection parameters (database name, host, port, user,
    password; the file path for SQLite), with the synchronous driver dbrewind
    uses for its own work.
    """
    if database.deferred:
        raise ConfigurationError(
            f"The peewee database {database!r} is not initialised (deferred): call "
            "database.init(...) before entering the sandbox."
        )
    params: dict[str, Any] = dict(database.connect_params)
    dialect = get_dialect(backend_of(database))
    return parse_url(dialect.connect_params_url(str(database.database), params))


def tracking_rewinder(
    database: peewee.Database, rewinder: Rewinder | None = None
) -> Rewinder | None:
    """The safety net's :class:`~dbrewind.Rewinder` for ``database``, or None when it is off.

    With ``rewinder`` given, that one (tracking installed first when missing).
    Otherwise the database is taken up by the lifecycle every entry point
    shares (:mod:`dbrewind.provision`): leased for the process, its tracking
    checked against the tables as they are now (a suite that drops and
    recreates its tables gets tracking installed again), and the database as
    it is at first use is the baseline; the pytest plugin's database is reused
    when the URL is its. None, after one :class:`~dbrewind.SafetyNetWarning`,
    for a database that is not provably a test database or that another run
    holds: the sandbox still runs there, writing nothing lasting.
    """
    if rewinder is not None:
        with rewinder.connection() as conn:
            installed = rewinder.dialect.is_installed(conn)
        if not installed:
            rewinder.install()
        return rewinder
    return safety_net_database(database).rewinder


def safety_net_database(database: peewee.Database) -> Database:
    """The lifecycle's :class:`~dbrewind.provision.Database` for a peewee database."""
    from .provision import Target, acquire

    return acquire(Target(url=database_url(database), origin="peewee"))


def close_rewinders() -> None:
    """Release the databases the sandboxes' safety net took up (e.g. at session end).

    Each is rewound to its baseline and its lease given up; tracking stays
    installed, and the next sandbox takes the database up again.
    """
    from .provision import databases

    for held in databases():
        if held.target.origin == "peewee":
            held.release()


# ---------------------------------------------------------- statement routing
@dataclass(frozen=True)
class Route:
    """What to run for one statement the code under test sent."""

    kind: Literal["run", "control", "replace"]
    """``run``: the statement itself, under a statement savepoint when
    :attr:`SavepointRouter.guard` is set; ``control``: the statement itself, a
    savepoint command never wrapped; ``replace``: :attr:`statements` instead."""
    statements: tuple[str, ...] = ()


class SavepointRouter:
    """Maps the transaction commands of code under test onto savepoints (no I/O).

    ``BEGIN`` / ``START TRANSACTION`` open a savepoint; ``COMMIT`` / ``END``
    release the innermost one opened that way and ``ROLLBACK`` / ``ABORT``
    roll back to it; with none open they do nothing (as in autocommit mode).
    Savepoint commands pass through. Commands that would end the outer
    transaction are refused with :class:`~dbrewind.exceptions.SandboxError`.
    """

    STATEMENT_SAVEPOINT = "dbrewind_stmt"

    def __init__(self, backend: Backend, where: str) -> None:
        self.backend: Backend = backend
        self.syntax = syntax_for(backend)
        self.where = where
        self._ops = get_dialect(backend).sandbox
        #: Whether each statement needs its own savepoint to survive an error
        #: (PostgreSQL aborts the whole transaction on any error).
        self.guard = self._ops.statement_guard
        self.open: list[str] = []
        self._counter = 0

    def quote(self, name: str) -> str:
        """Quote an identifier for this backend."""
        return self._ops.quote(name)

    # statements run around a guarded statement
    def guard_begin(self) -> str:
        return f"SAVEPOINT {self.quote(self.STATEMENT_SAVEPOINT)}"

    def guard_release(self) -> str:
        return f"RELEASE SAVEPOINT {self.quote(self.STATEMENT_SAVEPOINT)}"

    def guard_undo(self) -> tuple[str, str]:
        name = self.quote(self.STATEMENT_SAVEPOINT)
        return (f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}")

    def _refuse(
        self, sql: str, why: str, fix: str, kind: type[SandboxError] = SandboxError
    ) -> SandboxError:
        shown = " ".join(sql.split())[:80]
        return kind(f"dbrewind's sandbox on {self.where} refused {shown!r}: {why} {fix}")

    def _open(self) -> str:
        self._counter += 1
        name = f"dbrewind_tx_{self._counter}"
        self.open.append(name)
        return f"SAVEPOINT {self.quote(name)}"

    def _commit(self, chain: bool) -> tuple[str, ...]:
        if not self.open:
            return ()
        out = [f"RELEASE SAVEPOINT {self.quote(self.open.pop())}"]
        if chain:
            out.append(self._open())
        return tuple(out)

    def _rollback(self, chain: bool) -> tuple[str, ...]:
        if not self.open:
            return ()
        name = self.quote(self.open.pop())
        out = [f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}"]
        if chain:
            out.append(self._open())
        return tuple(out)

    def route(self, sql: str) -> Route:
        """Decide what to run for ``sql``; updates the open-savepoint stack."""
        control = transaction_control(sql, self.syntax)
        if control is not None:
            if control.kind == "begin":
                return Route("replace", (self._open(),))
            if control.kind == "commit":
                return Route("replace", self._commit(control.chain))
            if control.kind == "rollback":
                return Route("replace", self._rollback(control.chain))
            if control.kind == "two_phase":
                raise self._refuse(
                    sql,
                    "two-phase commit cannot run inside the test's outer transaction.",
                    "Test that code with dbrewind's clean strategy (real commits, cleaned after).",
                )
            return Route("control")  # SAVEPOINT, RELEASE, ROLLBACK TO
        if autocommit_setting(sql, self.syntax) is not None:
            raise self._refuse(
                sql,
                "changing autocommit would commit the test's outer transaction.",
                "Use database.atomic() for a transaction instead.",
                SandboxBrokenError,
            )
        if commits_implicitly(sql, self.syntax):
            raise self._refuse(
                sql,
                "MySQL commits the open transaction before this statement, which would "
                "end the test's sandbox and keep its writes.",
                "Create tables before entering the sandbox, use "
                "Model.delete() instead of TRUNCATE, or test this code with dbrewind's "
                "clean strategy.",
                SandboxBrokenError,
            )
        return Route("run")

    def reset(self) -> None:
        """Forget open savepoints (the outer transaction is being rolled back)."""
        self.open.clear()


# ------------------------------------------------------------------- patching
class _Patches:
    """Instance attributes set on an object and reverted later, in reverse order."""

    _missing = object()

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []

    def set(self, target: object, name: str, value: object) -> None:
        old = target.__dict__.get(name, self._missing)
        self._undo.append((target, name, old))
        setattr(target, name, value)

    def revert(self) -> None:
        while self._undo:
            target, name, old = self._undo.pop()
            if old is self._missing:
                target.__dict__.pop(name, None)
            else:
                setattr(target, name, old)


# -------------------------------------------------------------------- sandbox
class SandboxOptions:
    """What the sync and async peewee sandboxes share: their options and the leak report."""

    def __init__(
        self,
        database: Any,
        *,
        rewinder: Rewinder | None,
        safety_net: bool,
        on_leak: LeakCallback | None,
    ) -> None:
        self.database: Any = database
        self.rewinder = rewinder
        self._given_rewinder = rewinder is not None
        self._database: Database | None = None
        self.safety_net = safety_net
        self.on_leak = on_leak
        #: What the safety net rewound after the last block, when writes escaped it.
        self.leaked: RewindResult | None = None
        self._router: SavepointRouter | None = None
        self._patches = _Patches()

    def _take_safety_net(self) -> None:
        """Choose this block's safety net: the given Rewinder, the lifecycle's, or none."""
        self._database = None
        if not self.safety_net:
            return
        if self.rewinder is None and database_url(self.database).is_memory:
            return  # another connection sees another database: nothing can escape
        if self.rewinder is not None and self._given_rewinder:
            self.rewinder = tracking_rewinder(self.database, self.rewinder)
            return
        self._database = safety_net_database(self.database)
        self.rewinder = self._database.rewinder

    def _after_block(self) -> None:
        """The safety net after the block: rewind what escaped it, and say so."""
        if not self.safety_net:
            return
        rewinder = self.rewinder
        recoveries = rewinder.recoveries if rewinder is not None else 0
        if self._database is not None:
            if self._database.safety_net:
                self._report(self._database.after_test())
        elif self.rewinder is not None:
            self._report(self.rewinder.rewind())
        if rewinder is not None and rewinder.recoveries != recoveries:
            # the server closed dbrewind's connection (a restart, a failover...): say so
            logger.warning("%s", rewinder.last_recovery)
            notes = self._database.notes if self._database is not None else None
            if notes is not None and rewinder.last_recovery not in notes:
                notes.append(rewinder.last_recovery)  # the pytest plugin's summary shows it

    def _report(self, result: RewindResult) -> None:
        """Record and announce what the safety net rewound (nothing when clean)."""
        if result.clean:
            return
        self.leaked = result
        assert self.rewinder is not None
        logger.warning(
            "Writes escaped the rollback sandbox on %s and were rewound: %s",
            self.rewinder.url.display(),
            ", ".join(result.tables + result.created_tables),
        )
        if self.on_leak is not None:
            self.on_leak(result)


class PeeweeSandbox(SandboxOptions, ContextDecorator):
    """Run a block (or, as a decorator, a function) in a rollback sandbox on ``database``.

    :param database: a peewee ``SqliteDatabase``, ``PostgresqlDatabase`` or
        ``MySQLDatabase`` (pooled variants included).
    :param rewinder: the :class:`~dbrewind.Rewinder` to check for escaped
        writes; by default one is built from the database's connection
        parameters (see :func:`tracking_rewinder`).
    :param safety_net: set ``False`` to run without tracking: nothing is
        installed, escaped writes are neither cleaned nor reported.
    :param on_leak: called with the :class:`~dbrewind.RewindResult` when
        writes escaped the sandbox and were rewound.

    All statements of the entering thread share its one connection; with a
    ``thread_safe=False`` database every thread shares it and statements are
    serialised. Other threads of a thread-safe database use their own
    connections: their commits are real, and the safety net rewinds them.

    ``TransactionTestCase`` is another name for this class (the name of
    peewee-async's testing helper, whose drop-in is
    :class:`dbrewind.peewee_async.AsyncPeeweeSandbox`).
    """

    def __init__(
        self,
        database: peewee.Database,
        *,
        rewinder: Rewinder | None = None,
        safety_net: bool = True,
        on_leak: LeakCallback | None = None,
    ) -> None:
        super().__init__(database, rewinder=rewinder, safety_net=safety_net, on_leak=on_leak)
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._opened = False
        self._active = False

    def __repr__(self) -> str:
        return f"PeeweeSandbox({self.database!r})"

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> PeeweeSandbox:
        if self._active:
            raise SandboxError(
                f"{self!r} is already active: it cannot be entered twice at once. Nest "
                "database.atomic() blocks inside it instead."
            )
        db = self.database
        self._take_safety_net()
        self.leaked = None
        where = database_url(db).display()
        if db.in_transaction():
            raise SandboxError(
                f"{where} has a transaction open on this thread: enter PeeweeSandbox "
                "before opening transactions, not inside database.atomic()."
            )
        self._router = SavepointRouter(backend_of(db), where)
        self._opened = db.connect(reuse_if_open=True)
        try:
            try:
                with _wrap_errors:
                    db.cursor().execute("BEGIN")
            except Exception:
                if self._opened:
                    raise
                # the connection this thread kept open was closed by the server meanwhile
                # (a restart, a failover, an idle-connection reaper): once more on a new one
                with contextlib.suppress(Exception):
                    db.close()
                db.connect(reuse_if_open=True)
                with _wrap_errors:
                    db.cursor().execute("BEGIN")
        except BaseException:
            if self._opened:
                db.close()
            raise
        self._owner = threading.get_ident()
        self._active = True
        self._install_patches()
        logger.debug("sandbox on %s, safety net %r", where, self.rewinder)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db = self.database
        try:
            self._patches.revert()
            db._state.transactions.clear()
            try:
                with _wrap_errors:
                    db.cursor().execute("ROLLBACK")
            except Exception:
                if not _lost(db):
                    raise
                # the server closed the connection during the test, rolling everything
                # back itself: close what is left of it (the next use reconnects)
                with contextlib.suppress(Exception):
                    db.close()
            finally:
                if self._router is not None:
                    self._router.reset()
                if self._opened and not db.is_closed():
                    db.close()
        finally:
            self._active = False
            self._owner = None
            self._after_block()

    # ----------------------------------------------------------------- patches
    def _mine(self) -> bool:
        return not self.database.thread_safe or threading.get_ident() == self._owner

    def _install_patches(self) -> None:
        db = self.database
        cls = type(db)
        original_execute_sql = db.execute_sql

        def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            if not self._mine():
                return original_execute_sql(sql, params, *args, **kwargs)
            return self._execute(original_execute_sql, sql, params)

        def begin(*args: Any, **kwargs: Any) -> None:
            if not self._mine():
                cls.begin(db, *args, **kwargs)
                return
            execute_sql("BEGIN")

        def commit(*args: Any, **kwargs: Any) -> Any:
            if not self._mine():
                return cls.commit(db, *args, **kwargs)
            return execute_sql("COMMIT")

        def rollback(*args: Any, **kwargs: Any) -> Any:
            if not self._mine():
                return cls.rollback(db, *args, **kwargs)
            return execute_sql("ROLLBACK")

        def transaction(*args: Any, **kwargs: Any) -> Any:
            # Nested transaction() blocks become savepoints (peewee merges them).
            if self._mine() and db.transaction_depth() > 0:
                return db.savepoint()
            return cls.transaction(db, *args, **kwargs)

        def close() -> bool:
            if self._mine():
                return False  # the sandbox's connection stays open until the block ends
            return bool(cls.close(db))

        def connect(reuse_if_open: bool = False) -> bool:
            if self._mine():
                return False
            return bool(cls.connect(db, reuse_if_open))

        for name, value in {
            "execute_sql": execute_sql,
            "begin": begin,
            "commit": commit,
            "rollback": rollback,
            "transaction": transaction,
            "close": close,
            "connect": connect,
        }.items():
            self._patches.set(db, name, value)

    def _execute(self, run: Callable[..., Any], sql: str, params: Any) -> Any:
        router = self._router
        assert router is not None
        with self._lock:
            route = router.route(sql)
            if route.kind == "replace":
                cursor = None
                for statement in route.statements:
                    cursor = run(statement)
                return cursor if cursor is not None else self.database.cursor()
            if route.kind == "control" or not router.guard:
                return run(sql, params)
            run(router.guard_begin())
            try:
                cursor = run(sql, params)
            except Exception:
                for statement in router.guard_undo():
                    run(statement)
                raise
            run(router.guard_release())
            return cursor


TransactionTestCase = PeeweeSandbox
"""Alias of :class:`PeeweeSandbox` (the same class), kept for existing imports."""
