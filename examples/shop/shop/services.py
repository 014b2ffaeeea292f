"""The shop's business rules. Each function that changes something commits.

They take a sync :class:`~sqlalchemy.orm.Session`; the async API calls them
through ``AsyncSession.run_sync``, the CLI with its own session.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shop.models import (
    Category,
    Country,
    Notification,
    Order,
    OrderLine,
    OrderStatus,
    Organisation,
    Product,
    Role,
    User,
    utcnow,
)

__all__ = [
    "NotFound",
    "OutOfStock",
    "ShopError",
    "active_products",
    "add_member",
    "add_product",
    "cancel_order",
    "close_organisation",
    "place_order",
    "register_organisation",
    "remove_member",
    "restock",
    "retire_product",
    "revenue",
    "send_order_confirmation",
]


class ShopError(Exception):
    """A request the shop refuses; the message says why."""


class NotFound(ShopError):
    """No such (active) row."""


class OutOfStock(ShopError):
    """An order asks for more than is in stock."""


SoftDeleted = TypeVar("SoftDeleted", Organisation, User, Product)


def _active(session: Session, model: type[SoftDeleted], key: int) -> SoftDeleted:
    """The row of ``model`` with primary key ``key``, unless it is missing or soft-deleted."""
    found = session.get(model, key)
    if found is None or found.deleted_at is not None:
        raise NotFound(f"no active {model.__tablename__[:-1]} {key}")
    return found


def register_organisation(session: Session, name: str, country_code: str) -> Organisation:
    if session.get(Country, country_code) is None:
        raise NotFound(f"no country {country_code!r}")
    organisation = Organisation(name=name, country_code=country_code)
    session.add(organisation)
    session.commit()
    return organisation


def add_member(
    session: Session, organisation_id: int, email: str, name: str, role: Role = Role.MEMBER
) -> User:
    _active(session, Organisation, organisation_id)
    user = User(organisation_id=organisation_id, email=email.lower(), name=name, role=role)
    session.add(user)
    session.commit()
    return user


def add_product(
    session: Session,
    organisation_id: int,
    *,
    sku: str,
    name: str,
    category: str,
    price_cents: int,
    stock: int = 0,
) -> Product:
    organisation = _active(session, Organisation, organisation_id)
    found = session.scalar(select(Category).where(Category.slug == category))
    if found is None:
        raise NotFound(f"no category {category!r}")
    if price_cents <= 0:
        raise ShopError("a price must be positive")
    product = Product(
        organisation_id=organisation_id,
        category_slug=found.slug,
        sku=sku,
        name=name,
        price_cents=price_cents,
        currency_code=organisation.currency_code,
        stock=stock,
    )
    session.add(product)
    session.commit()
    return product


def restock(session: Session, product_id: int, quantity: int) -> Product:
    """Add ``quantity`` to the stock; waits for any order holding the product's row."""
    product = session.scalar(select(Product).where(Product.id == product_id).with_for_update())
    if product is None or product.deleted_at is not None:
        raise NotFound(f"no active product {product_id}")
    product.stock += quantity
    session.commit()
    return product


def place_order(session: Session, user_id: int, lines: Iterable[tuple[int, int]]) -> Order:
    """Order ``(product_id, quantity)`` pairs for a user: all or nothing.

    The products' rows are locked (``SELECT .. FOR UPDATE``) until the order is
    committed, so that two orders never sell the same last item.
    """
    user = _active(session, User, user_id)
    wanted: dict[int, int] = {}
    for product_id, quantity in lines:
        if quantity <= 0:
            raise ShopError("a quantity must be positive")
        wanted[product_id] = wanted.get(product_id, 0) + quantity
    if not wanted:
        raise ShopError("an order needs at least one line")
    products = {
        p.id: p
        for p in session.scalars(
            select(Product).where(Product.id.in_(wanted)).order_by(Product.id).with_for_update()
        )
    }
    try:
        order = Order(
            organisation_id=user.organisation_id,
            user=user,
            currency_code=user.organisation.currency_code,
        )
        for product_id, quantity in wanted.items():
            product = products.get(product_id)
            if (
                product is None
                or product.deleted_at is not None
                or product.organisation_id != user.organisation_id
            ):
                raise NotFound(f"no active product {product_id} in this shop")
            if product.stock < quantity:
                raise OutOfStock(f"{product.sku}: {quantity} wanted, {product.stock} in stock")
            product.stock -= quantity
            order.lines.append(
                OrderLine(product=product, quantity=quantity, unit_price_cents=product.price_cents)
            )
        order.total_cents = sum(line.quantity * line.unit_price_cents for line in order.lines)
        session.add(order)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return order


def cancel_order(session: Session, order_id: int) -> Order:
    """Cancel a placed (unpaid) order; its items go back into stock."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None:
        raise NotFound(f"no order {order_id}")
    if order.status is not OrderStatus.PLACED:
        raise ShopError(f"order {order.number} is {order.status.value}, it cannot be cancelled")
    for line in order.lines:
        session.execute(
            update(Product)
            .where(Product.id == line.product_id)
            .values(stock=Product.stock + line.quantity)
        )
    order.status = OrderStatus.CANCELLED
    session.commit()
    session.refresh(order)
    return order


def send_order_confirmation(session: Session, order_id: int) -> Notification | None:
    """Record the confirmation of an order (once); None when it was sent already."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    if order.confirmation_sent_at is not None:
        return None
    notification = Notification(
        order_id=order.id, recipient=order.user.email, subject=f"Your order {order.number}"
    )
    order.confirmation_sent_at = utcnow()
    session.add(notification)
    session.commit()
    return notification


def retire_product(session: Session, product_id: int) -> Product:
    """Soft-delete a product: it is no longer sold; past orders keep it."""
    product = _active(session, Product, product_id)
    product.deleted_at = utcnow()
    session.commit()
    return product


def remove_member(session: Session, user_id: int) -> User:
    user = _active(session, User, user_id)
    user.deleted_at = utcnow()
    session.commit()
    return user


def close_organisation(session: Session, organisation_id: int) -> Organisation:
    """Soft-delete an organisation with its members and products; orders stay."""
    organisation = _active(session, Organisation, organisation_id)
    now = utcnow()
    organisation.deleted_at = now
    for model in (User, Product):
        session.execute(
            update(model)
            .where(model.organisation_id == organisation_id, model.deleted_at.is_(None))
            .values(deleted_at=now)
        )
    session.commit()
    return organisation


def active_products(session: Session, organisation_id: int) -> list[Product]:
    return list(
        session.scalars(
            select(Product)
            .where(Product.organisation_id == organisation_id, Product.deleted_at.is_(None))
            .order_by(Product.sku)
        )
    )


def revenue(session: Session, organisation_id: int) -> int:
    """The total of an organisation's orders that were not cancelled, in cents."""
    total = session.scalar(
        select(func.coalesce(func.sum(Order.total_cents), 0)).where(
            Order.organisation_id == organisation_id, Order.status != OrderStatus.CANCELLED
        )
    )
    return int(total or 0)
