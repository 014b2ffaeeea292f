"""One test per trade-off of dbrewind's fixtures: why each needs the fixture it uses.

The rollback sandbox (``db_session``, ``async_db_session``) is the fastest: nothing is
committed, so it cannot show what another connection, thread or process sees, nor a
``SELECT .. FOR UPDATE`` wait. Those tests ask for ``transactional_db`` (or the marker's
``transactional=True``): real commits, and only the tables they dirtied are put back
after them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from httpx2 import AsyncClient
from sqlalchemy import Connection, create_engine, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from shop import db, services, settings
from shop.api import app
from shop.models import Notification, Order, Product
from tests.factories import ProductFactory, UserFactory

SHOP = Path(__file__).resolve().parent.parent


def _seed(conn: Connection, stock: int = 5) -> tuple[int, int]:
    """A committed user and product, written for real on ``conn``: (user id, product id)."""
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        user = UserFactory.create(session=session)
        product = ProductFactory.for_(user.organisation).create(stock=stock, session=session)
        ids = user.id, product.id
        session.commit()
    conn.commit()
    return ids


def test_another_connection_sees_only_what_was_committed(
    transactional_db: Connection, db_url: str
) -> None:
    """``transactional_db``: a reader on its own connection (a report job, a worker) sees
    committed rows only; in the sandbox it would see nothing."""
    user_id, product_id = _seed(transactional_db)
    with db.SyncSession() as session:  # the shop's own engine: real commits here
        services.place_order(session, user_id, [(product_id, 2)])
    reader = create_engine(db_url)
    try:
        with reader.connect() as conn:
            stock = conn.execute(text(f"SELECT stock FROM products WHERE id = {product_id}"))
            assert stock.scalar() == 3
    finally:
        reader.dispose()


def test_the_app_on_a_live_server_over_real_http(
    live_server: str, transactional_db: Connection
) -> None:
    """``transactional_db`` (through ``live_server``): uvicorn serves the app in its own
    thread, on its own event loop and connections, so what the requests write must be
    committed for this test to read it; the background task's confirmation too."""
    user_id, product_id = _seed(transactional_db)
    with httpx2.Client(base_url=live_server, timeout=10) as http:
        body = {"user_id": user_id, "lines": [{"product_id": product_id, "quantity": 1}]}
        r = http.post("/orders", json=body)
        assert r.status_code == 201, r.text
        order_id = r.json()["id"]
        for _ in range(200):  # the background task runs after the response was sent
            if http.get(f"/orders/{order_id}").json()["confirmed"]:
                break
            time.sleep(0.02)
    sent = transactional_db.execute(
        select(Notification.subject).where(Notification.order_id == order_id)
    ).scalar_one()
    assert sent == f"Your order ORD-{order_id:06d}"


