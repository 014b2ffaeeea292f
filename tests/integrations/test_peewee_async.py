"""dbrewind.peewee_async.TransactionTestCase on real SQLite, PostgreSQL and MariaDB databases.

peewee-async 2.1 backends used: ``Psycopg3Database`` (psycopg 3 + psycopg_pool),
``MySQLDatabase`` (aiomysql), ``SqliteDatabase`` (aiosqlite). Its aiopg-based
``PostgresqlDatabase`` runs in ``tests/lifecycle/test_lock_watch_entry_points.py``
(and in peewee-async's own test suite, with dbrewind's class as the drop-in).
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import peewee
import peewee_async
import pytest
import pytest_asyncio
from sqlalchemy.engine import URL

from dbrewind import RewindResult, SandboxError
from dbrewind.peewee import close_rewinders
from dbrewind.peewee_async import TransactionTestCase
from helpers.peewee_dbs import aio_database

pytestmark = pytest.mark.asyncio


class Author(peewee_async.AioModel):
    name = peewee.CharField(max_length=50, unique=True)


class Order(peewee_async.AioModel):
    """A model whose table is a reserved word."""

    author = peewee.ForeignKeyField(Author, backref="orders", null=True)
    note = peewee.CharField(max_length=50, default="")

    class Meta:
        table_name = "order"


MODELS = [Author, Order]


@pytest_asyncio.fixture
async def database(db_url: URL) -> AsyncIterator[Any]:
    """A peewee-async database on a fresh test database, tables created."""
    db = aio_database(db_url)
    db.bind(MODELS)
    await db.aio_create_tables(MODELS)
    try:
        yield db
    finally:
        close_rewinders()
        await db.aio_close()
        db.close()


async def names() -> list[str]:
    return sorted(a.name for a in await Author.select().order_by(Author.name).aio_execute())


async def committed(db: Any, model: type[peewee.Model]) -> int:
    """Rows of ``model`` committed, read on a fresh pooled connection."""
    table = model._meta.table_name.join(db.quote)
    async with db.aio_connection():
        row = await db.aio_execute_sql(
            f"SELECT COUNT(*) FROM {table}", fetch_results=peewee_async.databases.fetchone
        )
    return int(row[0])


async def create_then_fail(block: Any, name: str) -> None:
    async with block():
        await Author.aio_create(name=name)
        raise RuntimeError(f"undo {name}")


# ------------------------------------------------------------------ rollback
async def test_writes_inside_the_block_are_rolled_back(database: Any) -> None:
    async with TransactionTestCase(database) as case:
        author = await Author.aio_create(name="ada")
        await Order.aio_create(author=author, note="first")
        assert await Author.select().aio_count() == 1
    assert case.leaked is None
    assert await Author.select().aio_count() == 0
    assert await committed(database, Order) == 0


async def test_the_next_block_sees_a_clean_table(database: Any) -> None:
    for round_ in range(3):
        async with TransactionTestCase(database):
            assert await Author.select().aio_count() == 0, f"round {round_} saw old rows"
            await Author.aio_create(name="ada")


async def test_aio_atomic_nested_three_deep_inner_failure_rolls_back_only_its_savepoint(
    database: Any,
) -> None:
    async with TransactionTestCase(database):
        async with database.aio_atomic():
            await Author.aio_create(name="level1")
            async with database.aio_atomic():
                await Author.aio_create(name="level2")
                with pytest.raises(RuntimeError):
                    await create_then_fail(database.aio_atomic, "level3")
                assert await names() == ["level1", "level2"]
            with pytest.raises(RuntimeError):
                await create_then_fail(database.aio_atomic, "level2b")
        assert await names() == ["level1", "level2"]
    assert await Author.select().aio_count() == 0


async def test_aio_transaction_nests_as_savepoints(database: Any) -> None:
    async with TransactionTestCase(database):
        async with database.aio_transaction():
            await Author.aio_create(name="outer")
            with pytest.raises(RuntimeError):
                await create_then_fail(database.aio_transaction, "inner")
        assert await names() == ["outer"]
    assert await Author.select().aio_count() == 0


async def test_aio_begin_and_aio_savepoint_map_to_savepoints(database: Any) -> None:
    async with TransactionTestCase(database), database.aio_connection():
        transaction = await database.aio_begin()
        await Author.aio_create(name="kept")
        savepoint = await database.aio_savepoint()
        await Author.aio_create(name="dropped")
        await savepoint.rollback()
        await transaction.commit()
        again = await database.aio_begin()
        await Author.aio_create(name="rolled back")
        await again.rollback()
        assert await names() == ["kept"]
    assert await committed(database, Author) == 0


async def test_raw_transaction_sql_is_mapped_to_savepoints(database: Any) -> None:
    async with TransactionTestCase(database):
        await database.aio_execute_sql("BEGIN")
        await Author.aio_create(name="kept")
        await database.aio_execute_sql("COMMIT")
        await database.aio_execute_sql("START TRANSACTION" if _mysql(database) else "BEGIN")
        await Author.aio_create(name="dropped")
        await database.aio_execute_sql("ROLLBACK")
        await database.aio_execute_sql("COMMIT")  # nothing open: a no-op
        assert await names() == ["kept"]
    assert await committed(database, Author) == 0


def _mysql(database: Any) -> bool:
    return isinstance(database, peewee.MySQLDatabase)


async def test_integrity_error_then_more_queries(database: Any) -> None:
    async with TransactionTestCase(database):
        await Author.aio_create(name="ada")
        with pytest.raises(peewee.IntegrityError):
            await Author.aio_create(name="ada")
        await Author.aio_create(name="grace")
        assert await names() == ["ada", "grace"]
        async with database.aio_atomic():
            with pytest.raises(peewee.IntegrityError):
                await Author.aio_create(name="grace")
            await Author.aio_create(name="linus")
        assert await names() == ["ada", "grace", "linus"]
    assert await Author.select().aio_count() == 0


async def test_gather_of_20_queries_shares_the_one_connection(database: Any) -> None:
    async with TransactionTestCase(database):
        await asyncio.gather(*(Author.aio_create(name=f"a{i:02}") for i in range(20)))
        counts = await asyncio.gather(*(Author.select().aio_count() for _ in range(20)))
        assert counts == [20] * 20
    assert await committed(database, Author) == 0


async def test_concurrent_atomic_blocks_do_not_interleave(database: Any) -> None:
    async def worker(i: int) -> None:
        async with database.aio_atomic():
            await Author.aio_create(name=f"w{i}")
            await asyncio.sleep(0)
            if i % 2:
                raise RuntimeError(f"undo w{i}")
            await asyncio.gather(*(Author.select().aio_count() for _ in range(3)))

    async with TransactionTestCase(database):
        results = await asyncio.gather(*(worker(i) for i in range(10)), return_exceptions=True)
        assert sum(isinstance(r, RuntimeError) for r in results) == 5
        assert await names() == [f"w{i}" for i in range(0, 10, 2)]
    assert await Author.select().aio_count() == 0


async def test_an_exception_inside_the_block_still_rolls_back(database: Any) -> None:
    async def body() -> None:
        async with TransactionTestCase(database):
            await Author.aio_create(name="ada")
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await body()
    assert "aio_connection" not in vars(database)
    assert "_aio_atomic" not in vars(database)
    assert "execute_sql" not in vars(database)
    assert await committed(database, Author) == 0
    async with database.aio_atomic():  # real transactions work again
        await Author.aio_create(name="real")
    assert await committed(database, Author) == 1
    await Author.delete().aio_execute()


async def test_cancellation_rolls_back_and_releases_the_connection(database: Any) -> None:
    started = asyncio.Event()

    async def body() -> None:
        async with TransactionTestCase(database):
            await Author.aio_create(name="ada")
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(body())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "aio_connection" not in vars(database)
    assert await committed(database, Author) == 0
    async with TransactionTestCase(database):
        assert await Author.select().aio_count() == 0


async def test_entering_twice_at_once_is_refused(database: Any) -> None:
    case = TransactionTestCase(database)
    async with case:
        with pytest.raises(SandboxError, match="already active"):
            await case.__aenter__()


# ----------------------------------------------------------------- safety net
async def test_a_sync_query_in_an_async_test_is_rewound_by_the_safety_net(
    database: Any,
) -> None:
    reports: list[RewindResult] = []
    with database.allow_sync():
        async with TransactionTestCase(database, on_leak=reports.append) as case:
            Order.create(note="sync, escaped")  # peewee's sync path: its own connection
            await Author.aio_create(name="async, sandboxed")
            assert await Order.select().aio_count() == 1
    assert case.sync_queries
    assert case.leaked is not None
    assert [key.rsplit(".", 1)[-1] for key in case.leaked.tables] == ["order"]
    assert reports == [case.leaked]
    assert await committed(database, Order) == 0
    assert await committed(database, Author) == 0
    async with TransactionTestCase(database) as again:
        assert await Order.select().aio_count() == 0
    assert again.leaked is None


@pytest.mark.backends("sqlite")
async def test_sqlite_sync_write_blocked_by_the_sandbox_says_why(database: Any) -> None:
    database._timeout = 0.1  # fail fast instead of waiting 5 s for the lock
    with database.allow_sync():
        async with TransactionTestCase(database):
            await Author.aio_create(name="holds the write lock")
            with pytest.raises(SandboxError, match="write lock"):
                Order.create(note="sync")


async def test_without_the_safety_net_a_sync_write_stays(database: Any) -> None:
    with database.allow_sync():
        async with TransactionTestCase(database, safety_net=False) as case:
            Order.create(note="sync, escaped")
    assert case.leaked is None
    assert await committed(database, Order) == 1


@pytest.mark.backends("mysql")
async def test_mysql_ddl_inside_the_block_is_refused(database: Any) -> None:
    async with TransactionTestCase(database):
        await Author.aio_create(name="ada")
        with pytest.raises(SandboxError, match="commits the open transaction"):
            await database.aio_execute_sql("TRUNCATE TABLE `author`")
        assert await Author.select().aio_count() == 1
    assert await committed(database, Author) == 0


# ----------------------------------------------------------- the seed, as is
SEED_000 = """
import pytest
from dbrewind.peewee_async import TransactionTestCase
from typing import AsyncGenerator

