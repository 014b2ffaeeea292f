"""Assertions and seeding helpers for database tests: SQLAlchemy sessions, peewee databases.

::

    from dbrewind.testing import DatabaseTestCase

    def test_signup(db_session):
        db = DatabaseTestCase(db_session)              # a Session, no event loop: plain calls
        db.seed([User(name="Alice", email="alice@example.com")])
        db.assert_database_has("users", {"email": "alice@example.com"})
        db.assert_database_count(User, 1)
        with db.assert_num_queries(1):
            repo.load_user(1)

    @pytest.fixture
    async def db(db_session):                          # made inside the event loop:
        return DatabaseTestCase(db_session)            # awaitable methods

    @pytest.mark.anyio
    async def test_signup_async(db):
        await db.seed([User(name="Alice", email="alice@example.com")])
        await db.assert_database_has("users", [{"name": "Alice"}, {"email": "alice@example.com"}])
        async with db.capture_queries() as q:
            await service.sign_up("bob@example.com")
        assert len(q.statements) == 2

**Sync or awaitable.** ``DatabaseAssertions(target)`` (``DatabaseTestCase`` is the
same class) returns an :class:`AsyncDatabaseAssertions`, whose methods are
awaitable, when ``target`` is an :class:`~sqlalchemy.ext.asyncio.AsyncSession`
or a peewee-async database, **or when it is made inside a running event loop**
(an async fixture or test), whatever the session; otherwise a
:class:`SyncDatabaseAssertions` with plain methods. Over a sync ``Session`` or
peewee ``Database`` the awaitable methods run the sync code directly (the
database is not awaited; the test's loop waits for it, as it would for the
session itself); over an ``AsyncSession`` they run it through
``AsyncSession.run_sync``, over peewee-async through ``aio_execute_sql``. Every
flavour runs the very same checks (:mod:`dbrewind.testing._core`), so they
cannot drift apart. Choose a flavour by name with ``SyncDatabaseAssertions(s)``
or ``AsyncDatabaseAssertions(s)``.

**What they read.** Every query goes through the session (or the peewee
database), so it sees what the code under test wrote in the same transaction:
inside dbrewind's rollback sandbox nothing needs committing. When a session
autoflushes, its pending changes are flushed before an assertion reads.

**Tables** are named by string (looked up once per helper; ``"audit.events"``
names a schema; any case, spaces and reserved words are quoted), by
:class:`~sqlalchemy.Table`, or by model class (a SQLAlchemy mapped class or a
peewee ``Model``). Columns are named by database name or, for a model, by
attribute name. Values: anything the column takes (dates, datetimes, decimals,
``None`` for NULL...); ``enum.Enum`` members and ``uuid.UUID`` values match
their stored name or value (hex or dashed form) on a column whose type does not
know them; JSON documents (``dict``/``list`` values) are compared in Python,
after the other columns matched in SQL.

**Soft deletes.** :meth:`~SyncDatabaseAssertions.assert_soft_deleted` reads the
row from the database. Its column: the ``column=`` argument, else the model's
``__dbrewind_soft_delete__ = "archived_at"`` class attribute, else the first of
``deleted_at``, ``deleted_on``, ``deleted``, ``is_deleted``, ``removed_at`` the
model has. A row is soft-deleted when that column is set: not NULL and not
false (a timestamp, or a true flag).

**Counting statements.** :meth:`~SyncDatabaseAssertions.capture_queries`,
``assert_num_queries(n)`` and ``assert_max_num_queries(n)`` return a
:class:`QueryCapture` for ``with`` or ``async with``; they capture what the
code under test sends, never dbrewind's savepoint bookkeeping, the
transaction's own ``BEGIN``/``COMMIT``, nor the helpers' own queries (see
:mod:`dbrewind.testing.queries`).

Failure messages show what is there: the closest rows with the columns that
differ, the rows found, the statements sent; the helpers' own frames are
hidden from pytest's tracebacks.

Also here, for test modules to import from one place: :class:`ModelFactory`
and :class:`FactoryBuilder` (from :mod:`dbrewind.factories`) and
:func:`current_session` (the running test's session, under the pytest plugin).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlalchemy import Table

from .._asyncio import is_async_session
from .._test_context import _loop_running, current_session
from ..exceptions import ConfigurationError
from ._core import (
    Check,
    Store,
    as_instances,
    check_count,
    check_has,
    check_missing,
    check_model,
    check_soft_deleted,
)
from .queries import QueryCapture, QueryCounter, Source, helper_running, sources_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from ..factories import FactoryBuilder, ModelFactory


__all__ = [
    "AsyncDatabaseAssertions",
    "AsyncDatabaseTestCase",
    "DatabaseAssertions",
    "DatabaseTestCase",
    "ExpectedRows",
    "FactoryBuilder",
    "ModelFactory",
    "QueryCapture",
    "QueryCounter",
    "SyncDatabaseAssertions",
    "SyncDatabaseTestCase",
    "TableRef",
    "current_session",
]

T = TypeVar("T")


def __getattr__(name: str) -> Any:
    # the factories are imported when first asked for: a test module that only asserts
    # does not pay for them
    if name in ("FactoryBuilder", "ModelFactory"):
        from .. import factories

        return getattr(factories, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


TableRef = str | Table | type[Any]
"""A table: by name (``"users"``, ``"audit.events"``), as a SQLAlchemy Table, or as a
model class (SQLAlchemy or peewee)."""

ExpectedRows = Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""Expected rows: one mapping of column to value, or a list of them."""


