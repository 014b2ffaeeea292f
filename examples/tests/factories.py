"""Factories for the bookshop's models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bookshop.models import Author, Book, Customer

from dbrewind.factories import ModelFactory

__all__ = ["AuthorFactory", "BookFactory", "CustomerFactory"]


class AuthorFactory(ModelFactory[Author]):
    __model__ = Author

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"name": f"Author {cls._next_seq()}"}


class BookFactory(ModelFactory[Book]):
    __model__ = Book

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {
            "isbn": f"978{seq:010d}",
            "title": f"Book {seq}",
            "price": Decimal("10.00"),
            "stock": 5,
            "author": AuthorFactory,
        }

    @classmethod
    def state_sold_out(cls) -> dict[str, Any]:
        return {"stock": 0}


class CustomerFactory(ModelFactory[Customer]):
    __model__ = Customer

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"email": f"reader{cls._next_seq()}@example.test", "country_code": "DE"}

    @classmethod
    def state_french(cls) -> dict[str, Any]:
        return {"country_code": "FR"}
