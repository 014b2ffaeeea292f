from fastapi.testclient import TestClient
from sqlmodel import Session

from app import crud


def test_the_superuser_creates_a_user(
    client: TestClient, superuser_token_headers: dict[str, str], db: Session
) -> None:
    r = client.post(
        "/users/",
        headers=superuser_token_headers,
        json={"email": "new@example.com", "password": "new-password"},
    )
    assert r.status_code == 201
    user = crud.get_user_by_email(db, "new@example.com")  # the API's commit, seen by the test
    assert user is not None
    assert user.id == r.json()["id"]


def test_the_same_email_twice_is_a_conflict(
    client: TestClient, superuser_token_headers: dict[str, str]
) -> None:
    body = {"email": "twice@example.com", "password": "twice-password"}
    assert client.post("/users/", headers=superuser_token_headers, json=body).status_code == 201
    assert client.post("/users/", headers=superuser_token_headers, json=body).status_code == 409


def test_a_normal_user_may_not_create_users(
    client: TestClient, normal_user_token_headers: dict[str, str]
) -> None:
    r = client.post(
        "/users/",
        headers=normal_user_token_headers,
        json={"email": "other@example.com", "password": "other-password"},
    )
    assert r.status_code == 403


def test_a_user_the_test_makes_logs_in_through_the_api(client: TestClient, db: Session) -> None:
    crud.create_user(db, email="direct@example.com", password="direct-password")
    r = client.post(
        "/login/access-token",
        json={"username": "direct@example.com", "password": "direct-password"},
    )
    assert r.status_code == 200
