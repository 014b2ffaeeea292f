"""dbrewind.peewee_async.TransactionTestCase's guarantees on every driver peewee-async has.

aiopg and psycopg 3 on PostgreSQL, aiomysql on MariaDB, aiosqlite on SQLite. On
PostgreSQL the statement savepoint travels with each statement (one round trip,
as outside the sandbox), and the safety net's check rides on the ``ROLLBACK``;
these tests hold the guarantees that design must keep: a failing statement is
undone alone, wherever it falls (first statement, after writes, twice in a row,
inside nested atomics and raw savepoints, among concurrent tasks), nothing of it
reaches the next block, and writes committed on another connection are rewound
and reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import peewee
import peewee_async
import pytest
import pytest_asyncio
from sqlalchemy import create_engine, text
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.engine import URL

import dbrewind.peewee_async as sandbox_module
from conftest import make_database, require_backend
from dbrewind.peewee import close_rewinders
from dbrewind.peewee_async import TransactionTestCase
from helpers.peewee_dbs import DRIVERS, aio_database

pytestmark = pytest.mark.asyncio


class Writer(peewee_async.AioModel):
    name = peewee.CharField(max_length=50, unique=True)


class Note(peewee_async.AioModel):
    writer = peewee.ForeignKeyField(Writer, null=True)
    body = peewee.CharField(max_length=50, default="")


MODELS = [Writer, Note]


@pytest.fixture(params=list(DRIVERS))
def driver(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require_backend(DRIVERS[name])
    return name


@pytest.fixture
def driver_url(driver: str, tmp_path: Path) -> Iterator[URL]:
    backend = DRIVERS[driver]
    url = make_database(backend, tmp_path)
    try:
        yield url
    finally:
        from helpers.runs import drop_derived

        drop_derived(backend, url)


@pytest_asyncio.fixture
async def database(driver: str, driver_url: URL) -> AsyncIterator[Any]:
    db = aio_database(driver_url, driver, min_size=0)
    db.bind(MODELS)
    await db.aio_create_tables(MODELS)
    try:
        yield db
    finally:
        close_rewinders()
        await db.aio_close()
        db.close()


async def names() -> list[str]:
    return [w.name for w in await Writer.select().order_by(Writer.name).aio_execute()]


async def committed(db: Any) -> int:
    row = await db.aio_execute_sql(
        f"SELECT COUNT(*) FROM {Writer._meta.table_name}",
        fetch_results=peewee_async.databases.fetchone,
    )
    return int(row[0])


async def fails(db: Any) -> None:
    """A statement the server refuses (on PostgreSQL it would abort the transaction)."""
    with pytest.raises(peewee.DatabaseError):
        await db.aio_execute_sql("SELECT * FROM no_such_table_here")


# ------------------------------------------------------------- errors
async def test_a_failing_first_statement_is_undone_alone(database: Any) -> None:
    async with TransactionTestCase(database):
        await fails(database)
        await Writer.aio_create(name="ada")
        assert await names() == ["ada"]
    assert await committed(database) == 0


async def test_a_failing_read_after_writes_keeps_the_writes(database: Any) -> None:
    async with TransactionTestCase(database):
        await Writer.aio_create(name="ada")
        await Writer.aio_create(name="grace")
        await fails(database)
        assert await names() == ["ada", "grace"]
        with pytest.raises(peewee.IntegrityError):
            await Writer.aio_create(name="ada")
        with pytest.raises(peewee.IntegrityError):  # twice in a row
            await Writer.aio_create(name="grace")
        await fails(database)
        await Writer.aio_create(name="linus")
        assert await names() == ["ada", "grace", "linus"]
    assert await committed(database) == 0


async def test_an_error_does_not_reach_the_next_block(database: Any) -> None:
    async with TransactionTestCase(database):
        await Writer.aio_create(name="ada")
        with pytest.raises(peewee.IntegrityError):
            await Writer.aio_create(name="ada")
    async with TransactionTestCase(database):
        assert await names() == []
        await Writer.aio_create(name="ada")  # the same name: nothing of the last block is left
        assert await names() == ["ada"]
    assert await committed(database) == 0


async def test_an_error_left_unhandled_ends_the_block_and_the_next_is_clean(
    database: Any,
) -> None:
    async def block() -> None:
        async with TransactionTestCase(database):
            await Writer.aio_create(name="ada")
            await Writer.aio_create(name="ada")

    with pytest.raises(peewee.IntegrityError):
        await block()
    async with TransactionTestCase(database):
        assert await Writer.select().aio_count() == 0


# --------------------------------------------------------- nested atomics
async def fail_after_an_error(block: Any, db: Any) -> None:
    async with block():
        await Writer.aio_create(name="undone")
        await fails(db)
        raise RuntimeError("roll the block back")


async def test_errors_inside_nested_atomics_undo_only_their_statement(database: Any) -> None:
    async with TransactionTestCase(database):
        await Writer.aio_create(name="outside")
        async with database.aio_atomic():
            await Writer.aio_create(name="level1")
            await fails(database)
            async with database.aio_atomic():
                await Writer.aio_create(name="level2")
                with pytest.raises(peewee.IntegrityError):
                    await Writer.aio_create(name="level1")
                await Writer.aio_create(name="level2b")
            with pytest.raises(RuntimeError):
                await fail_after_an_error(database.aio_atomic, database)
            await Writer.aio_create(name="level1b")
        assert await names() == ["level1", "level1b", "level2", "level2b", "outside"]
        with pytest.raises(RuntimeError):
            await fail_after_an_error(database.aio_transaction, database)
        await fails(database)
        assert await names() == ["level1", "level1b", "level2", "level2b", "outside"]
    assert await committed(database) == 0


async def test_raw_savepoints_and_transactions_beside_statement_savepoints(
    database: Any,
) -> None:
    run = database.aio_execute_sql
    async with TransactionTestCase(database):
        await Writer.aio_create(name="before")
        await run("SAVEPOINT mine")
        await Writer.aio_create(name="in mine")
        await fails(database)
        await run("ROLLBACK TO SAVEPOINT mine")
        await Writer.aio_create(name="after rollback to")
        await run("RELEASE SAVEPOINT mine")
        await run("BEGIN")
        await Writer.aio_create(name="in begin")
        await run("ROLLBACK")
        await run("BEGIN")
        await Writer.aio_create(name="committed savepoint")
        await run("COMMIT")
        await fails(database)
        assert await names() == ["after rollback to", "before", "committed savepoint"]
    assert await committed(database) == 0


async def test_concurrent_statements_with_errors_among_them(database: Any) -> None:
    async def write(i: int) -> None:
        if i % 3 == 0:
            await fails(database)
        else:
            await Writer.aio_create(name=f"w{i:02}")

    async with TransactionTestCase(database):
        await asyncio.gather(*(write(i) for i in range(12)))
        assert await names() == [f"w{i:02}" for i in range(12) if i % 3]
    assert await committed(database) == 0


async def test_many_statements_in_one_block(database: Any) -> None:
    async with TransactionTestCase(database):
        for i in range(300):
            await Writer.aio_create(name=f"n{i:03}")
        await fails(database)
        assert await Writer.select().aio_count() == 300
    assert await committed(database) == 0


# -------------------------------------------------------------- round trips
async def test_no_round_trip_of_its_own_per_statement(
    database: Any, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statements and their savepoints share a round trip; dbrewind's own statements
    are the block's BEGIN and ROLLBACK (and one per failed statement)."""
    own: list[str] = []
    real = sandbox_module._run

    async def counted(raw: Any, sql: str) -> None:
        own.append(sql)
        await real(raw, sql)

    async with TransactionTestCase(database):  # the safety net taken up, outside the count
        pass
    monkeypatch.setattr(sandbox_module, "_run", counted)
    async with TransactionTestCase(database):
        for i in range(10):
            await Writer.aio_create(name=f"n{i}")
        assert await Writer.select().aio_count() == 10
        async with database.aio_atomic():
            await Writer.aio_create(name="nested")
        with pytest.raises(peewee.IntegrityError):
            await Writer.aio_create(name="n1")
    failed = 1 if driver in ("aiopg", "psycopg") else 0
    assert len(own) <= 2 + failed, own


