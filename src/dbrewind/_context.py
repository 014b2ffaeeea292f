"""What the lifecycle learns from its surroundings: who listens, which xdist worker this is.

A module of its own, importing nothing, so the pytest plugin can set it up
without loading the lifecycle (and SQLAlchemy) before a test asks for a database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["notify", "set_worker", "subscribe", "worker"]

_LOCK = threading.Lock()
_LISTENERS: list[Callable[[Any], object]] = []


def subscribe(listener: Callable[[Any], object]) -> Callable[[], None]:
    """Call ``listener`` with each database acquired from now on; returns an unsubscribe."""
    with _LOCK:
        _LISTENERS.append(listener)

    def unsubscribe() -> None:
        with _LOCK:
            if listener in _LISTENERS:
                _LISTENERS.remove(listener)

    return unsubscribe


def notify(database: Any) -> None:
    """Tell every listener of ``database`` (a :class:`dbrewind.provision.Database`)."""
    with _LOCK:
        listeners = list(_LISTENERS)
    for listener in listeners:
        listener(database)


_WORKER: list[str | None] = [None]


def set_worker(name: str | None) -> None:
    """This process is the pytest-xdist worker ``name`` (``gw0``); the plugin says so."""
    _WORKER[0] = name


def worker() -> str | None:
    """The pytest-xdist worker this process is, as the plugin was told, or None."""
    return _WORKER[0]
