"""The rollback sandbox: a test runs inside one outer transaction that is rolled back.

::

    from dbrewind.sandbox import Sandbox

    with Sandbox(engine) as sb:           # engine: the application's own Engine
        app.create_user("ada")            # engine.connect()/begin(), Session(engine),
        sb.connection.execute(...)        # sessionmaker(engine)() are all sandboxed
        sb.session().scalars(...)
    # everything is rolled back; the engine is as it was

While active, the engine's pool hands every checkout a connection that runs
on one real connection holding the outer transaction. What the application
does with transactions maps onto savepoints: ``BEGIN``/``COMMIT``/``ROLLBACK``
become ``SAVEPOINT``/``RELEASE``/``ROLLBACK TO``, ``begin_nested()`` works to
any depth, and committed data is visible to the rest of the test.

Semantics worth knowing:

* A database error rolls back to the innermost savepoint, so the test can
  catch it and keep querying. On PostgreSQL, where a failed statement aborts
  the transaction, that undoes the failing connection's uncommitted work since
  its transaction began (a rollback does the same in production); MySQL and
  SQLite undo only the failed statement, as they do in production.
* Transactions on the one connection nest in time: a transaction that wrote
  and then rolls back also undoes what other connections committed after its
  first write. Work committed before it wrote survives its rollback.
* Threads and asyncio tasks take turns on the connection; nothing ever
  fails with "another operation is in progress". With an
  :class:`AsyncSandbox`, code running in another thread on its own event loop
  (a live server) has its statements run on the sandbox's loop; the test must
  not block its own loop meanwhile (await an async client instead).
* A connection switched to autocommit (``isolation_level="AUTOCOMMIT"``)
  commits each statement to its enclosing savepoint; the real connection keeps
  its outer transaction whatever the application sets.
* On SQLite the sandbox takes control of ``BEGIN`` (pysqlite's legacy
  transaction handling would otherwise break savepoints and commit before
  DDL). An in-memory database works when the engine shares one connection
  (``StaticPool``; add ``check_same_thread=False`` for threads).
* At the end, deferred constraints are checked (PostgreSQL ``SET CONSTRAINTS
  ALL IMMEDIATE``): data that would fail at ``COMMIT`` fails the test.
* A statement that would end the outer transaction raises
  :class:`~dbrewind.exceptions.SandboxBrokenError` (such a test needs the
  clean strategy): on MySQL/MariaDB, statements that commit implicitly (DDL,
  ``TRUNCATE``, ``LOCK TABLES``...) are refused before they run; anything
  else that ends the transaction is caught right after the statement (a
  local check, no round trip) or, at the latest, when the sandbox stops.
  Textual ``BEGIN``/``COMMIT``/``ROLLBACK`` and savepoint statements are
  mapped onto the savepoint stack and never end it.
* With a :class:`~dbrewind.Rewinder` (tracking installed by ``prepare()``),
  whatever escaped the sandbox (another engine, a subprocess) is rewound
  after the rollback and reported as :attr:`Sandbox.leaked`.
* The sandbox takes its real connection from the engine's pool. Give it an
  engine made with ``pool_pre_ping=True`` (the pytest plugin's engines are)
  and a connection the server closed while it sat in the pool (a restart, a
  failover, an idle-connection reaper) is replaced before the test starts.
  A connection that dies during the test fails the test's next statement; the
  sandbox then ends without error (the server rolled back already).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .._asyncio import is_async_engine
from ..dialects import RewindResult
from ..exceptions import SandboxBrokenError, SandboxError, _chain
from ..rewinder import Rewinder
from .state import SandboxState

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

__all__ = ["AsyncSandbox", "LeakCallback", "Sandbox"]

LeakCallback = Callable[[RewindResult], object]
"""Called with the rewind result when writes escaped the sandbox."""


_shown: weakref.WeakKeyDictionary[Engine, tuple[object, str]] = weakref.WeakKeyDictionary()


def _display(engine: Engine) -> str:
    """The engine's URL as messages show it (password hidden), worked out once per URL."""
    found = _shown.get(engine)
    if found is not None and found[0] is engine.url:
        return found[1]
    from .._url import show_url

    shown = show_url(engine.url)
    _shown[engine] = (engine.url, shown)
    return shown


