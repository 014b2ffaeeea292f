# The suite's conftest before it used dbrewind (kept for the README's diff; never loaded).
# The session fixture's savepoints cover only what goes through the overridden dependency;
# every test hashes a password and logs in again; the setup drops and migrates whatever
# database the settings name.
import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from alembic.config import Config
from httpx2 import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from alembic import command
from app import crud
from app.core.database_session import async_engine, get_async_session
from app.main import app
from app.models import Base, User

DEFAULT_EMAIL = "geralt@wiedzmin.pl"
DEFAULT_PASSWORD = "geralt-password"


@pytest_asyncio.fixture(scope="session", autouse=True)
async def fixture_setup_new_test_database() -> None:
    async with async_engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    await asyncio.to_thread(command.upgrade, Config("alembic.ini"), "head")


@pytest_asyncio.fixture
async def session() -> AsyncIterator[AsyncSession]:
    async with async_engine.connect() as conn:
        await conn.begin()
        session = AsyncSession(
            bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        app.dependency_overrides[get_async_session] = lambda: session
        yield session
        await session.close()
        await conn.rollback()
    app.dependency_overrides.clear()


@pytest_asyncio.fixture
async def client(session: AsyncSession) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest_asyncio.fixture
async def default_user(session: AsyncSession) -> User:
    return await crud.create_user(session, DEFAULT_EMAIL, DEFAULT_PASSWORD)


@pytest_asyncio.fixture
async def default_user_headers(client: AsyncClient, default_user: User) -> dict[str, str]:
    r = await client.post(
        "/auth/access-token", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
