"""Ordering books: the application commits, the rollback sandbox keeps every test isolated."""

from __future__ import annotations

from decimal import Decimal

import pytest
from bookshop.models import Book, Country, Order
from bookshop.services import OutOfStock, place_order, restock
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dbrewind.testing import SyncDatabaseTestCase

from .factories import BookFactory, CustomerFactory


def test_placing_an_order_takes_the_stock_and_charges_vat(
    db_session: Session, db_assert: SyncDatabaseTestCase
) -> None:
    book = BookFactory.create(session=db_session, price=Decimal("20.00"))
    customer = CustomerFactory.create(session=db_session)  # Germany: 7% VAT

    order = place_order(db_session, customer.id, {book.id: 2})  # commits

    assert order.total == Decimal("42.80")
    db_assert.assert_database_has("book", {"id": book.id, "stock": 3})
    db_assert.assert_database_count("order_line", 1)


def test_an_order_beyond_the_stock_is_refused_and_nothing_is_kept(
    db_session: Session, db_assert: SyncDatabaseTestCase
) -> None:
    book = BookFactory.state("sold_out").create(session=db_session)
    customer = CustomerFactory.state("french").create(session=db_session)
    db_session.commit()

    with pytest.raises(OutOfStock):
        place_order(db_session, customer.id, {book.id: 1})

    db_assert.assert_database_empty("order")


def test_every_test_starts_with_no_orders_and_the_seeded_countries(db_session: Session) -> None:
    assert db_session.scalar(select(func.count()).select_from(Order)) == 0
    assert db_session.scalar(select(func.count()).select_from(Book)) == 0
    codes = db_session.scalars(select(Country.code).order_by(Country.code)).all()
    assert codes == ["DE", "FR", "GB"]


def test_reference_rows_a_test_changes_come_back(db_session: Session) -> None:
    db_session.delete(db_session.get_one(Country, "GB"))
    db_session.get_one(Country, "DE").vat_percent = 19
    db_session.commit()
    assert db_session.get(Country, "GB") is None


def test_reference_rows_are_as_seeded(db_session: Session) -> None:
    assert db_session.get_one(Country, "DE").vat_percent == 7
    assert db_session.get(Country, "GB") is not None


def test_nested_transactions_in_application_code_work(db_session: Session) -> None:
    book = BookFactory.create(session=db_session, stock=1)
    db_session.commit()

    assert restock(db_session, book.isbn, 4) == 5
    savepoint = db_session.begin_nested()
    book.stock = 100
    db_session.flush()
    savepoint.rollback()
    db_session.refresh(book)
    assert book.stock == 5
