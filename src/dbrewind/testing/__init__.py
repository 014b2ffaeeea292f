"""Assertions and seeding helpers for tests that use a SQLAlchemy session.

::

    from dbrewind.testing import DatabaseAssertions

    def test_signup(db_session):
        db = DatabaseAssertions(db_session)            # a Session: plain calls
        db.seed([User(name="Alice", email="alice@example.com")])
        db.assert_database_has("users", {"email": "alice@example.com"})
        db.assert_database_count(User, 1)

    async def test_signup_async(async_db_session):
        db = DatabaseAssertions(async_db_session)      # an AsyncSession: awaitables
        await db.assert_database_missing("users", {"email": "bob@example.com"})
        async with db.assert_num_queries(1):
            await async_db_session.execute(select(User))

:class:`DatabaseAssertions` returns a :class:`SyncDatabaseAssertions` for a
:class:`~sqlalchemy.orm.Session` and an :class:`AsyncDatabaseAssertions` for an
:class:`~sqlalchemy.ext.asyncio.AsyncSession`. Both offer the same methods; the
async ones are awaitable and run the very same code through
``AsyncSession.run_sync``, so the two flavours cannot drift apart.

Every query goes through the session, so it sees what the session has flushed
(inside a rollback sandbox, nothing needs committing). When the session's
``autoflush`` is on, pending changes are flushed before an assertion reads.
Tables are named by string (reflected once per helper, quoted by SQLAlchemy
whatever their case or spelling), by :class:`~sqlalchemy.Table` or by ORM
model class.

``DatabaseTestCase``, ``SyncDatabaseTestCase`` and ``AsyncDatabaseTestCase``
are other names for :class:`DatabaseAssertions`, :class:`SyncDatabaseAssertions`
and :class:`AsyncDatabaseAssertions` (the same classes), kept for existing imports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlalchemy import Table
from sqlalchemy.orm import Session

from .._asyncio import is_async_session
from ..exceptions import ConfigurationError
from .checks import (
    TableRef,
    _as_list,
    _check_count,
    _check_has,
    _check_missing,
    _check_model_exists,
    _check_soft_deleted,
    _refresh_one,
    _seed_all,
)
from .queries import QueryCounter, _bind_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


__all__ = [
    "AsyncDatabaseAssertions",
    "AsyncDatabaseTestCase",
    "DatabaseAssertions",
    "DatabaseTestCase",
    "QueryCounter",
    "SyncDatabaseAssertions",
    "SyncDatabaseTestCase",
    "TableRef",
]

T = TypeVar("T")


# --------------------------------------------------------------------------
# The two public flavours.
# --------------------------------------------------------------------------


class DatabaseAssertions:
    """Seeding and assertion helpers over one session; see the module docstring.

    ``DatabaseAssertions(session)`` gives a :class:`SyncDatabaseAssertions` for a
    ``Session`` and an :class:`AsyncDatabaseAssertions` (awaitable methods) for
    an ``AsyncSession``.
    """

    @overload
    def __new__(cls, session: AsyncSession) -> AsyncDatabaseAssertions: ...

    @overload
    def __new__(cls, session: Session) -> SyncDatabaseAssertions: ...

    def __new__(cls, session: Session | AsyncSession) -> DatabaseAssertions:
        if cls is DatabaseAssertions:
            if is_async_session(session):
                return super().__new__(AsyncDatabaseAssertions)
            if isinstance(session, Session):
                return super().__new__(SyncDatabaseAssertions)
            raise ConfigurationError(
                f"DatabaseAssertions needs a SQLAlchemy Session or AsyncSession, got "
                f"{type(session).__name__}."
            )
        return super().__new__(cls)

    _tables: dict[str, Table]


class SyncDatabaseAssertions(DatabaseAssertions):
    """The helpers over a synchronous :class:`~sqlalchemy.orm.Session`."""

    def __new__(cls, session: Session) -> SyncDatabaseAssertions:
        return object.__new__(cls)

    def __init__(self, session: Session) -> None:
        if not isinstance(session, Session):
            raise ConfigurationError(
                f"SyncDatabaseAssertions needs a Session, got {type(session).__name__}. "
                "Use DatabaseAssertions(session) or AsyncDatabaseAssertions for an AsyncSession."
            )
        self._tables = {}
        self.session = session

    def seed(self, instances: Iterable[T]) -> list[T]:
        """Add the model instances to the session and flush; returns them, with their ids."""
        return _seed_all(self.session, _as_list(instances))

    def refresh(self, instance: T) -> T:
        """Reload ``instance`` from its row (after flushing pending changes); returns it."""
        return _refresh_one(self.session, instance)

    def assert_database_has(self, table: TableRef, columns: Mapping[str, Any]) -> None:
        """Fail unless a row of ``table`` has all of ``columns``; shows the closest rows."""
        __tracebackhide__ = True
        if (msg := _check_has(self.session, table, columns, self._tables)) is not None:
            raise AssertionError(msg)

    def assert_database_missing(self, table: TableRef, columns: Mapping[str, Any]) -> None:
        """Fail when some row of ``table`` has all of ``columns``; shows those rows."""
        __tracebackhide__ = True
        if (msg := _check_missing(self.session, table, columns, self._tables)) is not None:
            raise AssertionError(msg)

    def assert_database_count(
        self, table: TableRef, count: int, where: Mapping[str, Any] | None = None
    ) -> None:
        """Fail unless ``table`` has exactly ``count`` rows (those matching ``where``)."""
        __tracebackhide__ = True
        if (msg := _check_count(self.session, table, count, where, self._tables)) is not None:
            raise AssertionError(msg)

    def assert_database_empty(self, table: TableRef) -> None:
        """Fail unless ``table`` has no rows; shows the first rows found."""
        __tracebackhide__ = True
        if (msg := _check_count(self.session, table, 0, None, self._tables)) is not None:
            raise AssertionError(msg)

    def assert_model_exists(self, instance: object) -> None:
        """Fail unless the row with ``instance``'s primary key exists."""
        __tracebackhide__ = True
        if (msg := _check_model_exists(self.session, instance, expect=True)) is not None:
            raise AssertionError(msg)

    def assert_model_missing(self, instance: object) -> None:
        """Fail when the row with ``instance``'s primary key still exists."""
        __tracebackhide__ = True
        if (msg := _check_model_exists(self.session, instance, expect=False)) is not None:
            raise AssertionError(msg)

    def assert_soft_deleted(self, instance: object, column: str = "deleted_at") -> None:
        """Fail unless ``instance``'s row exists with ``column`` not NULL."""
        __tracebackhide__ = True
        msg = _check_soft_deleted(self.session, instance, column, expect=True)
        if msg is not None:
            raise AssertionError(msg)

    def assert_not_soft_deleted(self, instance: object, column: str = "deleted_at") -> None:
        """Fail unless ``instance``'s row exists with ``column`` NULL."""
        __tracebackhide__ = True
        msg = _check_soft_deleted(self.session, instance, column, expect=False)
        if msg is not None:
            raise AssertionError(msg)

    def assert_num_queries(self, count: int) -> QueryCounter:
        """A ``with`` block that fails unless exactly ``count`` statements ran in it."""
        return QueryCounter(_bind_of(self.session), count)