# --------------------------------------------------------------------- runners
class _Runner:
    """Runs the checks on one target, sync or awaited; what the flavours call."""

    store: Store
    awaited_only = False
    """No sync calls: the target is an AsyncSession or a peewee-async database."""

    def run(self, check: Check[T]) -> T:
        raise NotImplementedError  # pragma: no cover - the async-only runners refuse first

    async def arun(self, check: Check[T]) -> T:
        return self.run(check)

    def seed(self, instances: list[T]) -> list[T]:
        raise NotImplementedError  # pragma: no cover

    async def aseed(self, instances: list[T]) -> list[T]:
        return self.seed(instances)

    def refresh(self, instance: T) -> T:
        raise NotImplementedError  # pragma: no cover

    async def arefresh(self, instance: T) -> T:
        return self.refresh(instance)

    def sources(self) -> list[Source]:
        raise NotImplementedError  # pragma: no cover


class _SessionRunner(_Runner):
    def __init__(self, session: Session) -> None:
        from ._sqlalchemy import SQLAlchemyStore

        self.session = session
        self.store = SQLAlchemyStore()

    def run(self, check: Check[T]) -> T:
        from ._sqlalchemy import run

        with helper_running():
            return run(self.session, self.store, check)  # type: ignore[arg-type]

    def seed(self, instances: list[T]) -> list[T]:
        with helper_running():
            self.session.add_all(instances)
            self.session.flush()
        return instances

    def refresh(self, instance: T) -> T:
        with helper_running():
            if self.session.autoflush:
                self.session.flush()
            self.session.refresh(instance)
        return instance

    def sources(self) -> list[Source]:
        return sources_of(self.session.get_bind())


class _AsyncSessionRunner(_Runner):
    awaited_only = True

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._sync = _SessionRunner(session.sync_session)
        self.store = self._sync.store

    async def arun(self, check: Check[T]) -> T:
        return await self.session.run_sync(lambda _: self._sync.run(check))

    async def aseed(self, instances: list[T]) -> list[T]:
        return await self.session.run_sync(lambda _: self._sync.seed(instances))

    async def arefresh(self, instance: T) -> T:
        return await self.session.run_sync(lambda _: self._sync.refresh(instance))

    def sources(self) -> list[Source]:
        return self._sync.sources()


class _PeeweeRunner(_Runner):
    def __init__(self, database: Any) -> None:
        from ._peewee import PeeweeStore

        self.database = database
        self.store = PeeweeStore(database)

    def run(self, check: Check[T]) -> T:
        from ._peewee import run

        with helper_running():
            return run(self.database, self.store, check)  # type: ignore[arg-type]

    def seed(self, instances: list[T]) -> list[T]:
        with helper_running(), self.database.atomic():
            for instance in instances:
                _peewee_model(instance).save()
        return instances

    def refresh(self, instance: T) -> T:
        model = _peewee_model(instance)
        with helper_running():
            fresh = type(model).get_by_id(model._pk)
        _take_row(model, fresh)
        return instance

    def sources(self) -> list[Source]:
        return sources_of(self.database)


