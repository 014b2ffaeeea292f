"""A small shop: organisations sell products to their users' orders.

``shop.models`` (SQLAlchemy 2), ``shop.services`` (the business rules; each
commits), ``shop.api`` (the async HTTP API, FastAPI), ``shop.cli`` (``python -m
shop.cli``), ``shop.migrations`` (Alembic; the reference data comes with them).
"""
