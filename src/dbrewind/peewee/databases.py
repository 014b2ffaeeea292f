"""The peewee databases dbrewind works on: their backend (:func:`backend_of`) and URL
(:func:`database_url`), the safety net's database and Rewinder taken up through
:mod:`dbrewind.provision` (:func:`safety_net_database`, :func:`tracking_rewinder`,
released by :func:`close_rewinders`), and whether a connection was lost (:func:`_lost`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import peewee

from .._url import Backend, DatabaseURL, parse_url
from ..dialects import get_dialect
from ..exceptions import ConfigurationError
from ..rewinder import Rewinder

if TYPE_CHECKING:
    from ..provision import Database

__all__ = [
    "_lost",
    "_wrap_errors",
    "backend_of",
    "close_rewinders",
    "database_url",
    "safety_net_database",
    "tracking_rewinder",
]


# peewee's translation of driver exceptions into peewee.IntegrityError & co.
_wrap_errors: Any = getattr(peewee, "__exception_wrapper__")  # noqa: B009


def _lost(database: Any) -> bool:
    """Whether ``database``'s connection no longer answers (after a statement on it failed)."""
    try:
        with _wrap_errors:
            database.cursor().execute("SELECT 1")
    except Exception:
        return True
    return False


def backend_of(database: peewee.Database) -> Backend:
    """The dbrewind backend of a peewee (or peewee-async) database."""
    if isinstance(database, peewee.SqliteDatabase):
        return "sqlite"
    if isinstance(database, peewee.PostgresqlDatabase):
        return "postgresql"
    if isinstance(database, peewee.MySQLDatabase):
        return "mysql"
    raise ConfigurationError(
        f"dbrewind does not know the peewee database class {type(database).__name__}: "
        "use a SqliteDatabase, PostgresqlDatabase or MySQLDatabase (or their "
        "peewee-async counterparts)."
    )


def database_url(database: peewee.Database) -> DatabaseURL:
    """The URL of the database a peewee database object connects to.

    Built from its connection parameters (database name, host, port, user,
    password; the file path for SQLite), with the synchronous driver dbrewind
    uses for its own work.
    """
    if database.deferred:
        raise ConfigurationError(
            f"The peewee database {database!r} is not initialised (deferred): call "
            "database.init(...) before entering the sandbox."
        )
    params: dict[str, Any] = dict(database.connect_params)
    key = (type(database), str(database.database), repr(sorted(params.items())))
    found = _URLS.get(key)
    if found is None:
        dialect = get_dialect(backend_of(database))
        found = parse_url(dialect.connect_params_url(str(database.database), params))
        if len(_URLS) >= _URLS_KEPT:
            _URLS.clear()
        _URLS[key] = found
    return found


_URLS: dict[tuple[type, str, str], DatabaseURL] = {}
"""The URLs of the databases seen (a suite makes a database object per test)."""
_URLS_KEPT = 256


def tracking_rewinder(
    database: peewee.Database, rewinder: Rewinder | None = None
) -> Rewinder | None:
    """The safety net's :class:`~dbrewind.Rewinder` for ``database``, or None when it is off.

    With ``rewinder`` given, that one (tracking installed first when missing).
    Otherwise the database is taken up by the lifecycle every entry point
    shares (:mod:`dbrewind.provision`): leased for the process, its tracking
    checked against the tables as they are now (a suite that drops and
    recreates its tables gets tracking installed again), and the database as
    it is at first use is the baseline; the pytest plugin's database is reused
    when the URL is its. None, after one :class:`~dbrewind.SafetyNetWarning`,
    for a database that is not provably a test database or that another run
    holds: the sandbox still runs there, writing nothing lasting.
    """
    if rewinder is not None:
        with rewinder.connection() as conn:
            installed = rewinder.dialect.is_installed(conn)
        if not installed:
            rewinder.install()
        return rewinder
    return safety_net_database(database).rewinder


def safety_net_database(database: peewee.Database) -> Database:
    """The lifecycle's :class:`~dbrewind.provision.Database` for a peewee database."""
    from ..provision import Target, acquire

    return acquire(Target(url=database_url(database), origin="peewee"))


def close_rewinders() -> None:
    """Release the databases the sandboxes' safety net took up (e.g. at session end).

    Each is rewound to its baseline and its lease given up; tracking stays
    installed, and the next sandbox takes the database up again.
    """
    from ..provision import databases

    for held in databases():
        if held.target.origin == "peewee":
            held.release()