class _AioPeeweeRunner(_PeeweeRunner):
    awaited_only = True

    async def arun(self, check: Check[T]) -> T:
        from ._peewee import arun

        with helper_running():
            return await arun(self.database, self.store, check)  # type: ignore[arg-type]

    async def aseed(self, instances: list[T]) -> list[T]:
        with helper_running():
            async with self.database.aio_atomic():
                for instance in instances:
                    await _aio_model(instance).aio_save()
        return instances

    async def arefresh(self, instance: T) -> T:
        model = _aio_model(instance)
        cls = type(model)
        with helper_running():
            fresh = await cls.select().where(cls._meta.primary_key == model._pk).aio_get()
        _take_row(model, fresh)
        return instance


def _take_row(model: Any, fresh: Any) -> None:
    """``model`` takes the values of ``fresh`` (its row read again); the related
    objects it had loaded are dropped, to be read again from the new keys."""
    model.__data__.update(fresh.__data__)
    model.__rel__.clear()
    model._dirty.clear()


def _peewee_model(instance: object) -> Any:
    import peewee

    if not isinstance(instance, peewee.Model):
        raise ConfigurationError(
            f"{instance!r} is not an instance of a peewee Model: the helpers over a peewee "
            "database seed and refresh model instances."
        )
    return instance


def _aio_model(instance: object) -> Any:
    model = _peewee_model(instance)
    if not hasattr(model, "aio_save"):
        raise ConfigurationError(
            f"{type(model).__name__} is not a peewee_async.AioModel: the helpers over a "
            "peewee-async database save through aio_save(). Derive the model from AioModel."
        )
    return model


def _is_peewee(target: object, name: str) -> bool:
    """Whether ``target`` is a ``peewee.Database`` / ``peewee_async`` ``AioDatabase``,
    without importing either before anyone did (no such object exists before that)."""
    module_name = "peewee_async.databases" if name == "AioDatabase" else "peewee"
    module = sys.modules.get(module_name)
    cls = getattr(module, name, None)
    return isinstance(cls, type) and isinstance(target, cls)


def _runner_for(target: object, what: str) -> _Runner:
    from sqlalchemy.orm import Session

    if is_async_session(target):
        return _AsyncSessionRunner(target)
    if isinstance(target, Session):
        return _SessionRunner(target)
    if _is_peewee(target, "AioDatabase"):
        return _AioPeeweeRunner(target)
    if _is_peewee(target, "Database"):
        return _PeeweeRunner(target)
    raise ConfigurationError(
        f"{what} needs a SQLAlchemy Session or AsyncSession, or a peewee (or peewee-async) "
        f"Database, got {type(target).__name__}."
    )


# ------------------------------------------------------------------- flavours
class DatabaseAssertions:
    """Seeding and assertion helpers over one session or peewee database.

    ``DatabaseAssertions(target)`` gives an :class:`AsyncDatabaseAssertions`
    (awaitable methods) for an ``AsyncSession`` or a peewee-async database, or
    when made inside a running event loop; otherwise a
    :class:`SyncDatabaseAssertions`. See the module docstring.
    """

    @overload
    def __new__(cls, target: AsyncSession) -> AsyncDatabaseAssertions: ...

    @overload
    def __new__(cls, target: object) -> DatabaseAssertions: ...

    def __new__(cls, target: object) -> DatabaseAssertions:
        if cls is DatabaseAssertions:
            runner = _runner_for(target, "DatabaseAssertions")
            flavour: type[DatabaseAssertions] = (
                AsyncDatabaseAssertions
                if runner.awaited_only or _loop_running()
                else SyncDatabaseAssertions
            )
            made = object.__new__(flavour)
            made._runner = runner
            return made
        return object.__new__(cls)

    _runner: _Runner
    target: Any
    """The session or peewee database the helpers read through."""

    if TYPE_CHECKING:
        # DatabaseAssertions(session) is either flavour (over a sync Session, awaitable
        # inside a running loop): the methods both have, their results untyped. Name the
        # flavour (SyncDatabaseAssertions(s), AsyncDatabaseAssertions(s)) for exact types.
        seed: Callable[..., Any]
        refresh: Callable[..., Any]
        assert_database_has: Callable[..., Any]
        assert_database_missing: Callable[..., Any]
        assert_database_count: Callable[..., Any]
        assert_database_empty: Callable[..., Any]
        assert_model_exists: Callable[..., Any]
        assert_model_missing: Callable[..., Any]
        assert_soft_deleted: Callable[..., Any]
        assert_not_soft_deleted: Callable[..., Any]

    def _bind(self, target: object) -> None:
        """Take ``target`` (the flavours' ``__init__``): its runner, made by ``__new__``
        when it chose the flavour, else here."""
        runner = self.__dict__.get("_runner") or _runner_for(target, type(self).__name__)
        self._accept(runner, target)
        self._runner = runner
        self.target = target

    def _accept(self, runner: _Runner, target: object) -> None:
        """Refuse a target this flavour cannot run over (a ConfigurationError)."""

    @property
    def session(self) -> Any:
        """The session (or peewee database) given: :attr:`target`."""
        return self.target

    def capture_queries(self) -> QueryCapture:
        """A ``with`` / ``async with`` block capturing the statements the code under test
        sends (:attr:`QueryCapture.statements`), with no expectation."""
        return QueryCapture(self._runner.sources())

    def assert_num_queries(self, count: int) -> QueryCapture:
        """A ``with`` / ``async with`` block that fails unless exactly ``count`` statements
        were sent in it; the message lists them."""
        return QueryCapture(self._runner.sources(), count)

    def assert_max_num_queries(self, count: int) -> QueryCapture:
        """A ``with`` / ``async with`` block that fails when more than ``count`` statements
        were sent in it; the message lists them."""
        return QueryCapture(self._runner.sources(), count, at_most=True)


