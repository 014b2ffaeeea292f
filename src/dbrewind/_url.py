"""Database URLs: parsing, backend detection, driver choice and safe display."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ._backends import Backend, backend_named
from .exceptions import ConfigurationError, DriverNotInstalledError

__all__ = [
    "Backend",
    "DatabaseURL",
    "is_test_name",
    "parse_url",
    "show_url",
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

# A name's words: split at anything not an ASCII letter (``_``, ``-``, ``.``,
# spaces, digits, ...) and at case changes (``AppTest``, ``APITests``).
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
_TEST_WORDS = frozenset({"test", "tests", "testing"})


def is_test_name(name: str) -> bool:
    """Whether one of the name's words is ``test``, ``tests`` or ``testing``.

    Words split at ``_``, ``-``, ``.``, spaces, digits and case changes:
    ``app_test``, ``test_app``, ``shop-test-2``, ``AppTest`` and ``tests``
    are test names; ``latest_prod``, ``contest``, ``attestations`` and
    ``pytest_prod`` are not.
    """
    return any(word.lower() in _TEST_WORDS for word in _WORD.findall(name))


# Query parameters drivers read a secret from (libpq's conninfo, MySQL drivers).
_SECRET_PARAMS = frozenset({"password", "passwd", "sslpassword", "passfile"})
_HIDDEN = "dbrewindhidden"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)(.*)$", re.DOTALL)


def show_url(url: URL) -> str:
    """``url`` as text fit for a message or a log: its password and any secret in its
    query (``?password=``) shown as ``***``."""
    hidden = {key: _HIDDEN for key in url.query if key.lower() in _SECRET_PARAMS and url.query[key]}
    if not hidden:
        return url.render_as_string(hide_password=True)
    shown = url.update_query_dict(hidden).render_as_string(hide_password=True)
    return shown.replace(_HIDDEN, "***")


def _show_unparsed(text: str) -> str:
    """Text that is not a URL SQLAlchemy can parse, with whatever may be a password hidden:
    the part between the user's name and the last ``@``, or a port that is not a number."""
    found = _SCHEME.match(text)
    if found is None:  # no scheme: up to the first ':' or '@' (a password may follow)
        head = re.split(r"[:@]", text, maxsplit=1)[0]
        return head if head == text and len(text) <= 40 else f"{head[:20]}..."
    scheme, netloc, rest = found.groups()
    user, at, host = netloc.rpartition("@")
    if at:
        name = user.split(":", 1)[0]
        netloc = f"{name}:***@{host}" if ":" in user else f"{name}@{host}"
        host_part = host
    else:
        host_part = netloc
    _host, colon, port = host_part.rpartition(":")
    if colon and not port.isdigit() and "]" not in port:
        netloc = netloc[: len(netloc) - len(port)] + "***"
    rest = re.sub(r"((?:^|[?&])(?:password|passwd|sslpassword)=)[^&#]*", r"\1***", rest, flags=re.I)
    return f"{scheme}{netloc}{rest}"


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
        # URL syntax, not database behaviour, as is every branch on the backend in this
        # module: a SQLite URL without a path (``sqlite://``) names an in-memory database
        if self.backend == "sqlite" and not name:
            return ":memory:"
        return name or ""

    @property
    def is_memory(self) -> bool:
        """True for an in-memory SQLite database."""
        # URL syntax: only a SQLite URL names memory (``:memory:``, ``mode=memory``)
        if self.backend != "sqlite":
            return False
        name = self.database
        return (
            name == ":memory:"
            or name.startswith("file::memory:")
            or (bool(self.url.query.get("mode") == "memory"))
        )

    def display(self) -> str:
        """The URL as text with any password hidden (also one given as ``?password=``):
        safe for messages and logs."""
        return show_url(self.url)

    def __str__(self) -> str:
        return self.display()

    def __repr__(self) -> str:
        return f"DatabaseURL({self.display()!r})"

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
        # URL syntax: SQLAlchemy names psycopg's asyncio flavour ``psycopg_async``
        if len(given) == 2 and given[1] == "psycopg":
            return self.url.set(drivername=f"{given[0]}+psycopg_async")
        return self._with_driver(_ASYNC_DRIVERS[self.backend])

    def with_database(self, name: str) -> DatabaseURL:
        """The same server and credentials, another database."""
        return DatabaseURL(self.url.set(database=name), self.backend)

    def name_says_test(self) -> bool:
        """Whether the database name marks it as a test database (:func:`is_test_name`).

        For SQLite the file's stem is the name; an in-memory database is always one.
        """
        if self.is_memory:
            return True
        name = self.database
        # URL syntax: a SQLite URL's database is a file path (dbrewind.dialects imports
        # this module, so it cannot ask the dialect's base_name, which says the same)
        if self.backend == "sqlite":
            name = PurePath(name).stem
        return is_test_name(name)


def check_driver(db_url: DatabaseURL) -> None:
    """Raise :class:`DriverNotInstalledError` when the URL's own driver is missing."""
    parts = db_url.url.drivername.split("+", 1)
    if len(parts) == 1:
        return
    driver = parts[1]
    known = _DRIVERS.get(driver)
    if known is None:  # a driver dbrewind does not know: SQLAlchemy may
        try:
            dialect = db_url.url.get_dialect()
        except NoSuchModuleError:
            preferred = _SYNC_DRIVERS[db_url.backend][0]
            names = sorted(
                name for name, (_, extra, _) in _DRIVERS.items() if extra == db_url.backend
            )
            raise ConfigurationError(
                f"Unknown driver '{driver}' in {db_url.display()}: SQLAlchemy has no "
                f"'{parts[0]}+{driver}' dialect. Use one of {', '.join(names)} "
                f"(e.g. {parts[0]}+{preferred}://...), or leave the driver out to let "
                "dbrewind choose an installed one."
            ) from None
        try:
            dialect.import_dbapi()
        except ImportError as exc:
            raise DriverNotInstalledError(
                f"Driver '{driver}' for {db_url.display()} is not installed ({exc}). Install "
                f"it, or use one dbrewind installs: pip install 'dbrewind[{db_url.backend}]'"
            ) from None
        return
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
            # the parser's own message may quote the password (as a port): not shown
            why = "its port is not a number" if "int()" in str(exc) else "it is not a URL"
            raise ConfigurationError(
                f"Could not parse the database URL {_show_unparsed(text)!r}: {why}. Expected "
                "the form 'dialect[+driver]://user[:password]@host[:port]/database', "
                "e.g. 'postgresql://postgres@127.0.0.1/app_test'; percent-encode '@', ':', "
                "'/' and '%' in a user name or password (e.g. '@' as %40)."
            ) from None
    else:
        parsed = url
    backend = backend_named(parsed.get_backend_name())
    if backend is None:
        raise ConfigurationError(
            f"Unsupported database '{parsed.get_backend_name()}' in "
            f"{show_url(parsed)}: dbrewind supports sqlite, postgresql and mysql/mariadb, "
            "e.g. 'postgresql://postgres@127.0.0.1/app_test'."
        )
    db_url = DatabaseURL(parsed, backend)
    check_driver(db_url)
    # URL syntax: a server URL must name a database; a SQLite URL without one is in memory
    if backend != "sqlite" and not db_url.database:
        raise ConfigurationError(
            f"The URL {db_url.display()} names no database. Add one after the host, "
            f"e.g. {show_url(parsed.set(database='app_test'))}"
        )
    return db_url
