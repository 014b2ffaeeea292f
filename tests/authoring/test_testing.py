"""dbrewind.testing over SQLAlchemy on real databases: a sync Session, an AsyncSession, and
a sync Session wrapped inside the event loop (awaitable methods running the sync code).

Each test runs on every backend and, where it says ``flavour``, in all three flavours:
the test body awaits what the helpers return when it is awaitable, so one body checks
them all.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from sqlalchemy import JSON, ForeignKey, Integer, Numeric, String, select, text, update
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dbrewind._url import parse_url
from dbrewind.exceptions import ConfigurationError
from dbrewind.testing import (
    AsyncDatabaseAssertions,
    DatabaseAssertions,
    DatabaseTestCase,
    QueryCapture,
    SyncDatabaseAssertions,
)

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"  # a reserved word

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class OrderItem(Base):
    __tablename__ = "Order Items"  # mixed case and a space

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    order: Mapped[str] = mapped_column("Order", String(50))  # reserved, mixed case


class Status(enum.Enum):
    ACTIVE = "active"
    CLOSED = "closed"


class Account(Base):
    """Every common type, and a soft-delete flag of its own name."""

    __tablename__ = "account"
    __dbrewind_soft_delete__ = "archived"

    id: Mapped[int] = mapped_column(primary_key=True)
    opened: Mapped[dt.date]
    seen_at: Mapped[dt.datetime]
    balance: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2), default=decimal.Decimal("0"))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[Status] = mapped_column(default=Status.ACTIVE)
    token: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    note: Mapped[str | None] = mapped_column(String(50), default=None)
    archived: Mapped[bool] = mapped_column(default=False)


class Priority(enum.IntEnum):
    LOW = 0
    HIGH = 1


class Code(enum.Enum):
    ALPHA = 1
    BETA = 2


class Ticket(Base):
    """Enum members kept in plain columns: an IntEnum's value in an Integer column, an
    int-valued member's value and a str-valued member's name in string columns."""

    __tablename__ = "ticket"

    id: Mapped[int] = mapped_column(primary_key=True)
    priority: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))


class Tag(Base):
    """No soft-delete column at all."""

    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(20))


class Post(Base):
    """Soft deletion as a boolean flag found by its name."""

    __tablename__ = "post"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(20))
    is_deleted: Mapped[bool] = mapped_column(default=False)


async def run(value: T | Awaitable[T]) -> T:
    """What a helper returned: awaited when it is awaitable (the async flavours)."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass
class Env:
    """One flavour: the helpers, and the session the 'code under test' writes through."""

    db: Any
    session: Any
    is_async: bool

    async def execute(self, statement: Any) -> Any:
        return await run(self.session.execute(statement))

    async def flush(self) -> None:
        await run(self.session.flush())

    async def delete(self, instance: object) -> None:
        await run(self.session.delete(instance))
        await self.flush()


@pytest.fixture
def sync_session(engine: Engine) -> Iterator[Session]:
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s


@pytest_asyncio.fixture
async def async_session(db_url: URL) -> AsyncIterator[AsyncSession]:
    aengine = create_async_engine(parse_url(db_url).async_url())
    try:
        async with aengine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(aengine, expire_on_commit=False) as s:
            yield s
    finally:
        await aengine.dispose()


FLAVOURS = ["sync", "async", "sync-in-loop"]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    """sync: a Session outside any loop; async: an AsyncSession; sync-in-loop: a Session
    wrapped inside the running loop (awaitable methods)."""
    return str(request.param)


@pytest.fixture
def env(backend: str, flavour: str, request: pytest.FixtureRequest) -> Env:
    """The helpers in one flavour on a fresh database of ``backend``, tables created.

    sync-in-loop is AsyncDatabaseAssertions over a sync Session: what DatabaseTestCase
    makes of a Session inside a running loop (checked on its own below)."""
    if flavour == "async":
        session = request.getfixturevalue("async_session")
        db = DatabaseTestCase(session)
        assert type(db) is AsyncDatabaseAssertions
        return Env(db, session, is_async=True)
    session = request.getfixturevalue("sync_session")
    if flavour == "sync":
        return Env(DatabaseTestCase(session), session, is_async=False)
    return Env(AsyncDatabaseAssertions(session), session, is_async=False)


