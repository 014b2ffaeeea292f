import pytest
from httpx2 import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.mark.dbrewind(transactional=True)
async def test_another_connection_sees_what_the_api_committed(
    client: AsyncClient, db_url: str
) -> None:
    # A reader outside the test (a worker process, a report job) sees only committed rows,
    # so this test needs real commits: dbrewind rewinds the tables it wrote afterwards.
    r = await client.post("/auth/register", json={"email": "real@example.com", "password": "x"})
    assert r.status_code == 201
    reader = create_async_engine(db_url)
    try:
        async with reader.connect() as conn:
            emails = (await conn.execute(text("SELECT email FROM user_account"))).scalars().all()
    finally:
        await reader.dispose()
    assert emails == ["real@example.com"]
