"""The models and the factories, in the rollback sandbox (``db_session``)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shop.models import Order, OrderLine, Organisation, Product, Role, User
from tests.factories import (
    OrderFactory,
    OrderLineFactory,
    OrganisationFactory,
    ProductFactory,
    UserFactory,
)


def test_a_factory_makes_a_model_without_saving_it(db_session: Session, db_assert) -> None:
    user = UserFactory.make()
    assert user.id is None
    assert user.email == "user1@shop.test"
    db_assert.assert_database_count(User, 0)


def test_a_created_user_is_saved_with_its_organisation(db_session: Session, db_assert) -> None:
    user = UserFactory.create()
    db_assert.assert_model_exists(user)
    db_assert.assert_database_has(Organisation, {"id": user.organisation_id})
    assert user.role is Role.MEMBER


def test_a_state_and_overrides_choose_attributes(db_session: Session, db_assert) -> None:
    admin = UserFactory.state("admin").create(name="Grace Hopper")
    db_assert.assert_database_has("users", {"email": "gracehopper@shop.test", "role": "admin"})
    assert admin.role is Role.ADMIN


def test_create_many_for_one_parent_shares_it(db_session: Session, db_assert) -> None:
    organisation = OrganisationFactory.create()
    products = ProductFactory.for_(organisation).create_many(5)
    assert {p.organisation_id for p in products} == {organisation.id}
    db_assert.assert_database_count(Product, 5)
    db_assert.assert_database_count(Organisation, 1)


def test_has_makes_an_order_with_its_lines(db_session: Session, db_assert) -> None:
    order = OrderFactory.has(OrderLineFactory, 3).create()
    assert len(order.lines) == 3
    db_assert.assert_database_count(OrderLine, 3)
    assert order.organisation is order.user.organisation


def test_after_creating_runs_once_everything_is_saved(db_session: Session) -> None:
    seen: list[int] = []
    ProductFactory.after_creating(lambda product, session: seen.append(product.id)).create_many(2)
    assert len(seen) == 2
    assert all(isinstance(key, int) for key in seen)


def test_an_email_is_unique_and_the_test_goes_on_after_the_error(
    db_session: Session, db_assert
) -> None:
    """``db_session`` suffices: a database error rolls back to the innermost savepoint
    (here the flush's), not the whole test, so the test can go on and assert on it."""
    first = UserFactory.create(email="same@shop.test")
    db_session.commit()  # a savepoint's release
    with pytest.raises(IntegrityError):
        UserFactory.create(email="same@shop.test", organisation=first.organisation)
    db_session.rollback()
    db_assert.assert_database_has("users", {"email": "same@shop.test"})
    UserFactory.create(email="other@shop.test", organisation=first.organisation)
    db_assert.assert_database_count(User, 2)


def test_a_sku_is_unique_within_an_organisation_only(db_session: Session, db_assert) -> None:
    ProductFactory.create(sku="MUG")
    ProductFactory.create(sku="MUG")  # another organisation's
    db_assert.assert_database_count(Product, 2)
    organisation = OrganisationFactory.create()
    ProductFactory.create(sku="CUP", organisation=organisation)
    with pytest.raises(IntegrityError):
        ProductFactory.create(sku="CUP", organisation=organisation)


def test_an_order_number_is_its_id_padded(db_session: Session) -> None:
    order = OrderFactory.create()
    assert order.number == f"ORD-{order.id:06d}"
    assert isinstance(db_session.get(Order, order.id), Order)
