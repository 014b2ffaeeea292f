"""dbrewind.testing over peewee on real databases: a peewee Database (plain methods), the
same inside the event loop (awaitable methods running the sync code), and a peewee-async
database (awaitable methods through ``aio_execute_sql``); also inside dbrewind's peewee
rollback sandboxes, whose savepoint bookkeeping is never counted.
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import peewee
import peewee_async
import pytest
import pytest_asyncio
from sqlalchemy.engine import URL

from dbrewind.exceptions import ConfigurationError
from dbrewind.peewee import TransactionTestCase, close_rewinders
from dbrewind.peewee_async import TransactionTestCase as AsyncTransactionTestCase
from dbrewind.testing import (
    AsyncDatabaseAssertions,
    DatabaseAssertions,
    SyncDatabaseAssertions,
)
from helpers.peewee_dbs import aio_database, sync_database

T = TypeVar("T")


class JSONText(peewee.TextField):
    """A JSON document stored as text, on every database."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class Author(peewee_async.AioModel):
    name = peewee.CharField(max_length=50)
    email = peewee.CharField(max_length=100)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "user"  # a reserved word


class Item(peewee_async.AioModel):
    author = peewee.ForeignKeyField(Author)
    order = peewee.CharField(max_length=50, column_name="Order")

    class Meta:
        table_name = "Order Items"  # mixed case and a space


class Account(peewee_async.AioModel):
    """Every common type, and a soft-delete flag the model names."""

    __dbrewind_soft_delete__ = "archived"

    opened = peewee.DateField()
    seen_at = peewee.DateTimeField()
    balance = peewee.DecimalField(max_digits=10, decimal_places=2)
    settings = JSONText()
    token = peewee.UUIDField()
    note = peewee.CharField(max_length=50, null=True)
    archived = peewee.BooleanField(default=False)


class Tag(peewee_async.AioModel):
    label = peewee.CharField(max_length=20)


class Event(peewee_async.AioModel):
    """No primary key."""

    message = peewee.CharField(max_length=50)

    class Meta:
        primary_key = False


MODELS = [Author, Item, Account, Tag, Event]


@pytest.fixture
def pw_database(db_url: URL) -> Iterator[peewee.Database]:
    db = sync_database(db_url)
    db.bind(MODELS)
    db.create_tables(MODELS)
    try:
        yield db
    finally:
        close_rewinders()
        db.close()


@pytest_asyncio.fixture
async def aio_db(db_url: URL) -> AsyncIterator[Any]:
    db = aio_database(db_url)
    db.bind(MODELS)
    await db.aio_create_tables(MODELS)
    try:
        yield db
    finally:
        close_rewinders()
        await db.aio_close()
        db.close()


