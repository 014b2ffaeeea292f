# The suite's conftest before it used dbrewind (kept for the README's diff; never loaded).
# Tests see each other's commits, so their outcome depends on their order, and two runs
# at once (or pytest-xdist) share one database.
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, delete

from app import crud
from app.core.config import settings
from app.core.db import engine, init_db
from app.main import app
from app.models import Item, User

NORMAL_USER = "user@example.com"
NORMAL_PASSWORD = "user-password"


@pytest.fixture(scope="session", autouse=True)
def db() -> Iterator[Session]:
    with Session(engine) as session:
        init_db(session)
        yield session
        session.execute(delete(Item))
        session.execute(delete(User))
        session.commit()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def login(client: TestClient, email: str, password: str) -> dict[str, str]:
    r = client.post("/login/access-token", json={"username": email, "password": password})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def superuser_token_headers(client: TestClient) -> dict[str, str]:
    return login(client, settings.FIRST_SUPERUSER, settings.FIRST_SUPERUSER_PASSWORD)


@pytest.fixture(scope="module")
def normal_user_token_headers(client: TestClient, db: Session) -> dict[str, str]:
    if crud.get_user_by_email(db, NORMAL_USER) is None:
        crud.create_user(db, email=NORMAL_USER, password=NORMAL_PASSWORD)
    return login(client, NORMAL_USER, NORMAL_PASSWORD)
