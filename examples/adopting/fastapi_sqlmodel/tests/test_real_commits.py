import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text


@pytest.mark.dbrewind(transactional=True)
def test_another_connection_sees_what_the_api_committed(
    client: TestClient, superuser_token_headers: dict[str, str], db_url: str
) -> None:
    # A reader outside the test (a report job, another process) sees only committed rows,
    # so this test needs real commits: dbrewind rewinds the tables it wrote afterwards.
    client.post("/items/", headers=superuser_token_headers, json={"title": "Committed"})
    reader = create_engine(db_url)
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT title FROM item")).scalars().all() == ["Committed"]
    finally:
        reader.dispose()