async def run(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass
class Env:
    """One flavour: the helpers and how the 'code under test' writes."""

    db: Any
    database: Any
    is_async: bool

    async def create(self, model: Any, **values: Any) -> Any:
        if self.is_async:
            return await model.aio_create(**values)
        return model.create(**values)

    async def execute(self, query: Any) -> Any:
        return await (query.aio_execute() if self.is_async else run(query.execute()))


@pytest.fixture(params=["peewee", "peewee-in-loop", "peewee-async"])
def env(backend: str, request: pytest.FixtureRequest) -> Env:
    """The helpers in one flavour on a fresh database of ``backend``, tables created."""
    if request.param == "peewee-async":
        database = request.getfixturevalue("aio_db")
        db = DatabaseAssertions(database)
        assert type(db) is AsyncDatabaseAssertions
        return Env(db, database, is_async=True)
    database = request.getfixturevalue("pw_database")
    if request.param == "peewee":
        db = DatabaseAssertions(database)
        assert type(db) is SyncDatabaseAssertions
        return Env(db, database, is_async=False)
    return Env(AsyncDatabaseAssertions(database), database, is_async=False)


def alice() -> Author:
    return Author(name="Alice", email="alice@example.com")


def bob() -> Author:
    return Author(name="Bob", email="bob@example.com")


# -------------------------------------------------------------------- flavours
@pytest.mark.asyncio
async def test_a_peewee_database_made_in_a_loop_gives_awaitable_methods(
    pw_database: peewee.Database,
) -> None:
    db = DatabaseAssertions(pw_database)
    assert type(db) is AsyncDatabaseAssertions
    await db.assert_database_empty(Author)


@pytest.mark.asyncio
async def test_a_peewee_async_database_is_refused_by_the_sync_flavour(aio_db: Any) -> None:
    with pytest.raises(ConfigurationError, match="over a peewee-async database"):
        SyncDatabaseAssertions(aio_db)


# ----------------------------------------------------------- seeding and rows
@pytest.mark.asyncio
async def test_seed_saves_the_instances_and_refresh_reloads_them(env: Env) -> None:
    users = await run(env.db.seed([alice(), bob()]))
    assert all(u.id is not None for u in users)
    await run(env.db.assert_database_count(Author, 2))
    await env.execute(Author.update(name="Changed").where(Author.id == users[0].id))
    assert users[0].name == "Alice"
    assert (await run(env.db.refresh(users[0]))).name == "Changed"


@pytest.mark.asyncio
async def test_refresh_drops_the_related_objects_it_had_loaded(env: Env) -> None:
    first, second = await run(env.db.seed([alice(), bob()]))
    (item,) = await run(env.db.seed([Item(author=first, order="one")]))
    assert item.author is first
    await env.execute(Item.update(author=second.id).where(Item.id == item.id))
    await run(env.db.refresh(item))
    assert item.author_id == second.id
    if env.is_async:  # no lazy loading on the event loop: the stale object is gone
        assert "author" not in item.__rel__
    else:
        assert item.author.name == "Bob"


@pytest.mark.asyncio
async def test_has_by_model_and_name_and_the_closest_rows_on_failure(env: Env) -> None:
    await run(env.db.seed([alice(), bob()]))
    await run(
        env.db.assert_database_has(Author, {"email": "alice@example.com", "deleted_at": None})
    )
    await run(env.db.assert_database_has("user", [{"name": "Alice"}, {"name": "Bob"}]))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_has(Author, {"name": "Alice", "email": "alicia@x.org"}))
    message = str(info.value)
    assert message.startswith(
        "Table 'user' has no row matching {name: 'Alice', email: 'alicia@x.org'}.\n"
        "Found 2 rows; the 2 closest (most matching columns first):\n  {id: "
    )
    first, second = message.split("\n  {")[1:]
    assert "matches 1 of 2; differs: email: 'alice@example.com' (expected 'alicia@x.org')" in first
    assert "name: 'Bob'" in second
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_has("user", [{"name": "Alice"}, {"name": "Carol"}]))
    assert str(info.value).startswith(
        "Table 'user' is missing 1 of the 2 rows expected:\n  {name: 'Carol'}\n"
        "Found 2 rows; the 2 closest to {name: 'Carol'} (most matching columns first):"
    )


@pytest.mark.asyncio
async def test_missing_count_and_empty_show_the_rows_found(env: Env) -> None:
    await run(env.db.assert_database_empty("user"))
    await run(env.db.seed([alice()]))
    await run(env.db.assert_database_missing(Author, {"name": "Bob"}))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_missing("user", {"name": "Alice"}))
    assert str(info.value).startswith(
        "Table 'user' has 1 row matching {name: 'Alice'}, expected none:\n  {id: "
    )
    await run(env.db.assert_database_count("user", 1, where={"email": "alice@example.com"}))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_database_count(Author, 3))
    assert str(info.value).startswith("Table 'user' has 1 row, expected 3.\nFound:\n  {id: ")
    assert "name: 'Alice'" in str(info.value)
    with pytest.raises(AssertionError, match=r"^Table 'user' has 1 row, expected 0\.\nFound:"):
        await run(env.db.assert_database_empty(Author))


