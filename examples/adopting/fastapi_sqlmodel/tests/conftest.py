from collections.abc import Iterator

import pytest
from dbrewind.setup import alembic_setup, chain
from fastapi.testclient import TestClient
from sqlmodel import Session

from app import crud
from app.core.config import settings
from app.core.db import init_db
from app.main import app

NORMAL_USER = "user@example.com"
NORMAL_PASSWORD = "user-password"


@pytest.fixture(scope="session")
def dbrewind_setup():
    def first_superuser(conn):
        with Session(bind=conn) as session:
            init_db(session)

    return chain(alembic_setup("alembic.ini"), first_superuser)


@pytest.fixture
def db(dbrewind_db_session: Session) -> Session:
    return dbrewind_db_session


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
def normal_user_token_headers(client: TestClient, module_db_session: Session) -> dict[str, str]:
    crud.create_user(module_db_session, email=NORMAL_USER, password=NORMAL_PASSWORD)
    return login(client, NORMAL_USER, NORMAL_PASSWORD)
