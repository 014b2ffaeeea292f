"""The async rollback sandbox over each asyncio driver (asyncpg, psycopg, aiosqlite, aiomysql)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool, StaticPool
from test_sandbox import committed_users, create_schema, order, user

from conftest import drop_database as drop_db
from conftest import make_database, require_backend
from dbrewind import Rewinder, RewindResult
from dbrewind.exceptions import SandboxBrokenError, SandboxError
from dbrewind.sandbox import AsyncSandbox

DRIVERS = [
    pytest.param(("sqlite", "aiosqlite"), id="sqlite-aiosqlite"),
    pytest.param(("postgresql", "asyncpg"), id="postgresql-asyncpg"),
    pytest.param(("postgresql", "psycopg_async"), id="postgresql-psycopg"),
    pytest.param(("mysql", "aiomysql"), id="mysql-aiomysql"),
    pytest.param(("mysql", "asyncmy"), id="mysql-asyncmy"),
]


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(backend, asyncio driver) pairs; each test runs once per driver."""
    pair: tuple[str, str] = request.param
    require_backend(pair[0])
    return pair


@pytest.fixture
def sync_url(driver: tuple[str, str], tmp_path: Path) -> Iterator[URL]:
    """A fresh database for this test (sync URL, for checks from outside)."""
    url = make_database(driver[0], tmp_path)
    try:
        yield url
    finally:
        drop_db(driver[0], url)


@pytest_asyncio.fixture
async def app_engine(driver: tuple[str, str], sync_url: URL) -> AsyncIterator[AsyncEngine]:
    """The application's async engine on the test database, with its schema."""
    engine = create_async_engine(sync_url.set(drivername=f"{driver[0]}+{driver[1]}"))
    async with engine.begin() as conn:
        await conn.run_sync(create_schema)
    try:
        yield engine
    finally:
        await engine.dispose()


def only(driver: tuple[str, str], *backends: str) -> None:
    if driver[0] not in backends:
        pytest.skip(f"not applicable to {driver[0]}")


async def count(conn: AsyncConnection | AsyncSession) -> int:
    result = await conn.execute(select(func.count()).select_from(user))
    return int(result.scalar_one())


async def add_user(conn: AsyncConnection | AsyncSession, id_: int, name: str = "") -> None:
    await conn.execute(insert(user).values(id=id_, Name=name or f"user {id_}"))


async def run_in(sandbox: AsyncSandbox, body: Callable[[], Awaitable[object]]) -> None:
    async with sandbox:
        await body()


# ------------------------------------------------------------------ basics
@pytest.mark.asyncio
async def test_writes_are_visible_inside_and_rolled_back_after(
    app_engine: AsyncEngine, sync_url: URL
) -> None:
    original_pool = app_engine.sync_engine.pool
    async with AsyncSandbox(app_engine) as sb:
        async with app_engine.begin() as conn:  # application code, unchanged
            await add_user(conn, 1)
        async with AsyncSession(app_engine) as session:
            await add_user(session, 2)
            await session.commit()
        assert await count(sb.connection) == 2
        assert await count(sb.session()) == 2
    assert app_engine.sync_engine.pool is original_pool
    assert committed_users(sync_url) == 0


@pytest.mark.asyncio
async def test_a_test_that_raises_is_rolled_back_and_the_engine_restored(
    app_engine: AsyncEngine, sync_url: URL
) -> None:
    original_pool = app_engine.sync_engine.pool

    async def body() -> None:
        async with app_engine.begin() as conn:
            await add_user(conn, 1)
        raise LookupError("the test failed")

    with pytest.raises(LookupError):
        await run_in(AsyncSandbox(app_engine), body)
    assert app_engine.sync_engine.pool is original_pool
    assert original_pool.checkedout() == 0  # type: ignore[attr-defined]
    assert committed_users(sync_url) == 0


@pytest.mark.asyncio
async def test_integrity_error_then_more_queries(app_engine: AsyncEngine, sync_url: URL) -> None:
    async with AsyncSandbox(app_engine) as sb:
        async with app_engine.begin() as conn:
            await add_user(conn, 1, "ada")
        with pytest.raises(IntegrityError):
            await add_user(sb.connection, 2, "ada")
        assert await count(sb.connection) == 1
        session = sb.session()
        with pytest.raises(IntegrityError):
            await add_user(session, 3, "ada")
        await session.rollback()
        await add_user(session, 4, "grace")
        await session.commit()
        assert await count(sb.connection) == 2
    assert committed_users(sync_url) == 0


