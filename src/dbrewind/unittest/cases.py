"""The test case classes of :mod:`dbrewind.unittest`: :class:`TestCase` (a rollback
sandbox per class, class data set up once), :class:`TransactionTestCase` (real
commits, rewound after each test) and :class:`AsyncTestCase` (an async rollback
sandbox per test).
"""

from __future__ import annotations

import asyncio
import copy
import unittest
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ..data import aload_data, load_data
from ..dialects import RewindResult
from ..exceptions import ConfigurationError
from ..provision import Database, make_async_engine
from ..provision.registry import require_safety_net
from ..rewinder import Rewinder
from ._base import (
    _database_for,
    _DatabaseMixin,
    _engine_for,
    _explain_blocked,
    _run_guarded,
    _unwatch_locks,
    _watch_locks,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    from ..provision.lockwatch import Watched
    from ..sandbox import AsyncSandbox, Sandbox

__all__ = ["AsyncTestCase", "TestCase", "TransactionTestCase"]


# --------------------------------------------------------------------------- class data
class _TestData:
    """A class attribute set in ``setUpTestData``, deep-copied the first time each test reads it."""

    def __init__(self, name: str, data: Any) -> None:
        self.name = name
        self.data = data

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self.data
        memo: dict[int, Any] = instance.__dict__.setdefault("_dbrewind_testdata_memo", {})
        try:
            data = copy.deepcopy(self.data, memo)
        except Exception as exc:
            raise ConfigurationError(
                f"Cannot deep-copy {type(instance).__name__}.{self.name} (a "
                f"{type(self.data).__name__}) set in setUpTestData, so tests cannot each get "
                "their own copy. Store something copyable there (ids, plain values, ORM "
                f"objects detached from their session): {exc}"
            ) from exc
        instance.__dict__[self.name] = data
        return data


# --------------------------------------------------------------------------- TestCase
class TestCase(_DatabaseMixin, unittest.TestCase):
    """Each test runs in a rollback sandbox; class data is set up once per class.

    The class's sandbox starts in ``setUpClass``: ``fixtures`` are loaded and
    ``setUpTestData`` runs inside it (``cls.db_class`` is its Connection), then
    a savepoint marks that state. Each test gets ``self.db``, a Connection of
    its own on the sandboxed engine (``self.db.commit()`` is allowed and
    becomes a savepoint release), and ``self.session()`` for an ORM Session.
    After the test everything written since the savepoint, on any connection
    of the engine, is rolled back to it; after the class, the sandbox rolls
    back the rest and its safety net rewinds whatever escaped it.

    Another connection's statement that waits more than a few seconds on a
    lock the sandbox holds (it would wait for the end of the test while the
    test waits for it) is cancelled on the server, and the test errors with a
    :class:`~dbrewind.exceptions.SandboxError` naming both sides.
    """

    db: Connection
    db_class: ClassVar[Connection]
    """The class sandbox's own Connection, for ``setUpTestData`` (do not commit it in tests)."""
    database_engine: ClassVar[Engine]
    """The engine whose connections the sandbox routes: the code under test should use it."""
    leaked: ClassVar[RewindResult | None] = None
    """After the class's sandbox stopped: what escaped it and was rewound (None: nothing)."""
    _dbrewind_sandbox: ClassVar[Sandbox | None] = None
    _dbrewind_database: ClassVar[Database]
    _dbrewind_testdata: ClassVar[dict[str, Any]] = {}

    @classmethod
    def setUpTestData(cls) -> None:
        """Create data for every test of the class, once; it is rolled back after the class."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        database = _database_for(cls)
        from ..sandbox import Sandbox

        # check=False: the safety net runs after the class, through the lifecycle
        sandbox = Sandbox(_engine_for(cls, database), rewinder=database.rewinder, check=False)
        sandbox.start()
        database.enter_sandbox()
        cls._dbrewind_sandbox = sandbox
        cls._dbrewind_database = database
        cls.db_class = sandbox.connection
        cls.database_engine = sandbox.engine
        cls.leaked = None
        cls._dbrewind_testdata = {}
        try:
            if cls.fixtures:
                load_data(sandbox.connection, *cls.fixtures, base_dir=cls._fixtures_base())
            before = dict(cls.__dict__)
            cls.setUpTestData()
            for name, value in list(cls.__dict__.items()):
                if name in before and before[name] is value:
                    continue
                cls._dbrewind_testdata[name] = before.get(name, _MISSING)
                setattr(cls, name, _TestData(name, value))
            # The per-test checkpoint. A test's first act is a write on this
            # connection (into a temporary table), so that rolling back to the
            # savepoint undoes what every connection committed after it.
            conn = sandbox.connection
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_mark_table(conn)} (n INTEGER)"
            )
            conn.exec_driver_sql(f"SAVEPOINT {_CHECKPOINT}")
        except BaseException:
            cls._dbrewind_stop()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            cls._dbrewind_stop()
        finally:
            super().tearDownClass()

    @classmethod
    def _dbrewind_stop(cls) -> None:
        for name, previous in cls.__dict__.get("_dbrewind_testdata", {}).items():
            if previous is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, previous)
        cls._dbrewind_testdata = {}
        sandbox = cls.__dict__.get("_dbrewind_sandbox")
        if sandbox is not None:
            cls._dbrewind_sandbox = None
            database = cls._dbrewind_database
            try:
                sandbox.stop()
            finally:
                database.leave_sandbox()
                result = database.after_test()
                cls.leaked = None if result.clean else result

    def session(self, **options: Any) -> Session:
        """An ORM Session inside the sandbox (closed after the test)."""
        session: Session = self._sandbox().session(**options)
        self.addCleanup(session.close)
        return session

    def _sandbox(self) -> Sandbox:
        sandbox = type(self)._dbrewind_sandbox
        if sandbox is None:
            raise ConfigurationError(
                f"{type(self).__qualname__} has no running sandbox: setUpClass did not run. "
                "When you override setUpClass or tearDownClass, call super()."
            )
        return sandbox

    def run(self, result: unittest.TestResult | None = None) -> unittest.TestResult | None:
        opened: list[Connection] = []
        watched: list[Watched | None] = []

        def before() -> None:
            sandbox = self._sandbox()
            conn = sandbox.connection
            conn.exec_driver_sql(f"INSERT INTO {_mark_table(conn)} (n) VALUES (1)")
            self.db = sandbox.engine.connect()
            opened.append(self.db)
            watched.append(_watch_locks(type(self)._dbrewind_database, sandbox))

        def after() -> None:
            sandbox = type(self)._dbrewind_sandbox
            waited = _unwatch_locks(self, type(self)._dbrewind_database, watched.pop())
            try:
                for conn in opened:
                    conn.close()
            finally:
                if sandbox is not None:
                    sandbox.connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_CHECKPOINT}")
            if waited is not None:
                raise waited

        return _run_guarded(self, result, before, after, super().run)

    def _callTestMethod(self, method: Callable[[], object]) -> None:
        try:
            super()._callTestMethod(method)  # type: ignore[misc]  # unittest's, 3.8+
        except Exception as exc:
            _explain_blocked(type(self)._dbrewind_sandbox, exc)
            raise


_CHECKPOINT = "dbrewind_class_data"
_MARK = "dbrewind_test_mark"


def _mark_table(conn: Connection) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(_MARK)


_MISSING = object()


# --------------------------------------------------------------------------- TransactionTestCase
class TransactionTestCase(_DatabaseMixin, unittest.TestCase):
    """Tests commit for real; afterwards the tables they wrote go back to the baseline.

    ``self.db`` is an ordinary Connection (``self.db.commit()`` commits), and
    ``self.session()`` an ordinary Session; both are closed after the test,
    then :meth:`dbrewind.Rewinder.rewind` puts back only the dirty tables.
    ``fixtures`` are loaded and committed before every test. Slower than
    :class:`TestCase`, but anything a real application does can be tested:
    several connections, threads, other processes.
    """

    db: Connection
    database_engine: Engine
    """The engine of the test database (the code under test may use any engine)."""
    rewinder: Rewinder
    """The database's :class:`dbrewind.Rewinder` (its ``dirty_tables()`` show what a test wrote)."""
    last_rewind: RewindResult | None = None
    """What the rewind after this test did."""
    reset_sequences: ClassVar[bool | None] = None
    """As Django's: True, each test starts with every sequence / ``AUTO_INCREMENT``
    counter at its baseline value (ids restart) and its rewind puts them back; False,
    its rewind leaves them moved; None (the default), the database's setting, ``auto``:
    put back after every test on PostgreSQL and SQLite, left moved on MySQL/MariaDB
    (there it is DDL; see :class:`dbrewind.Rewinder`)."""

    def session(self, **options: Any) -> Session:
        """An ORM Session on the test database; it commits for real (closed after the test)."""
        session = Session(self.database_engine, **options)
        self.addCleanup(session.close)
        return session

    def run(self, result: unittest.TestResult | None = None) -> unittest.TestResult | None:
        database: list[Database] = []

        def before() -> None:
            db = _database_for(type(self))
            self.rewinder = require_safety_net(db, "commit and clean")
            database.append(db)
            db.before_test(reset_sequences=self.reset_sequences)
            self.database_engine = engine = _engine_for(type(self), db)
            if self.fixtures:
                try:
                    with engine.begin() as conn:
                        load_data(conn, *self.fixtures, base_dir=self._fixtures_base())
                except BaseException:
                    db.after_test()
                    raise
            self.db = engine.connect()

        def after() -> None:
            if not database:
                return
            try:
                if getattr(self, "db", None) is not None:
                    self.db.close()
            finally:
                self.last_rewind = database[0].after_test(
                    check_schema=True, reset_sequences=self.reset_sequences
                )

        return _run_guarded(self, result, before, after, super().run)


# --------------------------------------------------------------------------- async
class AsyncTestCase(_DatabaseMixin, unittest.IsolatedAsyncioTestCase):
    """:class:`TestCase` for ``async def`` tests: each test in its own async rollback sandbox.

    ``self.db`` is the sandbox's :class:`~sqlalchemy.ext.asyncio.AsyncConnection`,
    ``self.session()`` an :class:`~sqlalchemy.ext.asyncio.AsyncSession` in it.
    ``fixtures`` are loaded into each test's sandbox (an event loop lives for
    one test only, so nothing can be shared at class level). When overriding
    ``asyncSetUp``, call ``await super().asyncSetUp()`` first.
    """

    db: AsyncConnection
    database_engine: AsyncEngine
    """This test's async engine, routed into the sandbox: the code under test should use it."""
    async_engine: ClassVar[AsyncEngine | None] = None
    """The async engine the code under test uses; made from the URL when not given."""
    leaked: RewindResult | None = None
    """After the test: what escaped the sandbox and was rewound (None: nothing)."""
    _dbrewind_async_sandbox: AsyncSandbox | None = None

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        database = _database_for(type(self))
        from ..sandbox import AsyncSandbox

        engine = self._async_engine(database)
        # check=False: the safety net runs after the test, through the lifecycle
        sandbox = AsyncSandbox(engine, rewinder=database.rewinder, check=False)
        await sandbox.start()
        self._dbrewind_async_sandbox = sandbox
        self.database_engine = engine
        watched = _watch_locks(database, sandbox)
        self.addAsyncCleanup(self._dbrewind_stop, sandbox, engine, database, watched)
        self.db = sandbox.connection
        if self.fixtures:
            await aload_data(sandbox.connection, *self.fixtures, base_dir=self._fixtures_base())

    def _async_engine(self, database: Database) -> AsyncEngine:
        if self.async_engine is not None:
            return self.async_engine
        # An async engine lives on one event loop; each test has its own loop.
        return make_async_engine(database.url, pooled=True)

    async def _dbrewind_stop(
        self,
        sandbox: AsyncSandbox,
        engine: AsyncEngine,
        database: Database,
        watched: Watched | None,
    ) -> None:
        waited = _unwatch_locks(self, database, watched)
        try:
            try:
                await sandbox.stop()
            finally:
                result = await asyncio.to_thread(database.after_test)
                self.leaked = None if result.clean else result
        finally:
            self._dbrewind_async_sandbox = None
            if engine is not self.async_engine:
                await engine.dispose()
        if waited is not None:
            raise waited

    def _callTestMethod(self, method: Callable[[], object]) -> None:
        try:
            super()._callTestMethod(method)  # type: ignore[misc]  # unittest's, 3.8+
        except Exception as exc:
            _explain_blocked(self._dbrewind_async_sandbox, exc)
            raise

    def session(self, **options: Any) -> AsyncSession:
        """An AsyncSession inside this test's sandbox (closed after the test)."""
        sandbox = self._dbrewind_async_sandbox
        if sandbox is None:
            raise ConfigurationError(
                f"{type(self).__qualname__} has no running sandbox: asyncSetUp did not run. "
                "When you override asyncSetUp, call await super().asyncSetUp() first."
            )
        session: AsyncSession = sandbox.session(**options)
        self.addAsyncCleanup(session.close)
        return session
