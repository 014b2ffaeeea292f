"""Where the shop keeps its data: ``SHOP_DATABASE_URL`` (default ``sqlite:///shop.db``).

Any SQLAlchemy URL of SQLite, PostgreSQL or MySQL/MariaDB; the shop picks its own
drivers for it: an async one for the API, a sync one for the CLI and migrations.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url

__all__ = ["async_url", "database_url", "sync_url"]

DEFAULT_URL = "sqlite:///shop.db"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
}
_SYNC_DRIVERS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def database_url() -> str:
    """The configured URL, as given."""
    return os.environ.get("SHOP_DATABASE_URL", "").strip() or DEFAULT_URL


def _with_driver(url: str, drivers: dict[str, str]) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"SHOP_DATABASE_URL: the shop does not run on {backend!r} databases")
    return parsed.set(drivername=drivers[backend])


def async_url(url: str | None = None) -> URL:
    """``url`` (default: the configured one) with the shop's async driver."""
    return _with_driver(url or database_url(), _ASYNC_DRIVERS)


def sync_url(url: str | None = None) -> URL:
    """``url`` (default: the configured one) with the shop's sync driver."""
    return _with_driver(url or database_url(), _SYNC_DRIVERS)
