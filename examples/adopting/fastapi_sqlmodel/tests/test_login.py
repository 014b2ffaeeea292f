from fastapi.testclient import TestClient

from app.core.config import settings


def test_the_first_superuser_logs_in(client: TestClient) -> None:
    r = client.post(
        "/login/access-token",
        json={"username": settings.FIRST_SUPERUSER, "password": settings.FIRST_SUPERUSER_PASSWORD},
    )
    assert r.status_code == 200
    assert r.json()["token_type"] == "bearer"


def test_a_wrong_password_is_refused(client: TestClient) -> None:
    r = client.post(
        "/login/access-token", json={"username": settings.FIRST_SUPERUSER, "password": "nope"}
    )
    assert r.status_code == 400


def test_me(client: TestClient, superuser_token_headers: dict[str, str]) -> None:
    r = client.get("/users/me", headers=superuser_token_headers)
    assert r.status_code == 200
    assert r.json()["email"] == settings.FIRST_SUPERUSER
    assert r.json()["is_superuser"] is True


def test_no_token_no_entry(client: TestClient) -> None:
    assert client.get("/users/me").status_code == 401
