"""The HTTP API through an ASGI client, in the async rollback sandbox (``async_db_session``).

The app's session factory is named in ``dbrewind_engines``: every session a request
(or its background task) opens runs in the test's sandbox, so what the test made is
there for the request, and what the request commits is rolled back after the test.
"""

from __future__ import annotations

from httpx2 import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from shop.models import Order, Organisation, Product
from tests.factories import ProductFactory, UserFactory


async def test_health(client: AsyncClient) -> None:
    r = await client.get("/health")
    assert r.json() == {"status": "ok"}


async def test_the_currencies_are_the_reference_data(
    client: AsyncClient, async_db_session: AsyncSession
) -> None:
    r = await client.get("/currencies")
    assert [c["code"] for c in r.json()] == ["CHF", "EUR", "GBP", "JPY", "SEK", "USD"]


async def test_creating_an_organisation(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    r = await client.post("/organisations", json={"name": "Lumen", "country_code": "NL"})
    assert r.status_code == 201
    await db_assert.assert_database_has(Organisation, {"id": r.json()["id"], "name": "Lumen"})


async def test_an_organisation_in_an_unknown_country_is_refused(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    r = await client.post("/organisations", json={"name": "Atlantis", "country_code": "AT"})
    assert r.status_code == 404
    await db_assert.assert_database_count(Organisation, 0)


async def test_a_malformed_request_is_refused(client: AsyncClient) -> None:
    r = await client.post("/organisations", json={"name": "No country"})
    assert r.status_code == 422


async def test_adding_a_product(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    user = await UserFactory.create()
    body = {"sku": "CHAIR", "name": "Chair", "category": "garden", "price_cents": 7900}
    r = await client.post(f"/organisations/{user.organisation_id}/products", json=body)
    assert r.status_code == 201
    assert r.json()["currency"] == "EUR"
    await db_assert.assert_database_has(Product, {"sku": "CHAIR", "category_slug": "garden"})


async def test_a_duplicate_sku_is_a_conflict(
    client: AsyncClient, async_db_session: AsyncSession
) -> None:
    product = await ProductFactory.create(sku="DESK")
    body = {"sku": "DESK", "name": "Desk", "category": "garden", "price_cents": 1}
    r = await client.post(f"/organisations/{product.organisation_id}/products", json=body)
    assert r.status_code == 409
    r = await client.get(f"/organisations/{product.organisation_id}/products")
    assert [p["sku"] for p in r.json()] == ["DESK"]


async def test_the_catalogue_lists_active_products_only(
    client: AsyncClient, async_db_session: AsyncSession
) -> None:
    user = await UserFactory.create()
    kept, retired = await ProductFactory.for_(user.organisation).create_many(2)
    r = await client.delete(f"/products/{retired.id}")
    assert r.status_code == 204
    r = await client.get(f"/organisations/{user.organisation_id}/products")
    assert [p["id"] for p in r.json()] == [kept.id]


async def test_deleting_a_product_soft_deletes_it(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    product = await ProductFactory.create()
    await client.delete(f"/products/{product.id}")
    await db_assert.assert_soft_deleted(product)


async def test_placing_an_order(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    user = await UserFactory.create()
    lamp = await ProductFactory.for_(user.organisation).create(price_cents=2500, stock=3)
    body = {"user_id": user.id, "lines": [{"product_id": lamp.id, "quantity": 2}]}
    r = await client.post("/orders", json=body)
    assert r.status_code == 201
    assert r.json()["total_cents"] == 5000
    assert r.json()["number"] == f"ORD-{r.json()['id']:06d}"
    await db_assert.assert_database_has(Product, {"id": lamp.id, "stock": 1})


async def test_an_order_beyond_the_stock_is_a_conflict(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    user = await UserFactory.create()
    lamp = await ProductFactory.for_(user.organisation).state("sold_out").create()
    body = {"user_id": user.id, "lines": [{"product_id": lamp.id, "quantity": 1}]}
    r = await client.post("/orders", json=body)
    assert r.status_code == 409
    assert "0 in stock" in r.json()["detail"]
    await db_assert.assert_database_count(Order, 0)


async def test_an_unknown_order_is_not_found(
    client: AsyncClient, async_db_session: AsyncSession
) -> None:
    r = await client.get("/orders/999999")
    assert r.status_code == 404


async def test_cancelling_an_order(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    user = await UserFactory.create()
    lamp = await ProductFactory.for_(user.organisation).create(stock=1)
    body = {"user_id": user.id, "lines": [{"product_id": lamp.id, "quantity": 1}]}
    order = (await client.post("/orders", json=body)).json()
    r = await client.post(f"/orders/{order['id']}/cancel")
    assert r.json()["status"] == "cancelled"
    await db_assert.assert_database_has(Product, {"id": lamp.id, "stock": 1})
    r = await client.post(f"/orders/{order['id']}/cancel")
    assert r.status_code == 409


async def test_revenue_through_the_api(client: AsyncClient, async_db_session: AsyncSession) -> None:
    user = await UserFactory.create()
    lamp = await ProductFactory.for_(user.organisation).create(price_cents=300)
    body = {"user_id": user.id, "lines": [{"product_id": lamp.id, "quantity": 3}]}
    await client.post("/orders", json=body)
    r = await client.get(f"/organisations/{user.organisation_id}/revenue")
    assert r.json() == {"total_cents": 900}