# -------------------------------------------------------------- safety net
async def test_a_write_committed_on_another_connection_is_rewound_and_reported(
    database: Any, driver_url: URL
) -> None:
    other = create_engine(driver_url)
    table = Writer._meta.table_name
    try:
        async with TransactionTestCase(database) as case:
            with other.begin() as conn:  # before the block writes: SQLite has one writer
                conn.execute(text(f"INSERT INTO {table} (name) VALUES ('escaped')"))
            await Writer.aio_create(name="sandboxed")
            await fails(database)
        assert case.leaked is not None
        assert [key.rsplit(".", 1)[-1] for key in case.leaked.tables] == [table]
        async with TransactionTestCase(database) as again:
            assert await names() == []
        assert again.leaked is None
        with other.connect() as conn:
            assert conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0
    finally:
        other.dispose()


async def test_a_sync_peewee_write_is_rewound_and_reported(database: Any) -> None:
    with database.allow_sync():
        async with TransactionTestCase(database) as case:
            Note.create(body="sync, escaped")
            await Writer.aio_create(name="async")
    assert case.leaked is not None
    assert [key.rsplit(".", 1)[-1] for key in case.leaked.tables] == ["note"]
    async with TransactionTestCase(database) as again:
        assert await Note.select().aio_count() == 0
    assert again.leaked is None