class _Base:
    """What the sync and async sandboxes share: options, state, results."""

    def __init__(
        self, *, rewinder: Rewinder | None, on_leak: LeakCallback | None, check: bool
    ) -> None:
        self.rewinder = rewinder
        self.on_leak = on_leak
        self.check = check
        #: What the safety net rewound after the test (writes that escaped), else None.
        self.leaked: RewindResult | None = None
        #: Whether the last stop saw, in its rollback's own round trip, that nothing
        #: outside the sandbox left the database dirty (PostgreSQL with psycopg, a
        #: Rewinder given): a safety-net check then has nothing to find.
        self.escaped_nothing = False
        self._core: SandboxState | None = None

    @property
    def active(self) -> bool:
        """Whether the sandbox is started and not yet stopped."""
        return self._core is not None

    @property
    def session_id(self) -> int | None:
        """The server's id of the sandbox's session (PostgreSQL's backend pid, MySQL's
        connection id) while it is active; None on SQLite or when the driver cannot say."""
        core = self._core
        if core is None or core.raw is None:
            return None
        return core.ops.session_id(core._driver())

    def route(self, engine: Engine | AsyncEngine) -> None:
        """Route another engine into this sandbox until it stops: its connections run here
        too, on the one real connection, whatever database it was made for (the
        application's own engine, say). A :class:`Sandbox` takes sync engines, an
        :class:`AsyncSandbox` async ones; the driver must be the sandbox's own."""
        core = self._core
        if core is None:
            raise self._not_active(f"{type(self).__name__}.route()")
        if is_async_engine(engine) != core.is_async:
            kind = "an AsyncEngine" if core.is_async else "a sync Engine"
            raise SandboxError(
                f"{type(self).__name__}.route() takes {kind}, got {type(engine).__name__}."
            )
        sync: Engine = engine.sync_engine if is_async_engine(engine) else engine  # type: ignore[assignment]
        core.route(sync)

    def blocks(self, error: BaseException) -> bool:
        """Whether ``error`` (or one of its causes) is another connection's failure to get
        the database's one write lock, which this sandbox holds (SQLite)."""
        core = self._core
        return core is not None and any(
            core.ops.blocked_by_write_lock(cause) for cause in _chain(error)
        )

    def _new_core(self, engine: Engine, *, is_async: bool) -> SandboxState:
        if self._core is not None:
            raise SandboxError(
                f"This sandbox on {_display(engine)} is already active; call stop() first."
            )
        core = SandboxState(engine, is_async=is_async, url_display=_display(engine))
        if self.rewinder is not None:
            core.before_rollback = self.rewinder.dialect.sandbox_rollback_sql()
            core.receipt_sql = self.rewinder.dialect.sandbox_receipt_sql()
        self.escaped_nothing = False
        return core

    def _safety_net(self, core: SandboxState) -> None:
        """After the stop: the rewind of what escaped, unless the rollback's round trip
        already showed there is nothing (counted as a check all the same)."""
        self.escaped_nothing = bool(core.receipt)
        if self.rewinder is None or not self.check:
            return
        if self.escaped_nothing:
            self.rewinder.checks += 1
            return
        self._record_leak(self.rewinder.rewind())

    def _not_active(self, what: str) -> SandboxError:
        return SandboxError(
            f"{what} is only available while the sandbox is active: use it inside "
            "`with sandbox:` (or between start() and stop())."
        )

    def _record_leak(self, result: RewindResult) -> None:
        if result.clean:
            return
        self.leaked = result
        if self.on_leak is not None:
            self.on_leak(result)

    @staticmethod
    def _final_error(
        core: SandboxState, deferred: BaseException | None, pending: BaseException | None
    ) -> BaseException | None:
        """The error stop() raises after cleaning up, if any."""
        if isinstance(pending, SandboxBrokenError):
            return None
        if core.broken is not None and not (core.broken_reported and pending is not None):
            return SandboxBrokenError(core._broken_message(later=True))
        if deferred is not None:
            error = SandboxError(
                f"A deferred constraint in {core.url_display} fails at the end of the test: "
                f"{str(deferred).strip()}. In production the COMMIT would be rejected; fix the "
                "data the test (or the code under test) writes."
            )
            error.__cause__ = deferred
            return error
        return None