@pytest.mark.asyncio
async def test_gather_of_fifty_queries_on_one_sandbox(
    app_engine: AsyncEngine, sync_url: URL
) -> None:
    async def write(i: int) -> int:
        async with app_engine.begin() as conn:
            await add_user(conn, i)
            return await count(conn)

    async def read(session: AsyncSession) -> int:
        return await count(session)

    async with AsyncSandbox(app_engine) as sb:
        totals = await asyncio.gather(*(write(i) for i in range(50)))
        assert max(totals) == 50
        shared = sb.session()  # 50 queries on one session's connection at once
        assert await asyncio.gather(*(read(shared) for _ in range(50))) == [50] * 50
        on_test_connection = await asyncio.gather(*(count(sb.connection) for _ in range(50)))
        assert on_test_connection == [50] * 50
    assert committed_users(sync_url) == 0


@pytest.mark.asyncio
async def test_a_server_thread_with_its_own_event_loop_writes_through_the_apps_engine(
    app_engine: AsyncEngine, sync_url: URL
) -> None:
    async def handle(i: int) -> None:  # the application's request handler
        async with AsyncSession(app_engine) as session:
            await add_user(session, i)
            await session.commit()
            with pytest.raises(IntegrityError):
                await add_user(session, 100 + i, f"user {i}")
            await session.rollback()

    async def serve() -> None:  # a live server: its own thread, its own event loop
        await asyncio.gather(*(handle(i) for i in range(1, 21)))

    async with AsyncSandbox(app_engine) as sb:
        assert await count(sb.connection) == 0  # the test's connection is in a transaction
        await asyncio.to_thread(asyncio.run, serve())
        assert await count(sb.connection) == 20
    assert committed_users(sync_url) == 0


@pytest.mark.asyncio
async def test_several_tasks_with_their_own_sessions_and_errors(app_engine: AsyncEngine) -> None:
    make_session = async_sessionmaker(app_engine, expire_on_commit=False)

    async def task(i: int) -> None:
        async with make_session() as session:
            await add_user(session, i)
            await session.commit()
            with pytest.raises(IntegrityError):
                await add_user(session, 1000 + i, f"user {i}")
            await session.rollback()
            await asyncio.sleep(0)

    async with AsyncSandbox(app_engine) as sb:
        await asyncio.gather(*(task(i) for i in range(20)))
        assert await count(sb.connection) == 20


@pytest.mark.asyncio
async def test_begin_nested_three_deep_with_an_inner_rollback(app_engine: AsyncEngine) -> None:
    async with AsyncSandbox(app_engine) as sb:
        async with AsyncSession(app_engine) as session:
            await add_user(session, 1)
            async with session.begin_nested():
                await add_user(session, 2)
                async with session.begin_nested():
                    await add_user(session, 3)
                    inner = await session.begin_nested()
                    await add_user(session, 4)
                    await inner.rollback()
            await session.commit()
        ids = (await sb.connection.execute(select(user.c.id))).scalars()
        assert sorted(ids) == [1, 2, 3]


@pytest.mark.asyncio
async def test_apps_own_async_sessionmaker_is_sandboxed(
    app_engine: AsyncEngine, sync_url: URL
) -> None:
    app_sessions = async_sessionmaker(app_engine)  # made before the test

    async def create_order(user_id: int, order_id: int) -> None:  # application code
        async with app_sessions.begin() as session:
            await add_user(session, user_id)
            await session.execute(insert(order).values({"id": order_id, "user id": user_id}))

    async with AsyncSandbox(app_engine) as sb:
        await create_order(1, 10)
        await create_order(2, 20)
        result = await sb.connection.execute(select(func.count()).select_from(order))
        assert result.scalar_one() == 2
    assert committed_users(sync_url) == 0


# ------------------------------------------------------------------ the end
@pytest.mark.asyncio
async def test_cancellation_by_a_timeout_rolls_back_and_returns_the_connection(
    app_engine: AsyncEngine, sync_url: URL
) -> None:
    original_pool = app_engine.sync_engine.pool

    async def body() -> None:
        conn = await app_engine.connect()  # left open by the cancelled test
        await add_user(conn, 1)
        await asyncio.sleep(30)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(run_in(AsyncSandbox(app_engine), body), timeout=0.5)
    assert app_engine.sync_engine.pool is original_pool
    assert original_pool.checkedout() == 0  # type: ignore[attr-defined]
    assert committed_users(sync_url) == 0


