"""The process's databases: one :class:`~dbrewind.provision.lifecycle.Database` per target.

:func:`acquire` is the one way in for every entry point; a database this
process already works on is shared between them. :func:`reserve` leases a
clone slot early (for a run's header), :func:`release_all` gives everything
back at the end of a run and at exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import warnings
from typing import Any

from .._context import notify
from .._url import DatabaseURL
from ..dialects import Lock
from ..exceptions import SafetyNetWarning, UnsafeDatabaseError
from ..rewinder import Rewinder
from .lifecycle import Database
from .target import Target, identity
from .templates import choose_clone

__all__ = [
    "acquire",
    "databases",
    "forget_warnings",
    "release_all",
    "release_reservations",
    "require_safety_net",
    "reserve",
]

logger = logging.getLogger("dbrewind")

_LOCK = threading.RLock()
_RESERVED: dict[tuple[Any, ...], tuple[DatabaseURL, Lock, str | None]] = {}
_BY_TARGET: dict[tuple[Any, ...], Database] = {}
_BY_IDENTITY: dict[tuple[str, str, int | None, str], Database] = {}
_WARNED: set[tuple[str, str, int | None, str]] = set()


def _target_key(target: Target) -> tuple[Any, ...]:
    return (identity(target.url), target.mode, target.worker, target.schemas)


def acquire(target: Target) -> Database:
    """The process's one :class:`Database` for ``target``, prepared on first use.

    A database this process already works on (by its full identity) is shared
    between entry points: a peewee sandbox on the plugin's ``db_url`` uses the
    plugin's database. Listeners (:func:`dbrewind._context.subscribe`) hear of each new one.
    """
    with _LOCK:
        key = _target_key(target)
        found = _BY_TARGET.get(key) or _BY_IDENTITY.get(identity(target.url))
        if found is not None and not found.released:
            return found
        database = Database(target, target.url, forget=_forget)
        started = time.perf_counter()
        try:
            if target.mode == "clone":
                database._prepare_clone(_RESERVED.pop(key, None))
            else:
                database._prepare_here()
        except BaseException:
            database.release()
            raise
        database.prepare_seconds = time.perf_counter() - started
        if database.rewinder is not None:
            database._restamp()
        _BY_TARGET[key] = database
        _BY_IDENTITY[identity(database.url)] = database
        if not database.safety_net:
            _warn_once(database)
        notify(database)
        return database


def _warn_once(database: Database) -> None:
    key = identity(database.url)
    if key in _WARNED or not database.notes:
        return
    _WARNED.add(key)
    warnings.warn(SafetyNetWarning(f"dbrewind: {database.notes[-1]}."), stacklevel=3)


def reserve(target: Target) -> str | None:
    """Lease now the clone :func:`acquire` will work on (a clone-mode target).

    For the run's header: a run that finds its database held by another one
    says so before any test runs. Returns that note, or None when the run gets
    ``<name>`` itself. Nothing is built or checked yet.
    """
    if target.mode != "clone":
        return None
    with _LOCK:
        key = _target_key(target)
        if key in _RESERVED or key in _BY_TARGET:
            found = _RESERVED.get(key)
            return found[2] if found else None
        with Rewinder(target.url, allow=target.allow) as configured:
            configured.ensure_safe("prepare")
        _RESERVED[key] = choose_clone(target)
        return _RESERVED[key][2]


def release_reservations() -> None:
    """Give up the leases :func:`reserve` took that no :func:`acquire` used."""
    with _LOCK:
        reserved = list(_RESERVED.values())
        _RESERVED.clear()
    for _url, lease, _note in reserved:
        lease.release()


def _forget(database: Database) -> None:
    with _LOCK:
        for registry in (_BY_TARGET, _BY_IDENTITY):
            for key in [k for k, v in registry.items() if v is database]:
                del registry[key]


def databases() -> list[Database]:
    """Every database this process works on now, in the order they were acquired."""
    with _LOCK:
        return list(dict.fromkeys(_BY_TARGET.values()))


def release_all() -> None:
    """Release every database this process holds (at exit, or when a test run ends)."""
    release_reservations()
    for database in reversed(databases()):
        try:
            database.release()
        except Exception as exc:  # never fail an exit over a database we could not tidy
            logger.warning("dbrewind: could not release %s: %s", database, exc)


atexit.register(release_all)


def forget_warnings() -> None:
    """Let the safety-net warnings be given again (a new test session)."""
    with _LOCK:
        _WARNED.clear()


def require_safety_net(database: Database, action: str) -> Rewinder:
    """``database``'s Rewinder, or an :class:`UnsafeDatabaseError` saying why there is none."""
    if database.rewinder is not None:
        return database.rewinder
    why = database.notes[-1] if database.notes else "its safety net is off"
    raise UnsafeDatabaseError(f"Refusing to {action} {database.url.display()}: {why}.")