def alice() -> User:
    return User(name="Alice", email="alice@example.com")


def bob() -> User:
    return User(name="Bob", email="bob@example.com")


# ------------------------------------------------------------------- flavours
def test_outside_a_loop_a_session_gives_plain_methods(sync_session: Session) -> None:
    db = DatabaseTestCase(sync_session)
    assert type(db) is SyncDatabaseAssertions
    db.seed([alice()])
    db.assert_database_has("user", {"name": "Alice"})


@pytest.mark.asyncio
async def test_inside_a_loop_a_session_gives_awaitable_methods(sync_session: Session) -> None:
    db = DatabaseTestCase(sync_session)
    assert type(db) is AsyncDatabaseAssertions
    seeded = db.seed([alice()])
    assert inspect.isawaitable(seeded)
    (user,) = await seeded
    await db.assert_model_exists(user)


@pytest.mark.asyncio
async def test_wrong_targets_and_flavours_say_what_to_use(async_session: AsyncSession) -> None:
    with pytest.raises(ConfigurationError, match=r"over an AsyncSession.*await the methods"):
        SyncDatabaseAssertions(async_session)
    with pytest.raises(ConfigurationError, match="Session or AsyncSession, or a peewee"):
        DatabaseAssertions("not a session")


# -------------------------------------------------------------------- seeding
@pytest.mark.asyncio
async def test_seed_writes_the_instances_and_gives_them_ids(env: Env) -> None:
    users = await run(env.db.seed([alice(), bob()]))
    assert all(u.id is not None for u in users)
    await run(env.db.assert_database_count("user", 2))


@pytest.mark.asyncio
async def test_seed_refuses_a_single_mapping(env: Env) -> None:
    with pytest.raises(ConfigurationError, match=r"iterable of model instances.*db\.seed\(\["):
        await run(env.db.seed({"name": "Alice"}))


@pytest.mark.asyncio
async def test_refresh_reloads_values_changed_in_the_database(env: Env) -> None:
    (user,) = await run(env.db.seed([alice()]))
    await env.execute(update(User).where(User.id == user.id).values(name="Changed"))
    assert (await run(env.db.refresh(user))).name == "Changed"


# ------------------------------------------------------------- database rows
@pytest.mark.asyncio
async def test_has_passes_by_name_by_model_and_by_table(env: Env) -> None:
    await run(env.db.seed([alice()]))
    await run(
        env.db.assert_database_has("user", {"email": "alice@example.com", "deleted_at": None})
    )
    await run(env.db.assert_database_has(User, {"name": "Alice"}))
    await run(env.db.assert_database_has(User.__table__, {"name": "Alice"}))


@pytest.mark.asyncio
async def test_has_shows_the_closest_rows_and_what_differs(env: Env) -> None:
    await run(env.db.seed([alice(), bob()]))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_has("user", {"name": "Alice", "email": "alicia@x.org"}))
    message = str(info.value)
    assert message.startswith(
        "Table 'user' has no row matching {name: 'Alice', email: 'alicia@x.org'}.\n"
        "Found 2 rows; the 2 closest (most matching columns first):\n"
    )
    # Alice matches one of the two columns: she comes first, with the column that differs
    first, second = message.split("\n  {")[1:]
    assert "name: 'Alice'" in first
    assert "matches 1 of 2; differs: email: 'alice@example.com' (expected 'alicia@x.org')" in first
    assert "matches 0 of 2; differs: name: 'Bob' (expected 'Alice'), email:" in second


@pytest.mark.asyncio
async def test_has_with_a_list_asserts_each_row_and_names_the_missing_ones(env: Env) -> None:
    await run(env.db.seed([alice(), bob()]))
    await run(env.db.assert_database_has(User, [{"name": "Alice"}, {"name": "Bob"}]))
    with pytest.raises(AssertionError) as info:
        await run(
            env.db.assert_database_has(
                User, [{"name": "Alice"}, {"name": "Carol"}, {"email": "dave@example.com"}]
            )
        )
    message = str(info.value)
    assert message.startswith(
        "Table 'user' is missing 2 of the 3 rows expected:\n"
        "  {name: 'Carol'}\n  {email: 'dave@example.com'}\n"
    )
    assert "the 2 closest to {name: 'Carol'}" in message
    assert "the 2 closest to {email: 'dave@example.com'}" in message
    assert "{name: 'Alice'}\n" not in message.split("expected:")[1].split("Found")[0]


