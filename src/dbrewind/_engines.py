"""One engine factory for every entry point (sync and async, in-memory SQLite included).

SQLAlchemy's asyncio extension needs ``greenlet``; it is imported only when an
async engine is asked for, and its absence is reported with the extra that
installs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool, StaticPool

from ._url import DatabaseURL
from .exceptions import DriverNotInstalledError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["make_async_engine", "make_engine", "require_asyncio"]


def make_engine(url: DatabaseURL, **options: Any) -> Engine:
    """A sync engine on ``url``; an in-memory SQLite database shares one connection."""
    if url.is_memory:
        options.setdefault("poolclass", StaticPool)
        options.setdefault("connect_args", {"check_same_thread": False})
    return create_engine(url.sync_url(), **options)


def make_async_engine(url: DatabaseURL, *, pooled: bool = False) -> AsyncEngine:
    """An async engine on ``url``.

    Unpooled by default (``NullPool``): no connection outlives the event loop
    that opened it, so the engine works from any loop. In-memory SQLite cannot
    be shared with an async driver across connections and is refused by the
    driver choice in :meth:`DatabaseURL.async_url`.
    """
    require_asyncio(url)
    from sqlalchemy.ext.asyncio import create_async_engine

    if pooled:
        return create_async_engine(url.async_url())
    return create_async_engine(url.async_url(), poolclass=NullPool)


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
