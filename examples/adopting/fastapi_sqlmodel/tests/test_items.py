from fastapi.testclient import TestClient


def test_a_user_creates_and_lists_items(
    client: TestClient, normal_user_token_headers: dict[str, str]
) -> None:
    r = client.post("/items/", headers=normal_user_token_headers, json={"title": "Chair"})
    assert r.status_code == 201
    titles = [i["title"] for i in client.get("/items/", headers=normal_user_token_headers).json()]
    assert titles == ["Chair"]


def test_users_see_only_their_own_items(
    client: TestClient,
    normal_user_token_headers: dict[str, str],
    superuser_token_headers: dict[str, str],
) -> None:
    client.post("/items/", headers=superuser_token_headers, json={"title": "Admin's desk"})
    client.post("/items/", headers=normal_user_token_headers, json={"title": "User's mug"})
    mine = client.get("/items/", headers=normal_user_token_headers).json()
    everything = client.get("/items/", headers=superuser_token_headers).json()
    assert [i["title"] for i in mine] == ["User's mug"]
    assert sorted(i["title"] for i in everything) == ["Admin's desk", "User's mug"]


def test_deleting_an_item(client: TestClient, normal_user_token_headers: dict[str, str]) -> None:
    made = client.post("/items/", headers=normal_user_token_headers, json={"title": "Old"}).json()
    r = client.delete(f"/items/{made['id']}", headers=normal_user_token_headers)
    assert r.status_code == 204
    assert client.get("/items/", headers=normal_user_token_headers).json() == []


def test_every_test_starts_with_no_items(
    client: TestClient, superuser_token_headers: dict[str, str]
) -> None:
    assert client.get("/items/", headers=superuser_token_headers).json() == []
