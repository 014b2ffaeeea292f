"""Database URLs: parsing, backend detection, driver choice and safe display."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ._backends import Backend, backend_named
from .exceptions import ConfigurationError, DriverNotInstalledError

__all__ = [
    "Backend",
    "DatabaseURL",
    "parse_url",
]

# driver name -> (python module, extra that installs it, is_async)
_DRIVERS: dict[str, tuple[str, str, bool]] = {
    "pysqlite": ("sqlite3", "sqlite", False),
    "aiosqlite": ("aiosqlite", "sqlite", True),
    "psycopg": ("psycopg", "postgresql", False),
    "psycopg_async": ("psycopg", "postgresql", True),
    "psycopg2": ("psycopg2", "postgresql", False),
    "asyncpg": ("asyncpg", "postgresql", True),
    "pymysql": ("pymysql", "mysql", False),
    "mysqldb": ("MySQLdb", "mysql", False),
    "aiomysql": ("aiomysql", "mysql", True),
    "asyncmy": ("asyncmy", "mysql", True),
}

# preferred drivers per backend, in order, when the URL names none or the other flavour
_SYNC_DRIVERS: dict[Backend, tuple[str, ...]] = {
    "sqlite": ("pysqlite",),
    "postgresql": ("psycopg", "psycopg2"),
    "mysql": ("pymysql", "mysqldb"),
}
_ASYNC_DRIVERS: dict[Backend, tuple[str, ...]] = {
    "sqlite": ("aiosqlite",),
    "postgresql": ("asyncpg", "psycopg_async"),
    "mysql": ("aiomysql", "asyncmy"),
}
_ASYNC_ONLY_DRIVER_NAMES = {"asyncpg", "aiosqlite", "aiomysql", "asyncmy", "psycopg_async"}

_TEST_NAME = re.compile(r"test", re.IGNORECASE)


def _module_available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL, with the facts dbrewind needs about it.

    ``url`` is the SQLAlchemy :class:`~sqlalchemy.engine.URL` as given.
    """

    url: URL
    backend: Backend

    @property
    def database(self) -> str:
        """The database (schema, file) name; ``":memory:"`` for in-memory SQLite."""
        name = self.url.database
        if self.backend == "sqlite" and not name:
            return ":memory:"
        return name or ""

    @property
    def is_memory(self) -> bool:
        """True for an in-memory SQLite database."""
        if self.backend != "sqlite":
            return False
        name = self.database
        return (
            name == ":memory:"
            or name.startswith("file::memory:")
            or (bool(self.url.query.get("mode") == "memory"))
        )

    def display(self) -> str:
        """The URL as text with any password hidden: safe for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    def __str__(self) -> str:
        return self.display()

    @property
    def driver(self) -> str:
        """The driver name SQLAlchemy would use (``psycopg``, ``pymysql``, ...)."""
        return self.url.get_driver_name()

    @property
    def is_async(self) -> bool:
        """Whether the URL names an asyncio driver."""
        return self.url.drivername.split("+", 1)[-1] in _ASYNC_ONLY_DRIVER_NAMES

    def _with_driver(self, candidates: tuple[str, ...]) -> URL:
        scheme = self.url.get_backend_name()
        for driver in candidates:
            module, _extra, _is_async = _DRIVERS[driver]
            if _module_available(module):
                return self.url.set(drivername=f"{scheme}+{driver}")
        module, extra, _ = _DRIVERS[candidates[0]]
        raise DriverNotInstalledError(
            f"No driver for {self.display()}: none of {', '.join(candidates)} is installed. "
            f"Install one with: pip install 'dbrewind[{extra}]'"
        )

    def sync_url(self) -> URL:
        """The URL with a synchronous driver (the given one when it is synchronous)."""
        given = self.url.drivername.split("+", 1)
        if len(given) == 2 and given[1] not in _ASYNC_ONLY_DRIVER_NAMES:
            check_driver(self)
            return self.url
        return self._with_driver(_SYNC_DRIVERS[self.backend])

    def async_url(self) -> URL:
        """The URL with an asyncio driver (the given one when it is asynchronous)."""
        given = self.url.drivername.split("+", 1)
        if len(given) == 2 and given[1] in _ASYNC_ONLY_DRIVER_NAMES:
            check_driver(self)
            return self.url
        if len(given) == 2 and given[1] == "psycopg":
            return self.url.set(drivername=f"{given[0]}+psycopg_async")
        return self._with_driver(_ASYNC_DRIVERS[self.backend])

    def with_database(self, name: str) -> DatabaseURL:
        """The same server and credentials, another database."""
        return DatabaseURL(self.url.set(database=name), self.backend)

    def name_says_test(self) -> bool:
        """Whether the database name marks it as a test database."""
        if self.is_memory:
            return True
        name = self.database
        if self.backend == "sqlite":
            name = os.path.basename(name)
        return bool(_TEST_NAME.search(name))


def check_driver(db_url: DatabaseURL) -> None:
    """Raise :class:`DriverNotInstalledError` when the URL's own driver is missing."""
    parts = db_url.url.drivername.split("+", 1)
    if len(parts) == 1:
        return
    driver = parts[1]
    known = _DRIVERS.get(driver)
    if known is None:
        return  # a driver we do not know: let SQLAlchemy judge it
    module, extra, _ = known
    if not _module_available(module):
        raise DriverNotInstalledError(
            f"Driver '{driver}' for {db_url.display()} is not installed. "
            f"Install it with: pip install 'dbrewind[{extra}]'"
        )


def parse_url(url: str | URL | DatabaseURL) -> DatabaseURL:
    """Parse and check a database URL.

    Raises :class:`ConfigurationError` for a malformed URL or an unsupported
    database, and :class:`DriverNotInstalledError` when the URL names a driver
    that is not installed.
    """
    if isinstance(url, DatabaseURL):
        return url
    if isinstance(url, str):
        text = url.strip()
        if not text:
            raise ConfigurationError(
                "The database URL is empty. Give one such as "
                "'postgresql://user@localhost/app_test' or 'sqlite:///test.db'."
            )
        try:
            parsed = make_url(text)
        except (ArgumentError, ValueError) as exc:
            shown = text if "@" not in text else "<url with credentials>"
            raise ConfigurationError(
                f"Could not parse the database URL {shown!r}: {exc}. Expected the form "
                "'dialect[+driver]://user[:password]@host[:port]/database', "
                "e.g. 'postgresql://postgres@127.0.0.1/app_test'."
            ) from exc
    else:
        parsed = url
    backend = backend_named(parsed.get_backend_name())
    if backend is None:
        raise ConfigurationError(
            f"Unsupported database '{parsed.get_backend_name()}' in "
            f"{parsed.render_as_string(hide_password=True)}: dbrewind supports "
            "sqlite, postgresql and mysql/mariadb."
        )
    db_url = DatabaseURL(parsed, backend)
    check_driver(db_url)
    if backend != "sqlite" and not db_url.database:
        raise ConfigurationError(
            f"The URL {db_url.display()} names no database. Add one after the host, "
            f"e.g. {parsed.set(database='app_test').render_as_string(hide_password=True)}"
        )
    return db_url
