"""The three backends dbrewind supports, and every name that means one of them.

Light on purpose (no SQLAlchemy): the pytest plugin parses markers with it
before any database is touched.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BACKEND_NAMES", "Backend", "backend_named"]

Backend = Literal["sqlite", "postgresql", "mysql"]
"""A database family: how dbrewind names the dialect module and the test parameters."""

BACKEND_NAMES: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
"""URL schemes, SQLAlchemy dialect names and marker spellings, by the backend they mean."""


def backend_named(name: str) -> Backend | None:
    """The backend ``name`` means (case-insensitive), or None."""
    return BACKEND_NAMES.get(name.lower())
