"""Schema setup for the bookshop: tables plus the reference rows every test starts with."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from .models import Base, Country

__all__ = ["COUNTRIES", "setup"]

COUNTRIES = [
    {"code": "DE", "name": "Germany", "vat_percent": 7},
    {"code": "FR", "name": "France", "vat_percent": 5},
    {"code": "GB", "name": "United Kingdom", "vat_percent": 0},
]


def setup(conn: Connection) -> None:
    """Create the tables and seed the reference data (idempotent)."""
    Base.metadata.create_all(conn)
    if conn.execute(Country.__table__.select().limit(1)).first() is None:
        conn.execute(insert(Country), COUNTRIES)
