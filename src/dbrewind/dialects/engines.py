"""One engine factory for every entry point (sync and async, in-memory SQLite included).

SQLAlchemy's asyncio extension needs ``greenlet``; it is imported only when an
async engine is asked for, and its absence is reported with the extra that
installs it.

Every engine made here turns a failed connect into a
:class:`~dbrewind.exceptions.ConnectionFailedError` (:func:`connect_error`),
with the driver's own error as its ``__cause__``.
"""

from __future__ import annotations

import select
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool, StaticPool

from .._url import DatabaseURL
from ..exceptions import ConnectionFailedError, DbrewindError, DriverNotInstalledError
from . import get_dialect

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "connect_error",
    "make_async_engine",
    "make_engine",
    "require_asyncio",
    "translate_connect_errors",
]


def make_engine(url: DatabaseURL, **options: Any) -> Engine:
    """A sync engine on ``url``; an in-memory SQLite database shares one connection.

    On a server its pool pings a connection before handing it out (one round
    trip): a connection the server closed while it sat in the pool (a
    failover, a restart, an idle-connection reaper) is replaced, with every
    other one older than it, instead of failing the next test's first statement.
    """
    sync_url = url.sync_url()
    connect_args = _connect_defaults(url, sync_url)
    if url.is_memory:
        options.setdefault("poolclass", StaticPool)
        connect_args["check_same_thread"] = False
    elif not get_dialect(url.backend).databases_are_files:
        options.setdefault("pool_pre_ping", True)  # a server may close a pooled connection
    options["connect_args"] = {**connect_args, **options.get("connect_args", {})}
    engine = translate_connect_errors(create_engine(sync_url, **options), url)
    if options.get("pool_pre_ping"):
        _look_before_pinging(engine, url)
    return engine


def _look_before_pinging(engine: Engine, url: DatabaseURL) -> None:
    """Make the pool's pre-ping look at the connection's socket first, without a round trip.

    A server that closes a connection (a restart, a failover, ``KILL``,
    ``pg_terminate_backend``, an idle-connection reaper) leaves the socket
    readable: at end of file, or with the server's last error message waiting.
    A socket with nothing to read is a connection the server still holds open,
    and is handed out at once; anything else (or a driver that does not say
    which socket it uses) gets the dialect's real ping, a round trip. A server
    that vanished without closing its sockets (a cable pulled) is not seen
    either way until a statement times out.
    """
    ours = get_dialect(url.backend)
    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        fd = ours.driver_socket(dbapi_connection)
        if fd is not None and fd >= 0 and _nothing_to_read(fd):
            return True
        return ping(dbapi_connection)

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


def _nothing_to_read(fd: int) -> bool:
    """Whether the socket ``fd`` is open with no data waiting (a zero-timeout poll)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        readable, _, errored = select.select([fd], [], [fd], 0)
        return not readable and not errored
    except (OSError, ValueError):
        return False


def make_async_engine(url: DatabaseURL, *, pooled: bool = False) -> AsyncEngine:
    """An async engine on ``url``.

    Unpooled by default (``NullPool``): no connection outlives the event loop
    that opened it, so the engine works from any loop. ``pooled``: a pool that
    pings (as :func:`make_engine`'s), for one event loop only. In-memory SQLite cannot
    be shared with an async driver across connections and is refused by the
    driver choice in :meth:`DatabaseURL.async_url`.
    """
    require_asyncio(url)
    from sqlalchemy.ext.asyncio import create_async_engine

    async_url = url.async_url()
    options: dict[str, Any] = {"connect_args": _connect_defaults(url, async_url)}
    if not pooled:
        options["poolclass"] = NullPool
    elif not get_dialect(url.backend).databases_are_files:
        options["pool_pre_ping"] = True
    engine = create_async_engine(async_url, **options)
    translate_connect_errors(engine.sync_engine, url)
    if pooled and options.get("pool_pre_ping"):
        _look_before_pinging(engine.sync_engine, url)
    return engine


def _connect_defaults(url: DatabaseURL, driver_url: URL) -> dict[str, object]:
    """The dialect's connect arguments for ``driver_url``'s driver that its query leaves unset."""
    defaults = get_dialect(url.backend).connect_defaults(driver_url.get_driver_name())
    return {key: value for key, value in defaults.items() if key not in driver_url.query}


def connect_error(
    url: DatabaseURL, error: BaseException, *, server: str | None = None
) -> ConnectionFailedError | None:
    """The error to raise instead of ``error``, which connecting to ``url`` raised; or None.

    The one place that asks the dialect what a failed connect means
    (:meth:`~dbrewind.dialects.Dialect.connect_failure`): unreachable server,
    refused credentials, another kind of server at the port, no such database.
    The message names the URL (password hidden) — ``server`` says what was
    connected to when it was not the URL's own database — what the driver said
    and what to check. Raise it ``from`` the driver's error. None for an error
    that says nothing about the connection, and for a dbrewind error already.
    """
    if isinstance(error, DbrewindError):
        return None
    driver_error = getattr(error, "orig", None) or error
    kind = get_dialect(url.backend).connect_failure(driver_error)
    if kind is None:
        return None
    lines = str(driver_error).strip().splitlines()
    said = lines[0].strip() if lines else type(driver_error).__name__
    password = url.url.password
    if password:
        said = said.replace(str(password), "***")
    where = f"the {server} of {url.display()}" if server else url.display()
    return kind(f"Cannot connect to {where}: {said}. {kind.advice}")


def translate_connect_errors(engine: Engine, url: DatabaseURL) -> Engine:
    """Make ``engine`` open its connections through the dialect's
    :meth:`~dbrewind.dialects.Dialect.open_connection` and raise :func:`connect_error`'s
    errors when a connect fails; returns it."""

    ours = get_dialect(url.backend)

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return ours.open_connection(dialect.driver, dialect.connect, cargs, cparams)
        except Exception as exc:
            failure = connect_error(url, exc)
            if failure is None:
                raise
            raise failure from exc

    return engine


def require_asyncio(url: DatabaseURL | None = None) -> None:
    """Raise :class:`DriverNotInstalledError` unless SQLAlchemy's asyncio extension works."""
    try:
        import greenlet  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        extra = url.backend if url is not None else "postgresql"
        where = f" for {url.display()}" if url is not None else ""
        raise DriverNotInstalledError(
            f"Async database access{where} needs the 'greenlet' package, which SQLAlchemy's "
            f"asyncio support runs on. Install it with: pip install 'dbrewind[{extra}]' "
            "(or pip install greenlet)."
        ) from None