@pytest.mark.asyncio
async def test_has_shows_at_most_five_closest_rows_and_refuses_no_rows(env: Env) -> None:
    await run(env.db.seed([User(name=f"U{n}", email=f"u{n}@x.org") for n in range(7)]))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_has(User, {"name": "U9", "email": "u3@x.org"}))
    message = str(info.value)
    assert "Found 7 rows; the 5 closest (most matching columns first):" in message
    assert message.count("\n  {id: ") == 5
    # the one row matching one of the two columns comes first
    first = message.split("\n  {id: ")[1]
    assert "name: 'U3', email: 'u3@x.org'" in first
    assert "matches 1 of 2; differs: name: 'U3' (expected 'U9')" in first
    with pytest.raises(ConfigurationError, match="an empty list asserts nothing"):
        await run(env.db.assert_database_has(User, []))


@pytest.mark.asyncio
async def test_rows_given_by_a_generator_are_each_asserted(env: Env) -> None:
    await run(env.db.seed([alice()]))
    await run(env.db.assert_database_has(User, ({"name": n} for n in ["Alice"])))
    await run(env.db.assert_database_missing(User, ({"name": n} for n in ["Bob"])))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_has(User, ({"name": n} for n in ["Alice", "Bob"])))
    assert str(info.value).startswith(
        "Table 'user' is missing 1 of the 2 rows expected:\n  {name: 'Bob'}\n"
    )
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_missing(User, ({"name": n} for n in ["Alice"])))
    assert str(info.value).startswith(
        "Table 'user' has 1 row matching {name: 'Alice'}, expected none:\n"
    )
    with pytest.raises(ConfigurationError, match="an empty list asserts nothing"):
        await run(env.db.assert_database_has(User, (r for r in [])))


@pytest.mark.asyncio
async def test_has_says_when_the_table_is_empty(env: Env) -> None:
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_has(User, {"name": "Nobody"}))
    assert str(info.value) == (
        "Table 'user' has no row matching {name: 'Nobody'}.\nThe table is empty."
    )


@pytest.mark.asyncio
async def test_has_sees_pending_changes_of_the_session(env: Env) -> None:
    env.session.add(alice())  # not flushed: the helper's autoflush writes it first
    await run(env.db.assert_database_has("user", {"name": "Alice"}))


@pytest.mark.asyncio
async def test_missing_lists_the_rows_that_match(env: Env) -> None:
    await run(env.db.seed([alice()]))
    await run(env.db.assert_database_missing("user", {"name": "Bob"}))
    await run(env.db.assert_database_missing(User, [{"name": "Bob"}, {"name": "Carol"}]))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_missing("user", {"name": "Alice"}))
    message = str(info.value)
    assert message.startswith("Table 'user' has 1 row matching {name: 'Alice'}, expected none:\n")
    assert "email: 'alice@example.com'" in message


@pytest.mark.asyncio
async def test_count_with_and_without_a_filter(env: Env) -> None:
    await run(env.db.seed([alice(), User(name="Alice", email="a2@x.org"), bob()]))
    await run(env.db.assert_database_count(User, 3))
    await run(env.db.assert_database_count("user", 2, where={"name": "Alice"}))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_count(User, 2, where={"name": "Bob"}))
    message = str(info.value)
    assert message.startswith(
        "Table 'user' has 1 row matching {name: 'Bob'}, expected 2.\nFound:\n  {id: "
    )
    assert "name: 'Bob', email: 'bob@example.com'" in message
    with pytest.raises(AssertionError, match=r"^Table 'user' has 3 rows, expected 5\.\nFound:"):
        await run(env.db.assert_database_count(User, 5))


@pytest.mark.asyncio
async def test_empty_passes_on_no_rows_and_shows_what_is_there(env: Env) -> None:
    await run(env.db.assert_database_empty("user"))
    await run(env.db.seed([alice()]))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_empty(User))
    assert str(info.value).startswith("Table 'user' has 1 row, expected 0.\nFound:\n  {id: ")
    assert "'Alice'" in str(info.value)