@pytest.mark.asyncio
async def test_quoted_names_attribute_names_and_unknown_names(env: Env) -> None:
    (user,) = await run(env.db.seed([alice()]))
    await run(env.db.seed([Item(author=user, order="first")]))
    await run(env.db.assert_database_has("Order Items", {"Order": "first", "author_id": user.id}))
    await run(env.db.assert_database_count(Item, 1, where={"order": "first", "author": user.id}))
    with pytest.raises(ConfigurationError, match=r"^Table 'nope' does not exist in "):
        await run(env.db.assert_database_count("nope", 0))
    with pytest.raises(
        ConfigurationError,
        match=r"^Table 'user' has no column 'emial'\. Its columns are: id, name, email, deleted_at",
    ):
        await run(env.db.assert_database_has(Author, {"emial": "x"}))
    with pytest.raises(ConfigurationError, match="neither a table name nor a peewee Model"):
        await run(env.db.assert_database_count(object, 0))


VALUES: dict[str, Any] = {
    "opened": dt.date(2024, 2, 29),
    "seen_at": dt.datetime(2024, 3, 1, 12, 30, 5),
    "balance": decimal.Decimal("12.50"),
    "settings": {"theme": "dark", "tags": ["a", "b"]},
    "token": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "note": None,
    "archived": False,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("by", ["model", "name"])
async def test_values_of_every_common_type_match(env: Env, by: str) -> None:
    await run(env.db.seed([Account(**VALUES), Account(**{**VALUES, "note": "other"})]))
    table: Any = Account if by == "model" else "account"
    await run(env.db.assert_database_has(table, VALUES))
    for column, value in VALUES.items():
        expected = 1 if column == "note" else 2
        await run(env.db.assert_database_count(table, expected, where={column: value}))
    await run(env.db.assert_database_missing(table, {"settings": {"theme": "light"}}))
    await run(env.db.assert_database_missing(table, {"token": uuid.uuid4()}))


# ----------------------------------------------------------- model instances
@pytest.mark.asyncio
async def test_model_exists_missing_and_soft_deletes_read_the_row(env: Env) -> None:
    (user,) = await run(env.db.seed([alice()]))
    await run(env.db.assert_model_exists(user))
    await run(env.db.assert_not_soft_deleted(user))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_soft_deleted(user))
    assert str(info.value) == (
        f"Expected Author(id={user.id}) to be soft-deleted, but deleted_at is NULL."
    )
    await env.execute(Author.update(deleted_at=dt.datetime(2024, 1, 2)))
    assert user.deleted_at is None
    await run(env.db.assert_soft_deleted(user))
    with pytest.raises(AssertionError, match=r"not to be soft-deleted, but deleted_at is "):
        await run(env.db.assert_not_soft_deleted(user))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_model_missing(user))
    assert str(info.value).startswith(
        f"Expected Author(id={user.id}) to be missing, but its row is still in 'user': {{id: "
    )
    await env.execute(Author.delete())
    await run(env.db.assert_model_missing(user))
    with pytest.raises(AssertionError) as info:
        await run(env.db.assert_model_exists(user))
    assert str(info.value) == (
        f"Expected Author(id={user.id}) to exist, but table 'user' has no such row."
    )
    with pytest.raises(AssertionError, match=r"its row is gone from 'user' \(hard-deleted\?\)"):
        await run(env.db.assert_soft_deleted(user))


@pytest.mark.asyncio
async def test_model_assertions_on_a_model_without_a_primary_key_say_what_to_do(
    env: Env,
) -> None:
    insert = Event.insert(message="hello")
    if env.is_async:  # as SQL: peewee-async reads a key back from a model's INSERT
        await env.database.aio_execute_sql(*insert.sql())
    else:
        insert.execute()
    await run(env.db.assert_database_has(Event, {"message": "hello"}))
    expected = (
        "Event has no primary key (primary_key=False), so the model assertions cannot find "
        "its row. Assert on its columns instead: assert_database_has(Event, {...}), or give "
        "the model a primary key."
    )
    with pytest.raises(ConfigurationError) as info:
        await run(env.db.assert_model_exists(Event(message="hello")))
    assert str(info.value) == expected
    with pytest.raises(ConfigurationError) as info:
        await run(env.db.assert_not_soft_deleted(Event(message="hello"), column="message"))
    assert str(info.value) == expected


