"""Django's database test cases without Django, on SQLAlchemy.

::

    from dbrewind.unittest import TestCase, TransactionTestCase, skipUnlessDBFeature

    class BookTests(TestCase):
        database_url = "postgresql://postgres@127.0.0.1/shop_test"
        database_setup = metadata.create_all          # run once per process and URL
        fixtures = ["authors.json", "books.csv"]      # relative to this module's folder

        @classmethod
        def setUpTestData(cls):
            cls.ann = cls.db_class.execute(insert(authors).values(name="Ann")).inserted_primary_key

        def test_rename(self):
            self.db.execute(update(authors).values(name="Bo"))   # rolled back after the test

The two classes differ as Django's do:

:class:`TestCase`
    Each test runs inside dbrewind's rollback sandbox: everything the code
    under test does through the engine (``engine.connect()``,
    ``engine.begin()``, ``Session(engine)``) is routed onto one connection
    whose transaction is rolled back after the test; an application's
    ``COMMIT`` becomes a savepoint release. ``fixtures`` are loaded and
    ``setUpTestData`` runs once per class, inside the class's sandbox, and
    every test starts from that state; attributes ``setUpTestData`` sets are
    deep-copied for each test, so a test that changes them in memory does
    not affect the next. Fast; but code that needs a real commit (a second
    connection seeing the data, ``SELECT ... FOR UPDATE`` across sessions)
    cannot be tested here.
:class:`TransactionTestCase`
    Tests commit for real, on any number of connections. After each test the
    tables it wrote to are put back to the baseline by :class:`dbrewind.Rewinder`
    (only the dirty ones). ``fixtures`` are loaded (and committed) before each
    test.

Both get their database from :mod:`dbrewind.provision`, the lifecycle the
pytest plugin uses too: with ``database_url`` and ``database_setup`` the setup
runs once into a template and the tests run on a clone of it (reused by the
next run while the setup is unchanged, one per xdist worker, another when a
concurrent run holds it); with an ``engine``, its database is set up in
place; without a setup, the database is taken as it is. A write that escapes a
:class:`TestCase`'s sandbox is caught by change tracking and rewound (see
:attr:`TestCase.leaked`).

:class:`AsyncTestCase` is the :class:`unittest.IsolatedAsyncioTestCase`
flavour of :class:`TestCase` (each test in its own async rollback sandbox).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import inspect
import os
import sys
import unittest
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from ._asyncio import is_async_engine
from ._context import worker as current_worker
from ._url import DatabaseURL, parse_url
from .data import aload_data, load_data
from .dialects import Capabilities, RewindResult, get_dialect
from .exceptions import ConfigurationError
from .provision import Database, Target, acquire, as_steps, databases, make_async_engine
from .provision.registry import require_safety_net
from .rewinder import Rewinder, SetupCallable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    from .sandbox import AsyncSandbox, Sandbox

__all__ = [
    "AsyncTestCase",
    "TestCase",
    "TransactionTestCase",
    "close_databases",
    "skipIfDBFeature",
    "skipUnlessDBFeature",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_FEATURES = tuple(f.name for f in dataclasses.fields(Capabilities))


# --------------------------------------------------------------------------- databases
def _database_for(cls: type[_DatabaseMixin]) -> Database:
    """The database of ``cls``, from the lifecycle every entry point shares.

    With ``database_url`` and ``database_setup``, the setup runs once into a
    template and the tests run on a clone of it (kept between runs while the
    setup is unchanged; one per xdist worker; another one when a concurrent
    run holds it). With an ``engine``, the database it names is set up in
    place. Without a setup, the database is taken as it is.
    """
    url, given_engine = _resolve_target(cls)
    steps = tuple(as_steps(cls.database_setup, what=f"{cls.__qualname__}.database_setup"))
    if given_engine is not None:
        target = Target(
            url=url, setups=steps, engine=given_engine, allow=cls.allow_database, origin="unittest"
        )
    elif steps:
        target = Target(
            url=url,
            setups=steps,
            clone=True,
            worker=current_worker(),
            allow=cls.allow_database,
            origin="unittest",
        )
    else:
        target = Target(url=url, allow=cls.allow_database, origin="unittest")
    database = acquire(target)
    if steps and database.target.setups != steps:
        raise ConfigurationError(
            f"{cls.__qualname__} gives {url.display()} a database_setup that differs from the "
            f"one it was prepared with ({database.target.setups or 'none'}). Give every test "
            "case on one database the same setup (a common base class), or use another database."
        )
    return database


def _engine_for(cls: type[_DatabaseMixin], database: Database) -> Engine:
    """The class's own engine when it names one (what its code uses), else the database's."""
    given = cls.engine
    if is_async_engine(given):
        return given.sync_engine
    return given if isinstance(given, Engine) else database.engine


def _resolve_target(cls: type[_DatabaseMixin]) -> tuple[DatabaseURL, Engine | None]:
    engine: object = cls.engine
    if is_async_engine(engine):
        engine = engine.sync_engine
    if engine is not None and not isinstance(engine, Engine):
        raise ConfigurationError(
            f"{cls.__qualname__}.engine is a {type(engine).__name__}, not a SQLAlchemy Engine. "
            "Set engine = create_engine(...) or database_url = '...'."
        )
    if cls.database_url is not None:
        return parse_url(cls.database_url), engine
    if engine is not None:
        return parse_url(engine.url), engine
    raise ConfigurationError(
        f"{cls.__qualname__} names no test database. Set the class attribute "
        "database_url = 'postgresql://user@host/app_test' (or engine = create_engine(...))."
    )


def close_databases() -> None:
    """Release every database the test cases took up: rewound, lease given up, closed.

    The databases themselves are kept (a clone is reused by the next run).
    Called at exit anyway; call it earlier before dropping a test database.
    """
    for database in databases():
        if database.target.origin == "unittest":
            database.release()


# --------------------------------------------------------------------------- shared behaviour
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


class _DatabaseMixin:
    """Configuration shared by the test case classes."""

    database_url: ClassVar[str | URL | None] = None
    """The test database's URL; its name must say ``test`` (or set ``allow_database``)."""
    engine: ClassVar[Engine | AsyncEngine | None] = None
    """An engine to the test database, instead of ``database_url``; the code under test
    should use this engine so that the sandbox can route it."""
    database_setup: ClassVar[SetupCallable | Sequence[SetupCallable] | None] = None
    """Run once per process and database before tracking is installed: a callable that
    receives a Connection (``metadata.create_all``), or a list of them."""
    fixtures: ClassVar[Sequence[str | os.PathLike[str]]] = ()
    """Test-data files (``.sql``, ``.json``, ``.csv``), see :func:`dbrewind.data.load_data`."""
    fixtures_dir: ClassVar[str | os.PathLike[str] | None] = None
    """Where relative ``fixtures`` paths start (default: the folder of the test's module)."""
    allow_database: ClassVar[bool] = False
    """Allow a database whose name does not say ``test`` (see :class:`dbrewind.Rewinder`)."""

    @classmethod
    def _fixtures_base(cls) -> Path:
        if cls.fixtures_dir is not None:
            return Path(cls.fixtures_dir)
        module = sys.modules.get(cls.__module__)
        module_file = getattr(module, "__file__", None)
        return Path(module_file).parent if module_file else Path.cwd()

    @classmethod
    def database_capabilities(cls) -> Capabilities:
        """What the class's database can do (for skipping by feature)."""
        url, _engine = _resolve_target(cls)
        return get_dialect(url.backend).capabilities