@pytest.mark.asyncio
async def test_mixed_case_spaces_and_reserved_words_work_by_name_and_attribute(env: Env) -> None:
    (user,) = await run(env.db.seed([alice()]))
    await run(env.db.seed([OrderItem(user_id=user.id, order="first")]))
    await run(env.db.assert_database_has("Order Items", {"Order": "first", "user_id": user.id}))
    await run(env.db.assert_database_count(OrderItem, 1, where={"order": "first"}))
    await run(env.db.assert_database_missing("Order Items", {"Order": "second"}))


@pytest.mark.asyncio
async def test_unknown_table_and_column_name_the_fix(env: Env) -> None:
    with pytest.raises(
        ConfigurationError, match=r"Table 'nope' does not exist in .*pass the model"
    ):
        await run(env.db.assert_database_count("nope", 0))
    with pytest.raises(
        ConfigurationError,
        match=r"^Table 'user' has no column 'emial'\. Its columns are: id, name, email, deleted_at",
    ):
        await run(env.db.assert_database_has("user", {"emial": "x"}))
    with pytest.raises(ConfigurationError, match="neither a table name, a Table nor a mapped"):
        await run(env.db.assert_database_count(object, 0))


# ---------------------------------------------------------------- every type
VALUES: dict[str, Any] = {
    "opened": dt.date(2024, 2, 29),
    "seen_at": dt.datetime(2024, 3, 1, 12, 30, 5),
    "balance": decimal.Decimal("12.50"),
    "settings": {"theme": "dark", "tags": ["a", "b"]},
    "status": Status.CLOSED,
    "token": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "note": None,
    "archived": False,
}


@pytest.mark.filterwarnings("ignore:Dialect sqlite\\+pysqlite does \\*not\\* support Decimal")
@pytest.mark.parametrize("by", ["model", "name"])
@pytest.mark.asyncio
async def test_values_of_every_common_type_match_by_model_and_by_name(env: Env, by: str) -> None:
    await run(env.db.seed([Account(**VALUES), Account(**{**VALUES, "note": "other"})]))
    table: Any = Account if by == "model" else "account"
    await run(env.db.assert_database_has(table, VALUES))
    for column, value in VALUES.items():
        expected = 1 if column == "note" else 2
        await run(env.db.assert_database_count(table, expected, where={column: value}))
    await run(env.db.assert_database_missing(table, {"settings": {"theme": "light"}}))
    await run(env.db.assert_database_missing(table, {"status": Status.ACTIVE}))
    await run(env.db.assert_database_missing(table, {"token": uuid.uuid4()}))
    with pytest.raises(AssertionError) as info:
        await run(
            env.db.assert_database_has(table, {"balance": decimal.Decimal("12.50"), "settings": []})
        )
    message = str(info.value)
    assert "no row matching {balance: Decimal('12.50'), settings: []}" in message
    assert "matches 1 of 2; differs: settings: " in message
    assert message.endswith("(expected [])")


@pytest.mark.parametrize("by", ["model", "name"])
@pytest.mark.asyncio
async def test_enum_members_match_the_value_or_name_a_plain_column_can_hold(
    env: Env, by: str
) -> None:
    await run(env.db.seed([Ticket(priority=0, code="1", status="ACTIVE")]))
    table: Any = Ticket if by == "model" else "ticket"
    await run(
        env.db.assert_database_has(
            table, {"priority": Priority.LOW, "code": Code.ALPHA, "status": Status.ACTIVE}
        )
    )
    await run(env.db.assert_database_count(table, 1, where={"code": Code.ALPHA}))
    await run(env.db.assert_database_missing(table, {"priority": Priority.HIGH}))
    await run(env.db.assert_database_missing(table, {"code": Code.BETA}))
    await run(env.db.assert_database_missing(table, {"status": Status.CLOSED}))
    # the row holds 0: the member whose value is 1 is not there (its name is no 0 either)
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_has(table, {"priority": Priority.HIGH}))
    assert str(info.value).startswith(
        "Table 'ticket' has no row matching {priority: <Priority.HIGH: 1>}.\n"
        "Found 1 row; the 1 closest (most matching columns first):\n"
    )
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_count(table, 1, where={"code": Code.BETA}))
    assert str(info.value) == (
        "Table 'ticket' has 0 rows matching {code: <Code.BETA: 2>}, expected 1."
    )


