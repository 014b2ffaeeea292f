"""A module's data: one organisation's catalogue, made once for every test here.

``module_db_session`` commits what the fixture wrote when it is set up and keeps it
as a baseline layer: each test of the module starts from it, whatever an earlier one
did (a sandboxed change, a real DELETE), and it is rewound when the module ends.
"""

from __future__ import annotations

import pytest
from httpx2 import AsyncClient
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from shop import services
from shop.models import Organisation, Product, User
from tests.factories import OrganisationFactory, ProductFactory, UserFactory

SIZE = 12


@pytest.fixture(scope="module")
def catalogue(module_db_session: Session) -> Organisation:
    organisation = OrganisationFactory.create(name="Northwind", session=module_db_session)
    ProductFactory.for_(organisation).create_many(SIZE, stock=5, session=module_db_session)
    UserFactory.for_(organisation).create(email="buyer@northwind.test", session=module_db_session)
    return organisation


def test_the_module_sees_the_whole_catalogue(db_session: Session, catalogue: Organisation) -> None:
    assert len(services.active_products(db_session, catalogue.id)) == SIZE


def test_retiring_a_product_lasts_for_this_test_only(
    db_session: Session, db_assert, catalogue: Organisation
) -> None:
    first = services.active_products(db_session, catalogue.id)[0]
    services.retire_product(db_session, first.id)
    assert len(services.active_products(db_session, catalogue.id)) == SIZE - 1
    db_assert.assert_soft_deleted(first)


def test_an_order_from_the_catalogue(
    db_session: Session, db_assert, catalogue: Organisation
) -> None:
    buyer = db_session.query(User).filter_by(email="buyer@northwind.test").one()
    products = services.active_products(db_session, catalogue.id)
    order = services.place_order(db_session, buyer.id, [(p.id, 5) for p in products[:3]])
    assert order.total_cents == 3 * 5 * 1000
    db_assert.assert_database_count(Product, 3, {"stock": 0})


def test_a_new_product_does_not_clash_with_the_modules(
    db_session: Session, catalogue: Organisation
) -> None:
    # the factories' counters go on from where the module's fixture left them
    product = ProductFactory.for_(db_session.get(Organisation, catalogue.id)).create()
    assert product.sku == f"SKU-{SIZE + 1:04d}"


async def test_the_api_lists_the_module_catalogue(
    client: AsyncClient, async_db_session, catalogue: Organisation
) -> None:
    r = await client.get(f"/organisations/{catalogue.id}/products")
    assert len(r.json()) == SIZE


def test_a_real_delete_of_module_data_is_undone_for_the_next_test(
    transactional_db: Connection, catalogue: Organisation
) -> None:
    """``transactional_db``: the DELETE is committed for real (another connection sees it);
    the module's layer brings the rows back before the next test, in any order."""
    transactional_db.execute(text("DELETE FROM products WHERE sku = 'SKU-0001'"))
    transactional_db.commit()
    left = transactional_db.execute(text("SELECT COUNT(*) FROM products")).scalar()
    assert left == SIZE - 1
