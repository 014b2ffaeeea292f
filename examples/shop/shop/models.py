"""The shop's tables.

Reference data (``currencies``, ``countries``, ``categories``) is loaded by the
migrations. Organisations, users and products are soft-deleted (``deleted_at``);
orders keep their lines and prices as they were when placed.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Category",
    "Country",
    "Currency",
    "Notification",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Organisation",
    "Product",
    "Role",
    "User",
    "utcnow",
]


def utcnow() -> datetime:
    """Now, in UTC, without a time zone (as every database here stores it)."""
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


class Base(DeclarativeBase):
    pass


class Role(str, enum.Enum):
    MEMBER = "member"
    ADMIN = "admin"


class OrderStatus(str, enum.Enum):
    PLACED = "placed"
    PAID = "paid"
    CANCELLED = "cancelled"


class Currency(Base):
    __tablename__ = "currencies"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    exponent: Mapped[int] = mapped_column(Integer, default=2)


class Country(Base):
    __tablename__ = "countries"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    currency_code: Mapped[str] = mapped_column(ForeignKey("currencies.code"))

    currency: Mapped[Currency] = relationship()


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    country_code: Mapped[str] = mapped_column(ForeignKey("countries.code"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    country: Mapped[Country] = relationship()
    users: Mapped[list[User]] = relationship(back_populates="organisation")
    products: Mapped[list[Product]] = relationship(back_populates="organisation")

    @property
    def currency_code(self) -> str:
        return self.country.currency_code


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=Role.MEMBER,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    organisation: Mapped[Organisation] = relationship(back_populates="users")
    orders: Mapped[list[Order]] = relationship(back_populates="user")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("organisation_id", "sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    category_slug: Mapped[str] = mapped_column(ForeignKey("categories.slug"))
    sku: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    price_cents: Mapped[int] = mapped_column(Integer)
    currency_code: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    stock: Mapped[int] = mapped_column(Integer, default=0)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    organisation: Mapped[Organisation] = relationship(back_populates="products")
    category: Mapped[Category] = relationship()


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[OrderStatus] = mapped_column(
        Enum(
            OrderStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=OrderStatus.PLACED,
    )
    currency_code: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    total_cents: Mapped[int] = mapped_column(Integer, default=0)
    placed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    organisation: Mapped[Organisation] = relationship()
    user: Mapped[User] = relationship(back_populates="orders")
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.id"
    )

    @property
    def number(self) -> str:
        """What customers see: ``ORD-000042``."""
        return f"ORD-{self.id:06d}"


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


class Notification(Base):
    """A message the shop sent (written by the API's background task)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    recipient: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