# ------------------------------------------------------------ model instances
@pytest.mark.asyncio
async def test_model_exists_and_missing_follow_the_row(env: Env) -> None:
    (user,) = await run(env.db.seed([alice()]))
    await run(env.db.assert_model_exists(user))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_model_missing(user))
    assert str(info.value).startswith(
        f"Expected User(id={user.id}) to be missing, but its row is still in 'user': {{id: "
    )
    await env.delete(user)
    await run(env.db.assert_model_missing(user))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_model_exists(user))
    assert str(info.value) == (
        f"Expected User(id={user.id}) to exist, but table 'user' has no such row."
    )


@pytest.mark.asyncio
async def test_model_assertions_refuse_unflushed_and_unmapped_objects(env: Env) -> None:
    with pytest.raises(ConfigurationError, match="never flushed"):
        await run(env.db.assert_model_exists(alice()))
    with pytest.raises(ConfigurationError, match="not an instance of a mapped ORM class"):
        await run(env.db.assert_model_exists(object()))


@pytest.mark.asyncio
async def test_soft_delete_reads_the_row_not_the_object(env: Env) -> None:
    (user,) = await run(env.db.seed([alice()]))
    await run(env.db.assert_not_soft_deleted(user))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_soft_deleted(user))
    assert str(info.value) == (
        f"Expected User(id={user.id}) to be soft-deleted, but deleted_at is NULL."
    )
    # written behind the ORM's back: the object still says None
    await env.execute(
        update(User).where(User.id == user.id).values(deleted_at=dt.datetime(2024, 1, 2))
    )
    assert user.deleted_at is None
    await run(env.db.assert_soft_deleted(user))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_not_soft_deleted(user))
    assert str(info.value) == (
        f"Expected User(id={user.id}) not to be soft-deleted, but deleted_at is "
        "datetime.datetime(2024, 1, 2, 0, 0)."
    )
    await env.delete(user)
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_soft_deleted(user))
    assert str(info.value) == (
        f"Expected User(id={user.id}) to be soft-deleted, but its row is gone from 'user' "
        "(hard-deleted?)."
    )


@pytest.mark.asyncio
async def test_soft_delete_column_from_the_model_attribute_or_a_flag_name(env: Env) -> None:
    (account,) = await run(env.db.seed([Account(**VALUES)]))
    (post,) = await run(env.db.seed([Post(title="hello")]))
    await run(env.db.assert_not_soft_deleted(account))  # __dbrewind_soft_delete__ = "archived"
    await run(env.db.assert_not_soft_deleted(post))  # is_deleted, found by its name
    with pytest.raises(AssertionError, match=r"^Expected Post\(id=\d+\) to be soft-deleted, but "):
        await run(env.db.assert_soft_deleted(post))
    await env.execute(update(Account).values(archived=True))
    await env.execute(update(Post).values(is_deleted=True))
    await run(env.db.assert_soft_deleted(account))
    await run(env.db.assert_soft_deleted(post))


@pytest.mark.asyncio
async def test_soft_delete_without_a_column_names_the_columns_and_the_fix(env: Env) -> None:
    (tag,) = await run(env.db.seed([Tag(label="x")]))
    with pytest.raises(ConfigurationError) as info:
        await run(env.db.assert_soft_deleted(tag))
    assert str(info.value) == (
        "Tag has no soft-delete column: none of deleted_at, deleted_on, deleted, is_deleted, "
        "removed_at is among its columns (id, label). Say which one marks a deletion: "
        "assert_soft_deleted(obj, column='archived_at'), or on the model "
        "__dbrewind_soft_delete__ = 'archived_at'."
    )
    (user,) = await run(env.db.seed([alice()]))
    with pytest.raises(ConfigurationError) as info:
        await run(env.db.assert_soft_deleted(user, column="removed_at"))
    assert str(info.value) == (
        "User has no column or attribute 'removed_at' to mark soft deletion "
        "(column='removed_at'); its columns are: id, name, email, deleted_at."
    )


# -------------------------------------------------------------------- queries
async def _select_users(env: Env) -> None:
    (await env.execute(select(User))).all()