@pytest.mark.asyncio
async def test_cancellation_during_a_query_still_rolls_back(
    driver: tuple[str, str], app_engine: AsyncEngine, sync_url: URL
) -> None:
    only(driver, "postgresql", "mysql")
    original_pool = app_engine.sync_engine.pool
    sleep = "SELECT pg_sleep(30)" if driver[0] == "postgresql" else "SELECT SLEEP(30)"

    async def body() -> None:
        async with app_engine.begin() as conn:
            await add_user(conn, 1)
        async with app_engine.connect() as conn:
            await conn.execute(text(sleep))

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(run_in(AsyncSandbox(app_engine), body), timeout=0.5)
    assert app_engine.sync_engine.pool is original_pool
    assert original_pool.checkedout() == 0  # type: ignore[attr-defined]
    assert committed_users(sync_url) == 0


@pytest.mark.asyncio
async def test_a_deferred_constraint_violation_fails_at_the_end(
    driver: tuple[str, str], app_engine: AsyncEngine
) -> None:
    only(driver, "postgresql")
    async with app_engine.begin() as conn:
        await conn.execute(
            text(
                'CREATE TABLE "child" (id int PRIMARY KEY, "user" int REFERENCES "user"(id)'
                " DEFERRABLE INITIALLY DEFERRED)"
            )
        )

    async def body() -> None:
        async with app_engine.begin() as conn:
            await conn.execute(text('INSERT INTO "child" VALUES (1, 99)'))

    with pytest.raises(SandboxError, match="deferred constraint"):
        await run_in(AsyncSandbox(app_engine), body)
    async with app_engine.connect() as conn:
        assert (await conn.execute(text('SELECT count(*) FROM "child"'))).scalar_one() == 0


@pytest.mark.asyncio
async def test_a_mysql_implicit_commit_raises_sandbox_broken(
    driver: tuple[str, str], app_engine: AsyncEngine
) -> None:
    only(driver, "mysql")

    async def body() -> None:
        async with app_engine.connect() as conn:
            await conn.execute(text("TRUNCATE TABLE `order`"))

    with pytest.raises(SandboxBrokenError, match="TRUNCATE TABLE `order`"):
        await run_in(AsyncSandbox(app_engine), body)
    assert app_engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_aiosqlite_savepoints_really_nest(driver: tuple[str, str]) -> None:
    only(driver, "sqlite")
    engine = create_async_engine(
        "sqlite+aiosqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )  # in-memory: one shared connection
    try:
        async with engine.begin() as conn:
            await conn.run_sync(create_schema)
        for _ in range(2):
            async with AsyncSandbox(engine) as sb:
                conn = sb.connection
                await add_user(conn, 1)
                outer = await conn.begin_nested()
                await add_user(conn, 2)
                inner = await conn.begin_nested()
                await add_user(conn, 3)
                await inner.rollback()
                await outer.commit()
                await conn.execute(text('CREATE TABLE "made here" (id int)'))
                assert sorted((await conn.execute(select(user.c.id))).scalars()) == [1, 2]
        async with engine.connect() as conn:
            assert await count(conn) == 0
            names = (await conn.execute(text("SELECT name FROM sqlite_master"))).scalars()
            assert "made here" not in set(names)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_an_escaped_write_is_caught_and_rewound_by_the_safety_net(
    driver: tuple[str, str], sync_url: URL, app_engine: AsyncEngine
) -> None:
    rewinder = Rewinder(sync_url)
    await rewinder.aprepare()
    other = create_async_engine(app_engine.url, poolclass=NullPool)
    seen: list[RewindResult] = []
    try:
        sb = AsyncSandbox(app_engine, rewinder=rewinder, on_leak=seen.append)
        async with sb:
            async with other.begin() as conn:
                await add_user(conn, 2)  # escaped: another engine commits for real
            await add_user(sb.connection, 1)
        assert sb.leaked is not None
        assert seen == [sb.leaked]
        assert committed_users(sync_url) == 0

        clean = AsyncSandbox(app_engine, rewinder=rewinder, on_leak=seen.append)
        async with clean:
            await add_user(clean.connection, 1)
        assert clean.leaked is None
        assert len(seen) == 1
    finally:
        await other.dispose()
        rewinder.close()
