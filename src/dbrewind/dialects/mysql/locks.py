"""Leases: ``GET_LOCK`` locks, each held on a server connection of its own."""

from __future__ import annotations

import hashlib
import math
from contextlib import suppress
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ..._url import DatabaseURL
from ...exceptions import ConfigurationError, ConnectionFailedError, DbrewindError, LeaseError
from ..base import Dialect, Lock
from ._sql import _LOCK_MAX_WAIT, _LOCK_NAME_LIMIT, _first_line
from .databases import _server, _server_connection

__all__ = ["_Locks", "_lock_name"]


def _lock_name(purpose: str, database: str) -> str:
    """``dbrewind:<purpose>:<database>``, hashed to fit ``GET_LOCK``'s 64 characters.

    Whether lock names compare without regard to case differs (MariaDB 10.11
    tells ``App`` from ``app``, though its manual says it does not), so a name
    that is not all lower case is hashed too: two locks on every server.
    """
    name = f"dbrewind:{purpose}:{database}"
    if len(name) <= _LOCK_NAME_LIMIT and name == name.lower():
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{name.lower()[: _LOCK_NAME_LIMIT - len(digest) - 1]}:{digest}"


class _MySQLLock(Lock):
    """A ``GET_LOCK`` lock, held by a DB-API connection of its own (no pool)."""

    def __init__(self, name: str, raw: Any, holder: str) -> None:
        self.name = name
        self._raw = raw
        self._holder = holder

    def __repr__(self) -> str:
        state = "released" if self._raw is None else "held"
        return f"<MySQL lock {self.name!r} on {self._holder}, {state}>"

    def release(self) -> None:
        """``RELEASE_LOCK``, then close the connection (which would release it anyway)."""
        raw, self._raw = self._raw, None
        if raw is None:
            return
        try:
            with suppress(Exception):  # the session is gone: so is its lock
                cursor = raw.cursor()
                try:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", (self.name,))
                    cursor.fetchall()
                finally:
                    cursor.close()
        finally:
            with suppress(Exception):
                raw.close()


class _Locks(Dialect):
    """``acquire_lock`` and ``lock_holder``."""

    def acquire_lock(self, url: DatabaseURL, purpose: str, *, wait: float) -> Lock | None:
        """``GET_LOCK('dbrewind:<purpose>:<database>', wait)`` on a server connection of its own.

        The connection (no database selected, out of any pool) stays open
        until :meth:`Lock.release`; its ``wait_timeout`` is raised to a year so
        the server does not end an idle lease. MariaDB waits fractions of a
        second; MySQL 8 whole ones (``wait`` rounded up; 0 tries once).
        """
        if (
            isinstance(wait, bool)
            or not isinstance(wait, int | float)
            or math.isnan(wait)
            or wait < 0
        ):
            raise ConfigurationError(
                f"acquire_lock({purpose!r}, wait={wait!r}) for {url.display()}: give the "
                "seconds to wait, 0 to try once."
            )
        name = _lock_name(purpose, url.database)
        raw, mariadb = self._lock_connection(url)
        seconds: float = min(float(wait), _LOCK_MAX_WAIT)
        if not mariadb:
            seconds = math.ceil(seconds)
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(f"SET SESSION wait_timeout = {_LOCK_MAX_WAIT}")
                cursor.execute("SELECT GET_LOCK(%s, %s)", (name, seconds))
                got = cursor.fetchone()[0]
            finally:
                cursor.close()
        except BaseException as exc:
            with suppress(Exception):
                raw.close()
            if isinstance(exc, Exception) and not isinstance(exc, DbrewindError):
                raise LeaseError(
                    f"Taking the lock {name!r} on the server of {url.display()} failed: "
                    f"{_first_line(exc)}. Check that the server runs and the URL's user "
                    "may connect."
                ) from exc
            raise
        if got == 1:
            return _MySQLLock(name, raw, url.display())
        with suppress(Exception):
            raw.close()
        if got is None:
            raise LeaseError(
                f"GET_LOCK({name!r}) on the server of {url.display()} returned NULL: the "
                "server refused it (its session was killed, or it ran out of memory). Retry."
            )
        return None

    def _lock_connection(self, url: DatabaseURL) -> tuple[Any, bool]:
        """A DB-API connection to the server (no database), detached from any pool,
        and whether the server is MariaDB."""
        engine = _server(url)
        try:
            try:
                raw: Any = engine.raw_connection()
            except engine.dialect.loaded_dbapi.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConnectionFailedError(
                    f"Cannot connect to the MySQL/MariaDB server of {url.display()}: {first}. "
                    "Check that the server runs and that the URL's host, port and "
                    "credentials are right."
                ) from exc
            raw.detach()  # closed by Lock.release, never returned to a pool
            return raw, bool(getattr(engine.dialect, "is_mariadb", False))
        finally:
            engine.dispose()

    def lock_holder(self, url: DatabaseURL, purpose: str) -> str | None:
        """``IS_USED_LOCK`` → the holder's connection id, with its user and client address
        from ``information_schema.PROCESSLIST`` and its process id where
        ``performance_schema`` has the driver's connection attributes."""
        name = _lock_name(purpose, url.database)
        with _server_connection(url) as conn:
            row = conn.execute(
                text(
                    "SELECT l.id, p.USER, p.HOST FROM (SELECT IS_USED_LOCK(:n) AS id) l "
                    "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = l.id"
                ),
                {"n": name},
            ).one()
            if row[0] is None:
                return None
            holder = f"connection {int(row[0])}"
            if row[1] is not None:
                holder += f" of {row[1]} from {row[2]}"
            pid = None
            with suppress(DBAPIError):  # performance_schema may be off or not readable
                pid = conn.execute(
                    text(
                        "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs "
                        "WHERE PROCESSLIST_ID = :i AND ATTR_NAME = '_pid'"
                    ),
                    {"i": int(row[0])},
                ).scalar()
            return holder + (f", pid {pid}" if pid else "")