class AsyncDatabaseAssertions(DatabaseAssertions):
    """The helpers over an :class:`~sqlalchemy.ext.asyncio.AsyncSession`: every method is awaitable.

    Each runs the same function as :class:`SyncDatabaseAssertions` through
    ``AsyncSession.run_sync``.
    """

    def __new__(cls, session: AsyncSession) -> AsyncDatabaseAssertions:
        return object.__new__(cls)

    def __init__(self, session: AsyncSession) -> None:
        if not is_async_session(session):
            raise ConfigurationError(
                f"AsyncDatabaseAssertions needs an AsyncSession, got {type(session).__name__}. "
                "Use DatabaseAssertions(session) or SyncDatabaseAssertions for a Session."
            )
        self._tables = {}
        self.session = session

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
        return self.session.run_sync(fn, *args, **kwargs)

    async def _check(self, fn: Callable[..., str | None], *args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        msg = await self._run(fn, *args, **kwargs)
        if msg is not None:
            raise AssertionError(msg)

    async def seed(self, instances: Iterable[T]) -> list[T]:
        """Add the model instances to the session and flush; returns them, with their ids."""
        return await self._run(_seed_all, _as_list(instances))

    async def refresh(self, instance: T) -> T:
        """Reload ``instance`` from its row (after flushing pending changes); returns it."""
        return await self._run(_refresh_one, instance)

    async def assert_database_has(self, table: TableRef, columns: Mapping[str, Any]) -> None:
        """Fail unless a row of ``table`` has all of ``columns``; shows the closest rows."""
        __tracebackhide__ = True
        await self._check(_check_has, table, columns, self._tables)

    async def assert_database_missing(self, table: TableRef, columns: Mapping[str, Any]) -> None:
        """Fail when some row of ``table`` has all of ``columns``; shows those rows."""
        __tracebackhide__ = True
        await self._check(_check_missing, table, columns, self._tables)

    async def assert_database_count(
        self, table: TableRef, count: int, where: Mapping[str, Any] | None = None
    ) -> None:
        """Fail unless ``table`` has exactly ``count`` rows (those matching ``where``)."""
        __tracebackhide__ = True
        await self._check(_check_count, table, count, where, self._tables)

    async def assert_database_empty(self, table: TableRef) -> None:
        """Fail unless ``table`` has no rows; shows the first rows found."""
        __tracebackhide__ = True
        await self._check(_check_count, table, 0, None, self._tables)

    async def assert_model_exists(self, instance: object) -> None:
        """Fail unless the row with ``instance``'s primary key exists."""
        __tracebackhide__ = True
        await self._check(_check_model_exists, instance, expect=True)

    async def assert_model_missing(self, instance: object) -> None:
        """Fail when the row with ``instance``'s primary key still exists."""
        __tracebackhide__ = True
        await self._check(_check_model_exists, instance, expect=False)

    async def assert_soft_deleted(self, instance: object, column: str = "deleted_at") -> None:
        """Fail unless ``instance``'s row exists with ``column`` not NULL."""
        __tracebackhide__ = True
        await self._check(_check_soft_deleted, instance, column, expect=True)

    async def assert_not_soft_deleted(self, instance: object, column: str = "deleted_at") -> None:
        """Fail unless ``instance``'s row exists with ``column`` NULL."""
        __tracebackhide__ = True
        await self._check(_check_soft_deleted, instance, column, expect=False)

    def assert_num_queries(self, count: int) -> QueryCounter:
        """An ``async with`` block that fails unless exactly ``count`` statements ran in it."""
        return QueryCounter(_bind_of(self.session.sync_session), count)


DatabaseTestCase = DatabaseAssertions
"""Alias of :class:`DatabaseAssertions` (the same class), kept for existing imports."""
SyncDatabaseTestCase = SyncDatabaseAssertions
"""Alias of :class:`SyncDatabaseAssertions` (the same class)."""
AsyncDatabaseTestCase = AsyncDatabaseAssertions
"""Alias of :class:`AsyncDatabaseAssertions` (the same class)."""