async def test_a_clean_block_reports_nothing(database: Any) -> None:
    for _ in range(3):
        async with TransactionTestCase(database) as case:
            await Writer.aio_create(name="ada")
            await fails(database)
        assert case.leaked is None
    assert await committed(database) == 0


async def test_a_table_created_on_another_connection_is_dropped_and_reported(
    database: Any, driver_url: URL
) -> None:
    other = create_engine(driver_url)
    try:
        async with TransactionTestCase(database) as case:
            with other.begin() as conn:
                conn.execute(text("CREATE TABLE escaped_table (id INTEGER PRIMARY KEY)"))
            await Writer.aio_create(name="sandboxed")
        assert case.leaked is not None
        assert [key.rsplit(".", 1)[-1] for key in case.leaked.created_tables] == ["escaped_table"]
        with other.connect() as conn:
            names_left = set(sqlalchemy_inspect(conn).get_table_names())
        assert "escaped_table" not in names_left
    finally:
        other.dispose()


async def test_postgresql_writes_in_the_block_fire_no_tracking_trigger(
    database: Any, driver: str
) -> None:
    if DRIVERS[driver] != "postgresql":
        pytest.skip("PostgreSQL's transaction-local marks")
    async with TransactionTestCase(database):  # the safety net taken up
        pass
    async with TransactionTestCase(database) as case:
        await Writer.aio_create(name="ada")
        await Note.aio_create(body="x")
        row = await database.aio_execute_sql(
            "SELECT COUNT(*) FROM dbrewind.marks", fetch_results=peewee_async.databases.fetchone
        )
        assert row[0] == 0  # what the block writes is rolled back: no mark is needed
    assert case.leaked is None


async def test_a_commit_sent_past_the_sandbox_is_rewound_whole(database: Any, driver: str) -> None:
    """A COMMIT straight on the driver's connection ends the block's transaction: what it
    wrote is committed. On PostgreSQL the block's BEGIN told the tracking triggers to
    skip their marks; the block sees its transaction gone and rewinds every table."""
    if DRIVERS[driver] == "sqlite":
        pytest.skip("aiosqlite's block connection is not reached this way")
    async with TransactionTestCase(database) as case:
        await Writer.aio_create(name="ada")
        await sandbox_module._run(case._raw, "COMMIT")
    assert case.leaked is not None
    assert "writer" in [key.rsplit(".", 1)[-1] for key in case.leaked.tables]
    assert await committed(database) == 0
    async with TransactionTestCase(database) as again:
        assert await names() == []
    assert again.leaked is None
