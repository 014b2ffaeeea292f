"""Factories for the shop's models (dbrewind.factories)."""

from __future__ import annotations

from typing import Any

from dbrewind.factories import ModelFactory, lazy

from shop.models import Order, OrderLine, OrderStatus, Organisation, Product, Role, User

__all__ = [
    "OrderFactory",
    "OrderLineFactory",
    "OrganisationFactory",
    "ProductFactory",
    "UserFactory",
]


class OrganisationFactory(ModelFactory[Organisation]):
    __model__ = Organisation

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"name": f"Organisation {cls._next_seq()}", "country_code": "DE"}

    @classmethod
    def state_british(cls) -> dict[str, Any]:
        return {"country_code": "GB"}


class UserFactory(ModelFactory[User]):
    __model__ = User

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {
            "name": f"User {seq}",
            "email": lazy(lambda a: f"{a.name.lower().replace(' ', '')}@shop.test"),
            "organisation": OrganisationFactory,
        }

    @classmethod
    def state_admin(cls) -> dict[str, Any]:
        return {"role": Role.ADMIN}


class ProductFactory(ModelFactory[Product]):
    __model__ = Product

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {
            "sku": f"SKU-{seq:04d}",
            "name": f"Product {seq}",
            "category_slug": "books",
            "price_cents": 1000,
            "currency_code": "EUR",
            "stock": 10,
            "organisation": OrganisationFactory,
        }

    @classmethod
    def state_sold_out(cls) -> dict[str, Any]:
        return {"stock": 0}


class OrderFactory(ModelFactory[Order]):
    """An order as ``place_order`` leaves it (lines added with ``has(OrderLineFactory)``)."""

    __model__ = Order

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {
            "user": UserFactory,
            "organisation": lazy(lambda a: a.user.organisation),
            "currency_code": "EUR",
            "status": OrderStatus.PLACED,
            "total_cents": 0,
        }


class OrderLineFactory(ModelFactory[OrderLine]):
    __model__ = OrderLine

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"product": ProductFactory, "quantity": 1, "unit_price_cents": 1000}
