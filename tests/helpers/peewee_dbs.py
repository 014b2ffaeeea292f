"""peewee and peewee-async databases on the test servers, for the tests that use peewee."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

__all__ = ["DRIVERS", "aio_database", "sync_database"]

DRIVERS = {
    "aiopg": "postgresql",
    "psycopg": "postgresql",
    "aiomysql": "mysql",
    "aiosqlite": "sqlite",
}
"""peewee-async's database classes by driver, with the backend each runs on."""


def _params(url: URL) -> dict[str, Any]:
    return {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password or "",
    }


def sync_database(url: URL) -> Any:
    """A peewee database on the database of ``url`` (a sync-driver SQLAlchemy URL)."""
    import peewee

    backend = url.get_backend_name()
    if backend == "sqlite":
        return peewee.SqliteDatabase(url.database)
    if backend == "postgresql":
        return peewee.PostgresqlDatabase(url.database, **_params(url))
    return peewee.MySQLDatabase(url.database, **_params(url))


def aio_database(url: URL, driver: str | None = None, *, min_size: int = 1) -> Any:
    """A peewee-async database on the database of ``url`` (a sync-driver SQLAlchemy URL).

    ``driver``: one of :data:`DRIVERS` (default: psycopg on PostgreSQL, aiomysql on
    MySQL, aiosqlite on SQLite); ``min_size``: the pool's smallest size.
    """
    import peewee_async

    backend = url.get_backend_name()
    driver = driver or {"postgresql": "psycopg", "mysql": "aiomysql"}.get(backend, "aiosqlite")
    if DRIVERS[driver] != backend:
        raise ValueError(f"the {driver} driver does not run on {backend}")
    if driver == "aiosqlite":
        return peewee_async.SqliteDatabase(url.database)
    params = _params(url)
    if driver == "psycopg":
        pool = {"min_size": min_size, "max_size": 4}
        return peewee_async.Psycopg3Database(url.database, **params, pool_params=pool)
    database = peewee_async.PostgresqlDatabase if driver == "aiopg" else peewee_async.MySQLDatabase
    return database(url.database, **params, pool_params={"minsize": min_size, "maxsize": 4})
