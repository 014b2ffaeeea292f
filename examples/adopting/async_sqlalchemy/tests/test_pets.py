from httpx2 import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.models import Pet


async def test_create_and_list_pets(
    client: AsyncClient, default_user_headers: dict[str, str]
) -> None:
    r = await client.post("/pets", headers=default_user_headers, json={"name": "Roach"})
    assert r.status_code == 201
    listed = await client.get("/pets", headers=default_user_headers)
    assert [p["name"] for p in listed.json()] == ["Roach"]


async def test_the_pets_of_others_are_not_listed(
    client: AsyncClient, default_user_headers: dict[str, str], session: AsyncSession
) -> None:
    other = await crud.create_user(session, "dandelion@example.com", "lute-password")
    await crud.add_pet(session, other, "Pegasus")
    await client.post("/pets", headers=default_user_headers, json={"name": "Roach"})
    listed = await client.get("/pets", headers=default_user_headers)
    assert [p["name"] for p in listed.json()] == ["Roach"]


async def test_deleting_me_deletes_my_pets(client: AsyncClient, session: AsyncSession) -> None:
    body = {"email": "vesemir@example.com", "password": "kaer-morhen"}
    await client.post("/auth/register", json=body)
    token = (await client.post("/auth/access-token", json=body)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    await client.post("/pets", headers=headers, json={"name": "Horse"})
    assert (await client.delete("/users/me", headers=headers)).status_code == 204
    assert await crud.user_by_email(session, body["email"]) is None
    assert await session.scalar(select(func.count()).select_from(Pet)) == 0


async def test_every_test_starts_with_no_pets(session: AsyncSession) -> None:
    assert await session.scalar(select(func.count()).select_from(Pet)) == 0
