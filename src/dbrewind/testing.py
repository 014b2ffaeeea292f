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

import operator
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlalchemy import (
    Column,
    ColumnElement,
    FromClause,
    MetaData,
    Table,
    case,
    event,
    func,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoInspectionAvailable, NoSuchTableError
from sqlalchemy.orm import ColumnProperty, Mapper, Session

from ._asyncio import is_async_session
from .exceptions import ConfigurationError

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

TableRef = str | Table | type[Any]
"""A table by name (``"users"``, ``"audit.events"``), as a Table, or as an ORM model class."""

CLOSEST_ROWS = 5
"""How many similar rows a failed ``assert_database_has`` shows."""


# --------------------------------------------------------------------------
# The logic, once: plain functions over a synchronous Session. Each check
# returns ``None`` on success or the failure message.
# --------------------------------------------------------------------------


def _flush(session: Session) -> None:
    if session.autoflush:
        session.flush()


def _reflect(session: Session, name: str, cache: dict[str, Table]) -> Table:
    if name in cache:
        return cache[name]
    conn = session.connection()
    try:
        table = Table(name, MetaData(), autoload_with=conn)
    except NoSuchTableError:
        if "." not in name:
            raise _no_table(conn, name) from None
        schema, _, bare = name.partition(".")
        try:
            table = Table(bare, MetaData(), schema=schema, autoload_with=conn)
        except NoSuchTableError:
            raise _no_table(conn, name) from None
    cache[name] = table
    return table


def _no_table(conn: Connection, name: str) -> ConfigurationError:
    database = conn.engine.url.render_as_string(hide_password=True)
    return ConfigurationError(
        f"Table {name!r} does not exist in {database}. Check the spelling (names are "
        "case-sensitive when quoted), create it in the test setup, or pass the ORM model class."
    )


def _resolve(session: Session, target: TableRef, cache: dict[str, Table]) -> Table:
    if isinstance(target, str):
        return _reflect(session, target, cache)
    if isinstance(target, Table):
        return target
    mapper = _mapper_of_class(target)
    table = mapper.local_table
    if not isinstance(table, Table):
        raise ConfigurationError(
            f"Model {target.__name__} is not mapped to a single table; pass the table "
            "(by name or as a Table) to the assertion instead."
        )
    return table


def _mapper_of_class(target: object) -> Mapper[Any]:
    try:
        mapper = sa_inspect(target)
    except NoInspectionAvailable:
        mapper = None
    if not isinstance(mapper, Mapper):
        raise ConfigurationError(
            f"{target!r} is neither a table name, a Table nor a mapped ORM class. "
            "Pass e.g. 'users', users_table or User."
        )
    return mapper


def _column(table: Table, name: str, model: type[Any] | None = None) -> ColumnElement[Any]:
    if name in table.c:
        return table.c[name]
    if model is not None:
        prop = sa_inspect(model).attrs.get(name)
        if isinstance(prop, ColumnProperty) and prop.columns:
            col = prop.columns[0]
            if isinstance(col, Column) and col.table is table:
                return col
    raise ConfigurationError(
        f"Table {table.fullname!r} has no column {name!r}. "
        f"Its columns are: {', '.join(c.name for c in table.columns)}."
    )


def _conditions(
    table: Table, columns: Mapping[str, Any], target: TableRef
) -> list[ColumnElement[bool]]:
    model = target if isinstance(target, type) else None
    return [_column(table, name, model) == value for name, value in columns.items()]


def _count(session: Session, table: Table, conds: Sequence[ColumnElement[bool]]) -> int:
    stmt = select(func.count()).select_from(table)
    if conds:
        stmt = stmt.where(*conds)
    return int(session.execute(stmt).scalar_one())


def _rows(
    session: Session, table: Table, conds: Sequence[ColumnElement[bool]], limit: int
) -> list[dict[str, Any]]:
    stmt = select(table)
    if conds:
        stmt = stmt.where(*conds)
    return [dict(r) for r in session.execute(stmt.limit(limit)).mappings()]


def _fmt_row(row: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in row.items()) + "}"


def _fmt_cols(columns: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in columns.items()) + "}"


def _check_has(
    session: Session, target: TableRef, columns: Mapping[str, Any], cache: dict[str, Table]
) -> str | None:
    """None when a row of ``target`` matches ``columns``; else a message with the closest rows."""
    _flush(session)
    table = _resolve(session, target, cache)
    conds = _conditions(table, columns, target)
    if _count(session, table, conds) > 0:
        return None
    total = _count(session, table, [])
    head = f"Table {table.fullname!r} has no row matching {_fmt_cols(columns)}."
    if total == 0:
        return f"{head}\nThe table is empty."
    flags = [case((cond, 1), else_=0).label(f"dbrewind_m{i}") for i, cond in enumerate(conds)]
    score = reduce(operator.add, [case((cond, 1), else_=0) for cond in conds])
    stmt = (
        select(table, *flags).order_by(score.desc(), *table.primary_key.columns).limit(CLOSEST_ROWS)
    )
    names = list(columns)
    lines = []
    for found in session.execute(stmt).mappings():
        matched = [bool(found[f"dbrewind_m{i}"]) for i in range(len(names))]
        row = {c.name: found[c] for c in table.columns}
        differs = ", ".join(
            f"{name}: {row.get(name, found.get(name))!r} (expected {columns[name]!r})"
            for name, ok in zip(names, matched, strict=True)
            if not ok
        )
        lines.append(
            f"  {_fmt_row(row)}\n    matches {sum(matched)} of {len(names)}; differs: {differs}"
        )
    shown = min(total, CLOSEST_ROWS)
    return (
        f"{head}\nFound {total} row(s); the {shown} closest (most matching columns first):\n"
        + "\n".join(lines)
    )


def _check_missing(
    session: Session, target: TableRef, columns: Mapping[str, Any], cache: dict[str, Table]
) -> str | None:
    """None when no row of ``target`` matches ``columns``; else a message showing the matches."""
    _flush(session)
    table = _resolve(session, target, cache)
    conds = _conditions(table, columns, target)
    count = _count(session, table, conds)
    if count == 0:
        return None
    rows = _rows(session, table, conds, CLOSEST_ROWS)
    return (
        f"Table {table.fullname!r} has {count} row(s) matching {_fmt_cols(columns)}, "
        "expected none:\n" + "\n".join(f"  {_fmt_row(r)}" for r in rows)
    )


def _check_count(
    session: Session,
    target: TableRef,
    expected: int,
    where: Mapping[str, Any] | None,
    cache: dict[str, Table],
) -> str | None:
    """None when ``target`` holds ``expected`` rows (matching ``where``); else the actual count."""
    _flush(session)
    table = _resolve(session, target, cache)
    conds = _conditions(table, where or {}, target)
    count = _count(session, table, conds)
    if count == expected:
        return None
    scope = f" matching {_fmt_cols(where)}" if where else ""
    message = f"Table {table.fullname!r} has {count} row(s){scope}, expected {expected}."
    if count:
        rows = _rows(session, table, conds, CLOSEST_ROWS)
        more = f" (first {len(rows)})" if count > len(rows) else ""
        message += f"\nFound{more}:\n" + "\n".join(f"  {_fmt_row(r)}" for r in rows)
    return message


@dataclass(frozen=True)
class _Identity:
    label: str
    source: FromClause
    conds: list[ColumnElement[bool]]
    table_name: str


def _identity(session: Session, instance: object) -> _Identity:
    try:
        state = sa_inspect(instance)
    except NoInspectionAvailable:
        raise ConfigurationError(
            f"{instance!r} is not an instance of a mapped ORM class; "
            "the model assertions take ORM objects."
        ) from None
    mapper: Mapper[Any] = state.mapper
    _flush(session)
    identity = state.identity
    if identity is None:
        raise ConfigurationError(
            f"{type(instance).__name__} instance {instance!r} has no identity yet: it was "
            "never flushed. Add it to the session and flush (DatabaseAssertions.seed() does both)."
        )
    pk_cols = list(mapper.primary_key)
    label = (
        type(instance).__name__
        + "("
        + ", ".join(f"{c.key}={v!r}" for c, v in zip(pk_cols, identity, strict=True))
        + ")"
    )
    conds = [c == v for c, v in zip(pk_cols, identity, strict=True)]
    local = mapper.local_table
    return _Identity(
        label, mapper.persist_selectable, conds, getattr(local, "fullname", str(local))
    )


def _check_model_exists(session: Session, instance: object, *, expect: bool) -> str | None:
    """None when the instance's row exists (``expect``) or is gone (not ``expect``)."""
    ident = _identity(session, instance)
    stmt = select(func.count()).select_from(ident.source).where(*ident.conds)
    found = int(session.execute(stmt).scalar_one()) > 0
    if found == expect:
        return None
    if expect:
        return f"Expected {ident.label} to exist, but table {ident.table_name!r} has no such row."
    return f"Expected {ident.label} to be missing, but its row is still in {ident.table_name!r}."


def _check_soft_deleted(
    session: Session, instance: object, column: str, *, expect: bool
) -> str | None:
    """None when the row's ``column`` is non-NULL (``expect``) or NULL (not ``expect``)."""
    ident = _identity(session, instance)
    mapper: Mapper[Any] = sa_inspect(type(instance))
    prop = mapper.attrs.get(column)
    col: ColumnElement[Any] | None = None
    if isinstance(prop, ColumnProperty) and prop.columns:
        col = prop.columns[0]
    else:
        for candidate in mapper.columns:
            if isinstance(candidate, Column) and candidate.name == column:
                col = candidate
                break
    if col is None:
        raise ConfigurationError(
            f"{type(instance).__name__} has no column or attribute {column!r} to mark soft "
            "deletion. Pass the right one, e.g. assert_soft_deleted(obj, column='removed_at')."
        )
    rows = session.execute(select(col).select_from(ident.source).where(*ident.conds)).all()
    if not rows:
        return (
            f"Expected {ident.label} to be {'soft-deleted' if expect else 'not soft-deleted'}, "
            f"but its row is gone from {ident.table_name!r} (hard-deleted?)."
        )
    value = rows[0][0]
    if (value is not None) == expect:
        return None
    if expect:
        return f"Expected {ident.label} to be soft-deleted, but {column} is NULL."
    return f"Expected {ident.label} not to be soft-deleted, but {column} is {value!r}."


def _seed_all(session: Session, instances: Sequence[T]) -> list[T]:
    """Add ``instances`` to the session and flush, so they have ids and rows."""
    session.add_all(instances)
    session.flush()
    return list(instances)


def _refresh_one(session: Session, instance: T) -> T:
    """Flush pending changes, then reload ``instance``'s attributes from its row."""
    _flush(session)
    session.refresh(instance)
    return instance


def _as_list(instances: Iterable[T]) -> list[T]:
    if isinstance(instances, (str, bytes, Mapping)):
        raise ConfigurationError(
            f"seed() takes an iterable of model instances, got {type(instances).__name__}. "
            "Pass e.g. db.seed([User(name='Alice')])."
        )
    return list(instances)


# --------------------------------------------------------------------------
# Query counting: events on the session's bind.
# --------------------------------------------------------------------------


@dataclass
class QueryCounter:
    """Counts SQL statements sent through one session's bind while the block runs.

    Use with ``with`` (a sync session) or ``async with`` (an async session).
    Each cursor execution counts once (an ``executemany`` is one statement);
    ``SAVEPOINT`` statements count, ``BEGIN``/``COMMIT`` issued by the driver
    do not. When the session is bound to a Connection, only that connection
    is watched; when bound to an Engine, every connection of the engine is.
    On leaving the block without an exception, a count different from
    ``expected`` fails with the statements listed.
    """

    target: Connection | Engine
    expected: int | None
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Statements counted so far."""
        return len(self.statements)

    def _on_execute(self, *args: Any) -> None:
        self.statements.append(str(args[2]))

    def __enter__(self) -> QueryCounter:
        self.statements.clear()
        event.listen(self.target, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        event.remove(self.target, "before_cursor_execute", self._on_execute)
        if exc_type is None and self.expected is not None and self.count != self.expected:
            listing = "\n".join(f"  {i}. {s}" for i, s in enumerate(self.statements, 1))
            raise AssertionError(
                f"Expected {self.expected} quer{'y' if self.expected == 1 else 'ies'}, "
                f"{self.count} ran" + (f":\n{listing}" if listing else ".")
            )

    async def __aenter__(self) -> QueryCounter:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.__exit__(exc_type, exc, tb)


def _bind_of(session: Session) -> Connection | Engine:
    bind = session.get_bind()
    if isinstance(bind, (Connection, Engine)):
        return bind
    raise ConfigurationError(  # pragma: no cover - SQLAlchemy binds are one of the two
        f"Cannot count queries on {bind!r}: the session is bound to neither an Engine "
        "nor a Connection."
    )


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