@pytest.mark.asyncio
async def test_soft_delete_column_from_the_model_or_a_clear_error(env: Env) -> None:
    (account,) = await run(env.db.seed([Account(**VALUES)]))
    await run(env.db.assert_not_soft_deleted(account))
    await env.execute(Account.update(archived=True))
    await run(env.db.assert_soft_deleted(account))
    (tag,) = await run(env.db.seed([Tag(label="x")]))
    with pytest.raises(ConfigurationError) as info:
        await run(env.db.assert_soft_deleted(tag))
    assert str(info.value).startswith(
        "Tag has no soft-delete column: none of deleted_at, deleted_on, deleted, is_deleted, "
        "removed_at is among its columns (id, label). Say which one marks a deletion: "
    )
    with pytest.raises(ConfigurationError, match="never saved"):
        await run(env.db.assert_model_exists(Tag(label="y")))
    with pytest.raises(ConfigurationError, match="not an instance of a peewee Model"):
        await run(env.db.assert_model_exists(object()))


# -------------------------------------------------------------------- queries
@pytest.mark.asyncio
async def test_num_queries_counts_the_code_under_tests_statements_only(env: Env) -> None:
    async with env.db.assert_num_queries(2) as capture:
        await env.create(Author, name="Carol", email="carol@example.com")
        await run(env.db.assert_database_has(Author, {"name": "Carol"}))  # not counted
        await env.execute(Author.select())
    assert [s.split()[0] for s in capture.statements] == ["INSERT", "SELECT"]

    async def one_where_none_is_expected() -> None:
        async with env.db.assert_num_queries(0):
            await env.execute(Author.select())

    with pytest.raises(
        AssertionError, match=r"^Expected 0 queries, 1 ran:\n  1\. SELECT .* FROM .user. AS .t1.$"
    ):
        await one_where_none_is_expected()
    async with env.db.assert_max_num_queries(5):
        await env.execute(Author.select())


def test_inside_the_peewee_sandbox_its_savepoints_are_not_counted(
    pw_database: peewee.Database,
) -> None:
    db = DatabaseAssertions(pw_database)
    with TransactionTestCase(pw_database), db.capture_queries() as capture:
        with pw_database.atomic():  # BEGIN/COMMIT: savepoints the sandbox sends
            Author.create(name="Alice", email="alice@example.com")
        Author.select().count()
        db.assert_database_count(Author, 1)
    assert [s.split()[0] for s in capture.statements] == ["INSERT", "SELECT"]
    db.assert_database_empty(Author)  # rolled back


def test_a_capture_begun_before_the_peewee_sandbox_leaves_its_savepoints_out(
    pw_database: peewee.Database,
) -> None:
    db = DatabaseAssertions(pw_database)
    with db.capture_queries() as capture, TransactionTestCase(pw_database):
        with pw_database.atomic():
            Author.create(name="Alice", email="alice@example.com")
        pw_database.execute_sql("COMMIT")
    assert [s.split()[0] for s in capture.statements] == ["INSERT"]


@pytest.mark.asyncio
async def test_inside_the_peewee_async_sandbox_its_savepoints_are_not_counted(aio_db: Any) -> None:
    db = DatabaseAssertions(aio_db)
    async with AsyncTransactionTestCase(aio_db):
        async with db.capture_queries() as capture:
            async with aio_db.aio_atomic():
                await Author.aio_create(name="Alice", email="alice@example.com")
            await Author.select().aio_count()
            await db.assert_database_count(Author, 1)
        assert [s.split()[0] for s in capture.statements] == ["INSERT", "SELECT"]
    await db.assert_database_empty(Author)


@pytest.mark.backends("postgresql")
def test_a_dotted_name_is_a_table_in_a_schema(backend: str, pw_database: peewee.Database) -> None:
    pw_database.execute_sql("CREATE SCHEMA audit")
    pw_database.execute_sql("CREATE TABLE audit.events (id serial PRIMARY KEY, kind text)")
    pw_database.execute_sql("INSERT INTO audit.events (kind) VALUES ('login')")
    db = DatabaseAssertions(pw_database)
    db.assert_database_has("audit.events", {"kind": "login"})
    with pytest.raises(AssertionError, match=r"^Table 'audit\.events' has 1 row, expected 2\."):
        db.assert_database_count("audit.events", 2)