def _skipped(test: unittest.TestCase) -> bool:
    method = getattr(test, test._testMethodName, None)
    return bool(
        getattr(type(test), "__unittest_skip__", False)
        or getattr(method, "__unittest_skip__", False)
    )


def _run_guarded(
    test: unittest.TestCase,
    result: unittest.TestResult | None,
    before: Callable[[], None],
    after: Callable[[], None],
    run: Callable[[unittest.TestResult | None], unittest.TestResult | None],
) -> unittest.TestResult | None:
    """Run ``before``, the test, then ``after``; report their failures as errors of the test."""
    if _skipped(test):
        return run(result)
    if result is None:
        result = test.defaultTestResult()
    try:
        before()
    except Exception:
        result.startTest(test)
        result.addError(test, sys.exc_info())
        result.stopTest(test)
        return result
    try:
        return run(result)
    finally:
        try:
            after()
        except Exception:
            result.addError(test, sys.exc_info())


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
        from .sandbox import Sandbox

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

        def before() -> None:
            sandbox = self._sandbox()
            conn = sandbox.connection
            conn.exec_driver_sql(f"INSERT INTO {_mark_table(conn)} (n) VALUES (1)")
            self.db = sandbox.engine.connect()
            opened.append(self.db)

        def after() -> None:
            sandbox = type(self)._dbrewind_sandbox
            try:
                for conn in opened:
                    conn.close()
            finally:
                if sandbox is not None:
                    sandbox.connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_CHECKPOINT}")

        return _run_guarded(self, result, before, after, super().run)


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
                self.last_rewind = database[0].after_test(check_schema=True)

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
        from .sandbox import AsyncSandbox

        engine = self._async_engine(database)
        # check=False: the safety net runs after the test, through the lifecycle
        sandbox = AsyncSandbox(engine, rewinder=database.rewinder, check=False)
        await sandbox.start()
        self._dbrewind_async_sandbox = sandbox
        self.database_engine = engine
        self.addAsyncCleanup(self._dbrewind_stop, sandbox, engine, database)
        self.db = sandbox.connection
        if self.fixtures:
            await aload_data(sandbox.connection, *self.fixtures, base_dir=self._fixtures_base())

    def _async_engine(self, database: Database) -> AsyncEngine:
        if self.async_engine is not None:
            return self.async_engine
        # An async engine lives on one event loop; each test has its own loop.
        return make_async_engine(database.url, pooled=True)

    async def _dbrewind_stop(
        self, sandbox: AsyncSandbox, engine: AsyncEngine, database: Database
    ) -> None:
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


