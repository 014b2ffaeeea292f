"""The async path: an AsyncSession in the same rollback sandbox, on the loop the test runs on."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bookshop.models import Book, Order
from bookshop.services import aplace_order
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .factories import BookFactory, CustomerFactory


async def test_async_order_is_placed_and_committed(async_db_session: AsyncSession) -> None:
    book = await BookFactory.acreate(session=async_db_session, price=Decimal("10.00"))
    customer = await CustomerFactory.state("french").acreate(session=async_db_session)

    order = await aplace_order(async_db_session, customer.id, {book.id: 1})

    assert order.total == Decimal("10.50")
    count = await async_db_session.scalar(select(func.count()).select_from(Order))
    assert count == 1


async def test_concurrent_queries_on_one_session_connection_are_serialised(
    async_db_session: AsyncSession,
) -> None:
    await BookFactory.acreate_many(3, session=async_db_session)
    await async_db_session.commit()
    conn = await async_db_session.connection()

    counts = await asyncio.gather(
        *(conn.scalar(select(func.count()).select_from(Book)) for _ in range(20))
    )

    assert counts == [3] * 20


async def test_async_tests_start_clean(async_db_session: AsyncSession) -> None:
    assert await async_db_session.scalar(select(func.count()).select_from(Book)) == 0