@pytest.mark.asyncio
async def test_num_queries_counts_the_statements_of_the_block(env: Env) -> None:
    await run(env.db.seed([alice()]))
    async with env.db.assert_num_queries(2) as capture:
        await _select_users(env)
        (await env.execute(select(User.id))).all()
    assert isinstance(capture, QueryCapture)
    assert capture.count == 2

    async def two_where_one_is_expected() -> None:
        async with env.db.assert_num_queries(1):
            await _select_users(env)
            (await env.execute(select(OrderItem))).all()

    with pytest.raises(AssertionError) as info:
        await two_where_one_is_expected()
    message = str(info.value)
    assert message.startswith("Expected 1 query, 2 ran:\n  1. SELECT")
    assert "\n  2. SELECT" in message
    assert "Order Items" in message


@pytest.mark.asyncio
async def test_max_num_queries_fails_only_above_the_limit(env: Env) -> None:
    async with env.db.assert_max_num_queries(2):
        await _select_users(env)

    async def two_where_one_at_most_is_expected() -> None:
        async with env.db.assert_max_num_queries(1):
            await _select_users(env)
            await _select_users(env)

    with pytest.raises(AssertionError, match=r"^Expected at most 1 query, 2 ran:\n  1\. SELECT"):
        await two_where_one_at_most_is_expected()
    with pytest.raises(AssertionError, match=r"^Expected 0 queries, 1 ran:"):
        async with env.db.assert_num_queries(0):
            await _select_users(env)


@pytest.mark.asyncio
async def test_capture_lists_the_statements_and_stops_after_the_block(env: Env) -> None:
    async with env.db.capture_queries() as capture:
        await _select_users(env)
    await _select_users(env)
    assert len(capture.statements) == 1
    assert capture.statements[0].startswith("SELECT")


@pytest.mark.asyncio
async def test_the_helpers_own_queries_and_autoflush_are_not_counted(env: Env) -> None:
    async with env.db.assert_num_queries(1) as capture:
        env.session.add(alice())  # pending: the helper's read below flushes it
        await run(env.db.assert_database_has(User, {"name": "Alice"}))
        await run(env.db.assert_database_count("user", 1))
        await run(env.db.seed([bob()]))
        await _select_users(env)
    assert capture.statements[0].startswith("SELECT")


@pytest.mark.asyncio
async def test_the_transactions_begin_and_commit_are_not_counted(env: Env) -> None:
    async with env.db.capture_queries() as capture:
        env.session.add(alice())
        await run(env.session.commit())
        await _select_users(env)
    assert [s.split()[0] for s in capture.statements] == ["INSERT", "SELECT"]


def test_sync_flavour_counts_with_a_plain_with(sync_session: Session) -> None:
    db = DatabaseTestCase(sync_session)
    with db.assert_num_queries(1) as capture:
        sync_session.execute(text("SELECT 1")).all()
    assert capture.statements == ["SELECT 1"]


# -------------------------------------------------------------------- exports
def test_the_module_exports_the_factories_and_the_tests_session() -> None:
    import dbrewind.testing as testing
    from dbrewind import _test_context, factories

    assert testing.ModelFactory is factories.ModelFactory
    assert testing.FactoryBuilder is factories.FactoryBuilder
    assert testing.current_session is _test_context.current_session
    assert DatabaseTestCase is DatabaseAssertions
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        testing.Nope  # noqa: B018


def test_current_session_is_the_running_tests_db_session(db_session: Session) -> None:
    from dbrewind.testing import current_session

    assert current_session() is db_session


@pytest.mark.backends("postgresql")
def test_a_dotted_name_is_a_table_in_a_schema(backend: str, sync_session: Session) -> None:
    sync_session.execute(text("CREATE SCHEMA audit"))
    sync_session.execute(text("CREATE TABLE audit.events (id serial PRIMARY KEY, kind text)"))
    sync_session.execute(text("INSERT INTO audit.events (kind) VALUES ('login')"))
    db = DatabaseTestCase(sync_session)
    db.assert_database_has("audit.events", {"kind": "login"})
    with pytest.raises(AssertionError, match=r"^Table 'audit\.events' has 1 row, expected 2\."):
        db.assert_database_count("audit.events", 2)
