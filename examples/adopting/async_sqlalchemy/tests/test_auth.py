from httpx2 import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.models import AccessToken, User
from tests.conftest import DEFAULT_EMAIL, DEFAULT_PASSWORD


async def test_register_creates_a_user(client: AsyncClient, session: AsyncSession) -> None:
    r = await client.post("/auth/register", json={"email": "yen@example.com", "password": "pw"})
    assert r.status_code == 201
    user = await crud.user_by_email(session, "yen@example.com")  # the API's commit
    assert user is not None
    assert user.user_id == r.json()["user_id"]
    assert user.hashed_password != "pw"


async def test_registering_twice_is_refused(client: AsyncClient) -> None:
    body = {"email": "ciri@example.com", "password": "ciri-password"}
    assert (await client.post("/auth/register", json=body)).status_code == 201
    assert (await client.post("/auth/register", json=body)).status_code == 400


async def test_a_login_stores_a_token(
    client: AsyncClient, session: AsyncSession, default_user: User
) -> None:
    before = await session.scalar(select(func.count()).select_from(AccessToken))
    r = await client.post(
        "/auth/access-token", json={"email": DEFAULT_EMAIL, "password": DEFAULT_PASSWORD}
    )
    assert r.status_code == 200
    query = select(AccessToken).where(AccessToken.token == r.json()["access_token"])
    assert (await session.scalar(query)).user_id == default_user.user_id
    assert await session.scalar(select(func.count()).select_from(AccessToken)) == before + 1


async def test_a_wrong_password_is_refused(client: AsyncClient, default_user: User) -> None:
    r = await client.post("/auth/access-token", json={"email": DEFAULT_EMAIL, "password": "no"})
    assert r.status_code == 400


async def test_me(client: AsyncClient, default_user_headers: dict[str, str]) -> None:
    r = await client.get("/users/me", headers=default_user_headers)
    assert r.status_code == 200
    assert r.json()["email"] == DEFAULT_EMAIL


async def test_an_unknown_token_is_refused(client: AsyncClient) -> None:
    r = await client.get("/users/me", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


async def test_only_the_modules_user_is_there(session: AsyncSession, default_user: User) -> None:
    assert list(await session.scalars(select(User.email))) == [DEFAULT_EMAIL]