class Sandbox(_Base):
    """The rollback sandbox for a sync :class:`~sqlalchemy.engine.Engine`.

    :param engine: the application's engine; everything that uses it while the
        sandbox is active runs inside the sandbox, unchanged.
    :param rewinder: safety net: a :class:`~dbrewind.Rewinder` on the same
        database, prepared (tracking installed). After the rollback it rewinds
        whatever escaped; one cheap round trip when nothing did.
    :param on_leak: called with the :class:`~dbrewind.RewindResult` when
        something escaped (it is also kept as :attr:`leaked`).
    :param check: ``False`` when the caller runs the safety-net check itself
        after the test (the pytest plugin does, once for every test): the
        rewinder is then used only for its tracking (e.g. putting PostgreSQL
        sequences back before the rollback), not for a rewind at stop.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        rewinder: Rewinder | None = None,
        on_leak: LeakCallback | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(rewinder=rewinder, on_leak=on_leak, check=check)
        if not isinstance(engine, Engine):
            raise SandboxError(
                f"Sandbox needs a sync sqlalchemy Engine, got {type(engine).__name__}. "
                "Use AsyncSandbox for an AsyncEngine."
            )
        self.engine = engine
        self._connection: Connection | None = None
        self._sessions: list[Session] = []

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"Sandbox({_display(self.engine)!r}, {state})"

    def start(self) -> Sandbox:
        """Open the outer transaction and route the engine into it."""
        core = self._new_core(self.engine, is_async=False)
        core.start()
        self._core = core
        self.leaked = None
        return self

    def stop(self) -> None:
        """Roll everything back, restore the engine, then run the safety net.

        Raises :class:`~dbrewind.exceptions.SandboxBrokenError` when the outer
        transaction was ended during the test, and
        :class:`~dbrewind.exceptions.SandboxError` when a deferred constraint
        would have failed at ``COMMIT``.
        """
        self._stop(None)

    def _stop(self, pending: BaseException | None) -> None:
        core = self._core
        if core is None:
            return
        deferred: BaseException | None = None
        try:
            self._close_own(core)
            deferred = core.stop()
        finally:
            self._core = None
            self._connection = None
            self._sessions = []
        self._safety_net(core)
        error = self._final_error(core, deferred, pending)
        if error is not None:
            raise error

    def _close_own(self, core: SandboxState) -> None:
        core.begin_ending()  # closing the test's own connections now emits no SQL
        for session in list(self._sessions):
            session.close()
        if self._connection is not None:
            self._connection.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop(exc)

    @property
    def connection(self) -> Connection:
        """A :class:`~sqlalchemy.engine.Connection` inside the sandbox (the test's own)."""
        if self._core is None:
            raise self._not_active("Sandbox.connection")
        if self._connection is None:
            self._connection = self.engine.connect()
        return self._connection

    def session(self, class_: type[Session] = Session, **kwargs: Any) -> Session:
        """A new :class:`~sqlalchemy.orm.Session` (or ``class_``, a subclass such as
        SQLModel's) on the sandboxed engine, closed at the end."""
        if self._core is None:
            raise self._not_active("Sandbox.session()")
        kwargs.setdefault("bind", self.engine)
        session = class_(**kwargs)
        self._sessions.append(session)
        return session


class AsyncSandbox(_Base):
    """The rollback sandbox for an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.

    Same contract as :class:`Sandbox`: ``async with AsyncSandbox(engine) as sb``;
    ``sb.connection`` is an :class:`~sqlalchemy.ext.asyncio.AsyncConnection`,
    ``sb.session()`` an :class:`~sqlalchemy.ext.asyncio.AsyncSession`. Tasks
    take turns on the one connection (``asyncio.gather`` is fine).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        rewinder: Rewinder | None = None,
        on_leak: LeakCallback | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(rewinder=rewinder, on_leak=on_leak, check=check)
        if not is_async_engine(engine):
            raise SandboxError(
                f"AsyncSandbox needs a sqlalchemy AsyncEngine, got {type(engine).__name__}. "
                "Use Sandbox for a sync Engine."
            )
        self.engine = engine
        self._connection: AsyncConnection | None = None
        self._sessions: list[AsyncSession] = []

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"AsyncSandbox({_display(self.engine.sync_engine)!r}, {state})"

    async def start(self) -> AsyncSandbox:
        """Open the outer transaction and route the engine into it."""
        core = self._new_core(self.engine.sync_engine, is_async=True)
        from sqlalchemy.util.concurrency import greenlet_spawn

        await greenlet_spawn(core.start)
        self._core = core
        self.leaked = None
        try:
            self._connection = await self.engine.connect()
        except BaseException:
            await self._stop(None)
            raise
        return self

    async def stop(self) -> None:
        """Roll everything back, restore the engine, then run the safety net."""
        await self._stop(None)

    async def _stop(self, pending: BaseException | None) -> None:
        core = self._core
        if core is None:
            return
        deferred: BaseException | None = None
        try:
            core.begin_ending()  # closing the test's own connections now emits no SQL
            try:
                for session in list(self._sessions):
                    await session.close()
                if self._connection is not None:
                    await self._connection.close()
            finally:
                from sqlalchemy.util.concurrency import greenlet_spawn

                deferred = await greenlet_spawn(core.stop)
        finally:
            self._core = None
            self._connection = None
            self._sessions = []
        if self.rewinder is not None and self.check:
            self._record_leak(await self.rewinder.arewind())
        error = self._final_error(core, deferred, pending)
        if error is not None:
            raise error

    async def __aenter__(self) -> AsyncSandbox:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop(exc)

    @property
    def connection(self) -> AsyncConnection:
        """An :class:`~sqlalchemy.ext.asyncio.AsyncConnection` inside the sandbox."""
        if self._core is None or self._connection is None:
            raise self._not_active("AsyncSandbox.connection")
        return self._connection

    def session(self, class_: type[AsyncSession] | None = None, **kwargs: Any) -> AsyncSession:
        """A new :class:`~sqlalchemy.ext.asyncio.AsyncSession` (or ``class_``, a subclass
        such as SQLModel's) on the sandboxed engine, closed at the end."""
        if self._core is None:
            raise self._not_active("AsyncSandbox.session()")
        from sqlalchemy.ext.asyncio import AsyncSession

        kwargs.setdefault("bind", self.engine)
        session = (class_ or AsyncSession)(**kwargs)
        self._sessions.append(session)
        return session