# --------------------------------------------------------------------------- skipping by feature
def _check_features(decorator: str, features: tuple[str, ...]) -> None:
    if not features:
        raise ConfigurationError(f"{decorator}() needs at least one feature name: {_FEATURES}.")
    unknown = [name for name in features if name not in _FEATURES]
    if unknown:
        raise ConfigurationError(
            f"{decorator}() got unknown database feature(s) {', '.join(map(repr, unknown))}. "
            f"Known features (dbrewind.Capabilities): {', '.join(_FEATURES)}."
        )


def _feature_skip(
    decorator: str,
    features: tuple[str, ...],
    skip_when: Callable[[Capabilities], bool],
    reason: str,
) -> Callable[[_F], _F]:
    _check_features(decorator, features)

    def condition(cls: type) -> bool:
        if not (isinstance(cls, type) and issubclass(cls, _DatabaseMixin)):
            raise ConfigurationError(
                f"{decorator}() applies to dbrewind.unittest test cases (TestCase, "
                f"TransactionTestCase, AsyncTestCase), not {cls!r}."
            )
        return skip_when(cls.database_capabilities())

    def decorate(target: _F) -> _F:
        if isinstance(target, type):
            previous = target.__dict__.get("__unittest_skip__", False)
            target.__unittest_skip__ = _SkipCondition(previous, condition, reason)  # type: ignore[attr-defined]
            return target
        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                if condition(type(self)):
                    raise unittest.SkipTest(reason)
                return await target(self, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(target)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if condition(type(self)):
                raise unittest.SkipTest(reason)
            return target(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


class _SkipCondition:
    """A class's ``__unittest_skip__``, decided when unittest first asks (the database is known)."""

    def __init__(self, previous: Any, condition: Callable[[type], bool], reason: str) -> None:
        self.previous = previous
        self.condition = condition
        self.reason = reason

    def __get__(self, instance: object, owner: type) -> bool:
        if isinstance(self.previous, _SkipCondition):
            if self.previous.__get__(instance, owner):
                return True
        elif self.previous:
            return True
        for base in owner.__mro__[1:]:
            inherited = base.__dict__.get("__unittest_skip__", False)
            if inherited is self:
                break  # the rest was checked where this condition was attached
            if isinstance(inherited, _SkipCondition):
                if inherited.__get__(instance, owner):
                    return True
            elif inherited:
                return True
        if self.condition(owner):
            owner.__unittest_skip_why__ = self.reason  # type: ignore[attr-defined]
            return True
        return False


def skipUnlessDBFeature(*features: str) -> Callable[[_F], _F]:
    """Skip the test (or every test of the class) unless the database has all ``features``.

    Feature names are the fields of :class:`dbrewind.Capabilities`
    (``transactional_ddl``, ``savepoints``, ``statement_triggers``, ...); an
    unknown name raises :class:`dbrewind.ConfigurationError` at once.
    """
    return _feature_skip(
        "skipUnlessDBFeature",
        features,
        lambda caps: not all(getattr(caps, name) for name in features),
        f"Database doesn't support feature(s): {', '.join(features)}",
    )


def skipIfDBFeature(*features: str) -> Callable[[_F], _F]:
    """Skip the test (or every test of the class) if the database has any of ``features``."""
    return _feature_skip(
        "skipIfDBFeature",
        features,
        lambda caps: any(getattr(caps, name) for name in features),
        f"Database has feature(s): {', '.join(features)}",
    )
