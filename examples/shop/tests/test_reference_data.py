"""The reference data the migrations load: part of every test's baseline."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shop.models import Category, Country, Currency


def test_the_migrations_load_six_currencies(db_session: Session, db_assert) -> None:
    db_assert.assert_database_count(Currency, 6)
    db_assert.assert_database_has("currencies", {"code": "EUR", "name": "Euro", "exponent": 2})


def test_the_yen_has_no_minor_unit(db_session: Session) -> None:
    assert db_session.get(Currency, "JPY").exponent == 0


def test_every_country_pays_in_a_known_currency(db_session: Session) -> None:
    rows = db_session.execute(select(Country.code, Currency.code).join(Country.currency)).all()
    assert dict(rows) == {
        "DE": "EUR",
        "FR": "EUR",
        "NL": "EUR",
        "GB": "GBP",
        "US": "USD",
        "CH": "CHF",
        "SE": "SEK",
        "JP": "JPY",
    }


def test_the_product_categories_come_with_the_migrations(db_session: Session, db_assert) -> None:
    slugs = db_session.scalars(select(Category.slug).order_by(Category.slug)).all()
    assert slugs == ["books", "games", "garden", "kitchen", "music"]


def test_a_test_may_delete_reference_data_for_itself(db_session: Session, db_assert) -> None:
    db_session.execute(delete(Category).where(Category.slug == "music"))
    db_session.commit()  # a savepoint's release: the next test has its music back
    db_assert.assert_database_missing("categories", {"slug": "music"})
    db_assert.assert_database_count(Category, 4)


def test_a_test_may_rename_reference_data_for_itself(db_session: Session, db_assert) -> None:
    db_session.get(Currency, "GBP").name = "Sterling"
    db_session.commit()
    db_assert.assert_database_has("currencies", {"code": "GBP", "name": "Sterling"})
    db_assert.assert_database_missing("currencies", {"name": "Pound sterling"})