def _fail(message: str | None) -> None:
    __tracebackhide__ = True
    if message is not None:
        raise AssertionError(message)


class SyncDatabaseAssertions(DatabaseAssertions):
    """The helpers with plain methods, over a ``Session`` or a peewee ``Database``."""

    def __init__(self, target: Session | Any) -> None:
        self._bind(target)

    def _accept(self, runner: _Runner, target: object) -> None:
        if runner.awaited_only:
            kind = "an AsyncSession" if is_async_session(target) else "a peewee-async database"
            raise ConfigurationError(
                f"SyncDatabaseAssertions cannot run over {kind}: its queries are awaited. "
                "Use DatabaseAssertions(target) or AsyncDatabaseAssertions(target) and await "
                "the methods."
            )

    def seed(self, instances: Iterable[T]) -> list[T]:
        """Add the model instances and write them (SQLAlchemy: flush; peewee: save);
        returns them, with their ids."""
        return self._runner.seed(as_instances(instances))

    def refresh(self, instance: T) -> T:
        """Reload ``instance`` from its row (after flushing pending changes); returns it."""
        return self._runner.refresh(instance)

    def assert_database_has(self, table: TableRef, rows: ExpectedRows) -> None:
        """Fail unless ``table`` has a row with all of the columns given, for each row
        given (a mapping or a list of them); shows the missing rows and the closest ones."""
        __tracebackhide__ = True
        _fail(self._runner.run(check_has(self._runner.store, table, rows)))

    def assert_database_missing(self, table: TableRef, rows: ExpectedRows) -> None:
        """Fail when some row of ``table`` has all of the columns given (of any of the
        rows given); shows those rows."""
        __tracebackhide__ = True
        _fail(self._runner.run(check_missing(self._runner.store, table, rows)))

    def assert_database_count(
        self, table: TableRef, count: int, where: Mapping[str, Any] | None = None
    ) -> None:
        """Fail unless ``table`` has exactly ``count`` rows (of those matching ``where``);
        shows the rows found."""
        __tracebackhide__ = True
        _fail(self._runner.run(check_count(self._runner.store, table, count, where)))

    def assert_database_empty(self, table: TableRef) -> None:
        """Fail unless ``table`` has no rows; shows the first rows found."""
        __tracebackhide__ = True
        _fail(self._runner.run(check_count(self._runner.store, table, 0, None)))

    def assert_model_exists(self, instance: object) -> None:
        """Fail unless the row with ``instance``'s primary key exists."""
        __tracebackhide__ = True
        _fail(self._runner.run(check_model(self._runner.store, instance, expect=True)))

    def assert_model_missing(self, instance: object) -> None:
        """Fail when the row with ``instance``'s primary key still exists; shows it."""
        __tracebackhide__ = True
        _fail(self._runner.run(check_model(self._runner.store, instance, expect=False)))

    def assert_soft_deleted(self, instance: object, column: str | None = None) -> None:
        """Fail unless ``instance``'s row exists with its soft-delete column set (see the
        module docstring for which column)."""
        __tracebackhide__ = True
        check = check_soft_deleted(self._runner.store, instance, column, expect=True)
        _fail(self._runner.run(check))

    def assert_not_soft_deleted(self, instance: object, column: str | None = None) -> None:
        """Fail unless ``instance``'s row exists with its soft-delete column unset."""
        __tracebackhide__ = True
        check = check_soft_deleted(self._runner.store, instance, column, expect=False)
        _fail(self._runner.run(check))


