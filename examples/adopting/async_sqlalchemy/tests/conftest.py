from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from dbrewind.setup import alembic_setup
from httpx2 import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.main import app
from app.models import User

DEFAULT_EMAIL = "geralt@wiedzmin.pl"
DEFAULT_PASSWORD = "geralt-password"


@pytest.fixture(scope="session")
def dbrewind_setup():
    return alembic_setup("alembic.ini")


@pytest.fixture
def session(dbrewind_async_db_session: AsyncSession) -> AsyncSession:
    return dbrewind_async_db_session


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest_asyncio.fixture(scope="module")
async def default_user(module_async_db_session: AsyncSession) -> User:
    return await crud.create_user(module_async_db_session, DEFAULT_EMAIL, DEFAULT_PASSWORD)


@pytest_asyncio.fixture(scope="module")
async def default_user_headers(client: AsyncClient, default_user: User) -> dict[str, str]:
    r = await client.post(
        "/auth/access-token", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
