"""The models and services on an ``AsyncSession``, in the async rollback sandbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shop import services
from shop.api import send_confirmation
from shop.models import Notification, Product, User
from tests.factories import OrderFactory, ProductFactory, UserFactory


async def test_a_service_runs_on_an_async_session(
    async_db_session: AsyncSession, db_assert
) -> None:
    user = await UserFactory.create()
    product = await ProductFactory.for_(user.organisation).create(stock=2)
    order = await async_db_session.run_sync(
        lambda session: services.place_order(session, user.id, [(product.id, 2)])
    )
    assert order.total_cents == 2000
    await db_assert.assert_database_has(Product, {"id": product.id, "stock": 0})


async def test_create_many_is_awaited_with_an_async_session(
    async_db_session: AsyncSession, db_assert
) -> None:
    users = await UserFactory.create_many(3, session=async_db_session)
    # every test's counters start afresh, whatever ran before it
    assert [u.email for u in users] == [f"user{n}@shop.test" for n in (1, 2, 3)]
    await db_assert.assert_database_count(User, 3)


async def test_the_confirmation_task_sends_once(async_db_session: AsyncSession, db_assert) -> None:
    order = await OrderFactory.create()
    await send_confirmation(order.id)  # its own session, from the shop's factory
    await send_confirmation(order.id)
    await db_assert.assert_database_count(Notification, 1)
    await db_assert.assert_database_has(Notification, {"order_id": order.id})
