"""SQLAlchemy's asyncio types, without importing them before anyone used asyncio.

``sqlalchemy.ext.asyncio`` needs ``greenlet`` and costs an import; the sync
paths (the sync sandbox, the assertion helpers, test data) must work without
either. No AsyncSession can exist before that module was imported, so an
``isinstance`` check can look it up lazily.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

__all__ = ["is_async_connection", "is_async_engine", "is_async_session"]

_MODULE = "sqlalchemy.ext.asyncio"


def _is(obj: Any, name: str) -> bool:
    module = sys.modules.get(_MODULE)
    return module is not None and isinstance(obj, getattr(module, name))


def is_async_session(obj: Any) -> TypeGuard[AsyncSession]:
    """Whether ``obj`` is a :class:`sqlalchemy.ext.asyncio.AsyncSession`."""
    return _is(obj, "AsyncSession")


def is_async_engine(obj: Any) -> TypeGuard[AsyncEngine]:
    """Whether ``obj`` is a :class:`sqlalchemy.ext.asyncio.AsyncEngine`."""
    return _is(obj, "AsyncEngine")


def is_async_connection(obj: Any) -> TypeGuard[AsyncConnection]:
    """Whether ``obj`` is a :class:`sqlalchemy.ext.asyncio.AsyncConnection`."""
    return _is(obj, "AsyncConnection")
