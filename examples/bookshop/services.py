"""Business logic. Like real application code, it commits its own transactions."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .models import Book, Country, Customer, Order, OrderLine

__all__ = ["OutOfStock", "aplace_order", "place_order", "restock"]


class OutOfStock(Exception):
    """A book has fewer copies in stock than ordered."""


def _price(book: Book, quantity: int, country: Country) -> Decimal:
    net = book.price * quantity
    return (net * (100 + country.vat_percent) / 100).quantize(Decimal("0.01"))


def place_order(session: Session, customer_id: int, items: dict[int, int]) -> Order:
    """Create an order for ``{book_id: quantity}``, take the stock, and commit."""
    customer = session.get_one(Customer, customer_id)
    order = Order(customer=customer, total=Decimal("0"))
    session.add(order)
    for book_id, quantity in items.items():
        book = session.get_one(Book, book_id)
        if book.stock < quantity:
            session.rollback()
            raise OutOfStock(f"{book.title!r}: {book.stock} in stock, {quantity} ordered")
        book.stock -= quantity
        order.total += _price(book, quantity, customer.country)
        session.add(OrderLine(order=order, book=book, quantity=quantity))
    session.commit()
    return order


async def aplace_order(session: AsyncSession, customer_id: int, items: dict[int, int]) -> Order:
    """The async twin of :func:`place_order`, as an async web handler would call it."""
    customer = await session.get_one(Customer, customer_id)
    country = await session.get_one(Country, customer.country_code)
    order = Order(customer_id=customer.id, total=Decimal("0"))
    session.add(order)
    await session.flush()
    for book_id, quantity in items.items():
        book = await session.get_one(Book, book_id)
        if book.stock < quantity:
            await session.rollback()
            raise OutOfStock(f"{book.title!r}: {book.stock} in stock, {quantity} ordered")
        book.stock -= quantity
        order.total += _price(book, quantity, country)
        session.add(OrderLine(order_id=order.id, book_id=book.id, quantity=quantity))
    await session.commit()
    return order


def restock(session: Session, isbn: str, copies: int) -> int:
    """Add copies of a book and commit; returns the new stock."""
    book = session.scalars(select(Book).where(Book.isbn == isbn)).one()
    book.stock += copies
    session.commit()
    return book.stock