@pytest.fixture
async def clear_tables() -> AsyncGenerator[None, None]:
    yield
    for model in all_your_models:
        await model.delete().aio_execute()

@pytest.fixture(autouse=True)
async def in_transaction(
    request: pytest.FixtureRequest,
) -> AsyncGenerator[None, None]:
    # In some cases, TransactionTestCase cannot be used,
    # so we fall back to the clear_tables fixture.
    if "clear_tables" in request.fixturenames:
        yield
    else:
        async with TransactionTestCase(database):
            yield

async def test_model_created() -> None:
    # This test runs inside a transaction and is rolled back on exit.
    # No records will remain in the TestModel table after the test.
    await TestModel.aio_create(text="Test 1")
    assert await TestModel.aio_exists()

async def test_model_sync_created(clear_tables: None) -> None:
    # TransactionTestCase cannot be used with synchronous queries,
    # so we use the clear_tables fixture instead.
    TestModel.create(text="Test 1")
    assert TestModel.exists()
"""

# What the seed leaves to the project: the database, the model and its helpers.
SEED_PREAMBLE = """
import peewee
import peewee_async

database = {database}
database.set_allow_sync(True)


class TestModel(peewee_async.AioModel):
    text = peewee.CharField()

    class Meta:
        database = database

    @classmethod
    async def aio_exists(cls):
        return await cls.select().aio_exists()

    @classmethod
    def exists(cls):
        return cls.select().exists()