def test_the_cli_in_a_subprocess_commits(transactional_db: Connection, db_url: str) -> None:
    """``transactional_db``: another process has its own connection; only committed rows
    reach it, and what it commits is rewound after the test as any other write."""
    _, product_id = _seed(transactional_db, stock=1)
    env = {**os.environ, "SHOP_DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "shop.cli", "restock", str(product_id), "9"],
        cwd=SHOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(": 10 in stock\n")
    stock = transactional_db.execute(select(Product.stock).where(Product.id == product_id))
    assert stock.scalar() == 10


@pytest.mark.dbrewind(backends=["postgresql", "mysql"])
def test_an_order_waits_for_a_restock_holding_the_row(transactional_db: Connection) -> None:
    """``transactional_db``: a ``SELECT .. FOR UPDATE`` wait happens between two real
    transactions on two connections; one sandboxed connection cannot wait for itself.
    (SQLite has no row locks: it is skipped there, by the marker's ``backends``.)"""
    user_id, product_id = _seed(transactional_db, stock=0)
    holder = db.SyncSession()
    holder.scalar(select(Product).where(Product.id == product_id).with_for_update())
    outcome: list[object] = []

    def order() -> None:
        with db.SyncSession() as session:
            try:
                outcome.append(services.place_order(session, user_id, [(product_id, 2)]).id)
            except services.ShopError as exc:
                outcome.append(exc)

    buyer = threading.Thread(target=order)
    buyer.start()
    time.sleep(0.5)
    assert buyer.is_alive(), "the order did not wait for the row"
    holder.get(Product, product_id).stock = 2  # the restock, then its commit frees the row
    holder.commit()
    holder.close()
    buyer.join(10)
    assert isinstance(outcome[0], int), outcome
    assert (
        transactional_db.execute(select(Product.stock).where(Product.id == product_id)).scalar()
        == 0
    )


def test_a_sync_test_client_runs_the_app_on_its_own_loop(
    transactional_db: Connection, fresh_app_pool: None
) -> None:
    """``transactional_db``: Starlette's ``TestClient`` runs the async app on an event loop
    of its own in a worker thread, outside any async sandbox: the app's async engine
    commits for real there, so the test says so and is rewound after."""
    user_id, product_id = _seed(transactional_db)
    with TestClient(app) as http:
        body = {"user_id": user_id, "lines": [{"product_id": product_id, "quantity": 5}]}
        assert http.post("/orders", json=body).status_code == 201
        assert http.post("/orders", json=body).status_code == 409
    count = transactional_db.execute(text("SELECT COUNT(*) FROM orders")).scalar()
    assert count == 1


async def test_the_background_task_runs_in_the_sandbox(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    """``async_db_session`` suffices: the ASGI client returns once the background task is
    done, and the task's own session (from the shop's session factory, named in
    ``dbrewind_engines``) runs in the same sandbox, so it sees the uncommitted order."""
    user = await UserFactory.create()
    product = await ProductFactory.for_(user.organisation).create()
    body = {"user_id": user.id, "lines": [{"product_id": product.id, "quantity": 1}]}
    order = (await client.post("/orders", json=body)).json()
    await db_assert.assert_database_has(
        Notification, {"order_id": order["id"], "recipient": user.email}
    )
    assert (await client.get(f"/orders/{order['id']}")).json()["confirmed"] is True


async def test_concurrent_requests_share_the_sandbox(
    client: AsyncClient, async_db_session: AsyncSession, db_assert
) -> None:
    """``async_db_session`` suffices for requests run at once (``asyncio.gather``): they
    take turns on the sandbox's one connection, statement by statement. They do not lock
    each other out there, so two orders racing for the last item need real transactions:
    ``test_an_order_waits_for_a_restock_holding_the_row``."""
    user = await UserFactory.create()
    products = await ProductFactory.for_(user.organisation).create_many(5, stock=1)
    answers = await asyncio.gather(
        *(
            client.post(
                "/orders",
                json={"user_id": user.id, "lines": [{"product_id": p.id, "quantity": 1}]},
            )
            for p in products
        )
    )
    assert [r.status_code for r in answers] == [201] * 5
    await db_assert.assert_database_count(Order, 5)
    await db_assert.assert_database_count(Product, 5, {"stock": 0})


@pytest.mark.dbrewind(transactional=True)
async def test_what_the_api_commits_is_seen_by_another_connection(
    client: AsyncClient, db_url: str
) -> None:
    """``transactional=True``: the app's engine commits for real, so a reader on its own
    connection sees the organisation; the tables it wrote are rewound after."""
    r = await client.post("/organisations", json={"name": "Real Commit AB", "country_code": "SE"})
    assert r.status_code == 201
    reader = create_async_engine(settings.async_url(db_url))
    try:
        async with reader.connect() as conn:
            names = (await conn.execute(text("SELECT name FROM organisations"))).scalars().all()
    finally:
        await reader.dispose()
    assert names == ["Real Commit AB"]


@pytest.mark.dbrewind(reset_sequences=True)
def test_the_first_order_of_a_test_is_number_one(db_session: Session) -> None:
    """``reset_sequences=True``: ids come from sequences / AUTO_INCREMENT counters, which a
    rollback does not move back (and MariaDB's are put back only when asked, as
    resetting them there is DDL); with it the test starts at the baseline's ids. Without
    it, this fails on MariaDB after any other test that placed an order."""
    user = UserFactory.create()
    product = ProductFactory.for_(user.organisation).create()
    order = services.place_order(db_session, user.id, [(product.id, 1)])
    assert order.number == "ORD-000001"


@pytest.mark.dbrewind(data=["data/acme.json"])
def test_a_data_file_is_loaded_into_the_sandbox(db_session: Session, db_assert) -> None:
    """The marker's ``data=``: the file's rows are inserted in the sandbox before the test
    (parents first) and rolled back with it."""
    order = services.place_order(db_session, 9001, [(9001, 1), (9002, 1)])
    assert order.total_cents == 4999 + 12900
    db_assert.assert_database_has(
        "products", [{"sku": "ANVIL", "stock": 2}, {"sku": "ROCKET", "stock": 0}]
    )
