"""``python -m shop.cli`` called in this process: the shop's ``SyncSession`` is named in
``dbrewind_engines``, so its commits land in the test's sandbox (``db_session``). The same
command in a subprocess is in ``test_tradeoffs.py``."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from shop import services
from shop.cli import main
from shop.models import Product
from tests.factories import ProductFactory, UserFactory


def test_restock_adds_to_the_stock(db_session: Session, db_assert, capsys) -> None:
    product = ProductFactory.create(sku="LAMP", stock=2)
    assert main(["restock", str(product.id), "3"]) == 0
    assert capsys.readouterr().out == "LAMP: 5 in stock\n"
    db_assert.assert_database_has(Product, {"sku": "LAMP", "stock": 5})


def test_retire_soft_deletes_a_product(db_session: Session, db_assert) -> None:
    product = ProductFactory.create()
    assert main(["retire", str(product.id)]) == 0
    db_assert.assert_soft_deleted(product)


def test_an_unknown_product_is_an_error(db_session: Session, capsys) -> None:
    assert main(["restock", "424242", "1"]) == 1
    assert capsys.readouterr().err == "error: no active product 424242\n"


def test_revenue_prints_the_total_in_cents(db_session: Session, capsys) -> None:
    user = UserFactory.create()
    product = ProductFactory.for_(user.organisation).create(price_cents=1250)
    services.place_order(db_session, user.id, [(product.id, 2)])
    assert main(["revenue", str(user.organisation_id)]) == 0
    assert capsys.readouterr().out == "2500\n"


def test_a_command_is_required(capsys) -> None:
    with pytest.raises(SystemExit):
        main([])
    assert "required" in capsys.readouterr().err