class AsyncDatabaseAssertions(DatabaseAssertions):
    """The helpers with awaitable methods: over an ``AsyncSession`` or a peewee-async
    database, or over a sync ``Session`` / peewee ``Database`` in an async test (the
    sync code then runs directly). The same checks as :class:`SyncDatabaseAssertions`.
    """

    def __init__(self, target: AsyncSession | Session | Any) -> None:
        self._bind(target)

    async def seed(self, instances: Iterable[T]) -> list[T]:
        """Add the model instances and write them (SQLAlchemy: flush; peewee: save);
        returns them, with their ids."""
        return await self._runner.aseed(as_instances(instances))

    async def refresh(self, instance: T) -> T:
        """Reload ``instance`` from its row (after flushing pending changes); returns it."""
        return await self._runner.arefresh(instance)

    async def assert_database_has(self, table: TableRef, rows: ExpectedRows) -> None:
        """Fail unless ``table`` has a row with all of the columns given, for each row
        given (a mapping or a list of them); shows the missing rows and the closest ones."""
        __tracebackhide__ = True
        _fail(await self._runner.arun(check_has(self._runner.store, table, rows)))

    async def assert_database_missing(self, table: TableRef, rows: ExpectedRows) -> None:
        """Fail when some row of ``table`` has all of the columns given (of any of the
        rows given); shows those rows."""
        __tracebackhide__ = True
        _fail(await self._runner.arun(check_missing(self._runner.store, table, rows)))

    async def assert_database_count(
        self, table: TableRef, count: int, where: Mapping[str, Any] | None = None
    ) -> None:
        """Fail unless ``table`` has exactly ``count`` rows (of those matching ``where``);
        shows the rows found."""
        __tracebackhide__ = True
        _fail(await self._runner.arun(check_count(self._runner.store, table, count, where)))

    async def assert_database_empty(self, table: TableRef) -> None:
        """Fail unless ``table`` has no rows; shows the first rows found."""
        __tracebackhide__ = True
        _fail(await self._runner.arun(check_count(self._runner.store, table, 0, None)))

    async def assert_model_exists(self, instance: object) -> None:
        """Fail unless the row with ``instance``'s primary key exists."""
        __tracebackhide__ = True
        _fail(await self._runner.arun(check_model(self._runner.store, instance, expect=True)))

    async def assert_model_missing(self, instance: object) -> None:
        """Fail when the row with ``instance``'s primary key still exists; shows it."""
        __tracebackhide__ = True
        _fail(await self._runner.arun(check_model(self._runner.store, instance, expect=False)))

    async def assert_soft_deleted(self, instance: object, column: str | None = None) -> None:
        """Fail unless ``instance``'s row exists with its soft-delete column set (see the
        module docstring for which column)."""
        __tracebackhide__ = True
        check = check_soft_deleted(self._runner.store, instance, column, expect=True)
        _fail(await self._runner.arun(check))

    async def assert_not_soft_deleted(self, instance: object, column: str | None = None) -> None:
        """Fail unless ``instance``'s row exists with its soft-delete column unset."""
        __tracebackhide__ = True
        check = check_soft_deleted(self._runner.store, instance, column, expect=False)
        _fail(await self._runner.arun(check))


DatabaseTestCase = DatabaseAssertions
"""Alias of :class:`DatabaseAssertions` (the same class), the name seed-style tests use."""
SyncDatabaseTestCase = SyncDatabaseAssertions
"""Alias of :class:`SyncDatabaseAssertions` (the same class)."""
AsyncDatabaseTestCase = AsyncDatabaseAssertions
"""Alias of :class:`AsyncDatabaseAssertions` (the same class)."""
