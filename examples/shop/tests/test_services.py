"""The business rules, each of which commits: in the rollback sandbox (``db_session``),
where a commit is a savepoint's release and the test ends with a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from shop import services
from shop.models import Notification, Order, OrderStatus, Organisation, Product, Role, User
from tests.factories import OrganisationFactory, ProductFactory, UserFactory


@pytest.fixture
def member(db_session: Session) -> User:
    return UserFactory.create()


@pytest.fixture
def mug(db_session: Session, member: User) -> Product:
    mug = ProductFactory.for_(member.organisation).create(sku="MUG", price_cents=850, stock=4)
    db_session.commit()  # as the shop would have: a failed order rolls back to here
    return mug


def test_registering_an_organisation_commits_it(db_session: Session, db_assert) -> None:
    organisation = services.register_organisation(db_session, "Fjord Goods", "SE")
    db_assert.assert_database_has("organisations", {"name": "Fjord Goods", "country_code": "SE"})
    db_assert.assert_not_soft_deleted(organisation)


def test_an_organisation_needs_a_known_country(db_session: Session, db_assert) -> None:
    with pytest.raises(services.NotFound, match="no country 'XX'"):
        services.register_organisation(db_session, "Nowhere Ltd", "XX")
    db_assert.assert_database_count(Organisation, 0)


def test_a_members_email_is_kept_in_lower_case(db_session: Session, db_assert) -> None:
    organisation = OrganisationFactory.create()
    services.add_member(db_session, organisation.id, "Ada@Example.TEST", "Ada", Role.ADMIN)
    db_assert.assert_database_has("users", {"email": "ada@example.test", "role": "admin"})


def test_a_product_is_priced_in_its_organisations_currency(db_session: Session) -> None:
    organisation = OrganisationFactory.state("british").create()
    product = services.add_product(
        db_session, organisation.id, sku="TEA", name="Tea", category="kitchen", price_cents=450
    )
    assert product.currency_code == "GBP"


def test_a_product_needs_a_known_category(db_session: Session, db_assert) -> None:
    organisation = OrganisationFactory.create()
    with pytest.raises(services.NotFound, match="no category 'toys'"):
        services.add_product(
            db_session, organisation.id, sku="T", name="Top", category="toys", price_cents=1
        )
    db_assert.assert_database_count(Product, 0)


def test_a_price_must_be_positive(db_session: Session) -> None:
    organisation = OrganisationFactory.create()
    with pytest.raises(services.ShopError, match="positive"):
        services.add_product(
            db_session, organisation.id, sku="F", name="Free", category="books", price_cents=0
        )


def test_an_order_takes_its_items_from_stock(
    db_session: Session, db_assert, member: User, mug: Product
) -> None:
    order = services.place_order(db_session, member.id, [(mug.id, 3)])
    assert order.total_cents == 3 * 850
    assert order.status is OrderStatus.PLACED
    db_assert.assert_database_has("products", {"sku": "MUG", "stock": 1})
    db_assert.assert_database_has("order_lines", {"order_id": order.id, "quantity": 3})


def test_lines_of_one_product_are_merged(db_session: Session, member: User, mug: Product) -> None:
    order = services.place_order(db_session, member.id, [(mug.id, 1), (mug.id, 2)])
    assert [(line.product_id, line.quantity) for line in order.lines] == [(mug.id, 3)]


def test_an_order_for_more_than_the_stock_changes_nothing(
    db_session: Session, db_assert, member: User, mug: Product
) -> None:
    teapot = ProductFactory.for_(member.organisation).create(sku="POT", stock=5)
    db_session.commit()
    with pytest.raises(services.OutOfStock, match="MUG: 5 wanted, 4 in stock"):
        services.place_order(db_session, member.id, [(teapot.id, 1), (mug.id, 5)])
    db_assert.assert_database_has(
        "products", [{"sku": "MUG", "stock": 4}, {"sku": "POT", "stock": 5}]
    )
    db_assert.assert_database_count(Order, 0)


def test_an_order_needs_a_line(db_session: Session, member: User) -> None:
    with pytest.raises(services.ShopError, match="at least one line"):
        services.place_order(db_session, member.id, [])


def test_a_retired_product_cannot_be_ordered(
    db_session: Session, member: User, mug: Product
) -> None:
    services.retire_product(db_session, mug.id)
    with pytest.raises(services.NotFound, match=f"no active product {mug.id}"):
        services.place_order(db_session, member.id, [(mug.id, 1)])


def test_another_organisations_product_cannot_be_ordered(db_session: Session, member: User) -> None:
    elsewhere = ProductFactory.create()
    with pytest.raises(services.NotFound):
        services.place_order(db_session, member.id, [(elsewhere.id, 1)])


def test_a_removed_member_cannot_order(
    db_session: Session, db_assert, member: User, mug: Product
) -> None:
    services.remove_member(db_session, member.id)
    db_assert.assert_soft_deleted(member)
    with pytest.raises(services.NotFound, match="no active user"):
        services.place_order(db_session, member.id, [(mug.id, 1)])


def test_cancelling_an_order_puts_its_items_back(
    db_session: Session, db_assert, member: User, mug: Product
) -> None:
    order = services.place_order(db_session, member.id, [(mug.id, 4)])
    db_assert.assert_database_has("products", {"sku": "MUG", "stock": 0})
    services.cancel_order(db_session, order.id)
    db_assert.assert_database_has("products", {"sku": "MUG", "stock": 4})
    db_assert.assert_database_has("orders", {"id": order.id, "status": "cancelled"})


def test_an_order_is_cancelled_once(db_session: Session, member: User, mug: Product) -> None:
    order = services.place_order(db_session, member.id, [(mug.id, 1)])
    services.cancel_order(db_session, order.id)
    with pytest.raises(services.ShopError, match="is cancelled"):
        services.cancel_order(db_session, order.id)


def test_a_retired_product_is_soft_deleted_and_no_longer_listed(
    db_session: Session, db_assert, member: User, mug: Product
) -> None:
    services.retire_product(db_session, mug.id)
    db_assert.assert_soft_deleted(mug)
    db_assert.assert_model_exists(mug)  # still there, for the orders that have it
    assert services.active_products(db_session, member.organisation_id) == []


def test_closing_an_organisation_soft_deletes_its_members_and_products(
    db_session: Session, db_assert, member: User, mug: Product
) -> None:
    order = services.place_order(db_session, member.id, [(mug.id, 1)])
    services.close_organisation(db_session, member.organisation_id)
    db_session.expire_all()
    for row in (member.organisation, member, mug):
        db_assert.assert_soft_deleted(row)
    db_assert.assert_model_exists(order)


def test_revenue_leaves_out_cancelled_orders(
    db_session: Session, member: User, mug: Product
) -> None:
    services.place_order(db_session, member.id, [(mug.id, 1)])
    cancelled = services.place_order(db_session, member.id, [(mug.id, 2)])
    services.cancel_order(db_session, cancelled.id)
    assert services.revenue(db_session, member.organisation_id) == 850


def test_an_order_is_confirmed_once(
    db_session: Session, db_assert, member: User, mug: Product
) -> None:
    order = services.place_order(db_session, member.id, [(mug.id, 1)])
    sent = services.send_order_confirmation(db_session, order.id)
    assert sent is not None
    assert sent.recipient == member.email
    assert services.send_order_confirmation(db_session, order.id) is None
    db_assert.assert_database_count(Notification, 1)


def test_restocking_adds_to_the_stock(db_session: Session, db_assert, mug: Product) -> None:
    services.restock(db_session, mug.id, 6)
    db_assert.assert_database_has("products", {"id": mug.id, "stock": 10})