all_your_models = [TestModel]
database.create_tables(all_your_models)
"""

# Extra tests in the same module: whatever order they run in, the table is clean.
SEED_CHECKS = """

async def test_the_table_is_clean_before_each_test() -> None:
    assert not await TestModel.aio_exists()
    assert not TestModel.exists()
    await TestModel.aio_create(text="left behind?")


async def test_a_sync_write_inside_the_sandbox_is_cleaned_too() -> None:
    TestModel.create(text="escaped")
    assert await TestModel.aio_exists()
"""


def _database_expr(url: URL) -> str:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"peewee_async.SqliteDatabase({url.database!r})"
    args = (
        f"{url.database!r}, host={url.host!r}, port={url.port!r}, "
        f"user={url.username!r}, password={url.password or ''!r}"
    )
    if backend == "postgresql":
        return f"peewee_async.Psycopg3Database({args})"
    return f"peewee_async.MySQLDatabase({args})"


async def test_seed_000_example_runs_unchanged_in_random_order(
    pytester: pytest.Pytester, db_url: URL
) -> None:
    pytester.makeini(
        textwrap.dedent(
            """
            [pytest]
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = session
            asyncio_default_test_loop_scope = session
            """
        )
    )
    preamble = SEED_PREAMBLE.format(database=_database_expr(db_url))
    pytester.makepyfile(test_seed=preamble + SEED_000 + SEED_CHECKS)
    for seed in (1, 2):
        result = await asyncio.to_thread(
            pytester.runpytest_subprocess, "-p", "randomly", f"--randomly-seed={seed}"
        )
        result.assert_outcomes(passed=4)
