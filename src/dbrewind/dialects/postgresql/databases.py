"""Locks and leases across processes (advisory locks on the ``postgres`` database), and
the connect options asyncpg reads as seconds."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..._url import DatabaseURL
from ...exceptions import ConfigurationError, LeaseError
from ..base import Lock

__all__ = [
    "_ASYNCPG_SECONDS",
    "_LIST_DATABASES_SQL",
    "_acquire_lock",
    "_lock_holder",
    "_lock_key",
    "_seconds",
]

ServerConnection = Callable[..., AbstractContextManager[Connection]]
"""``PostgreSQLDialect._server_connection``: ``(url, application_name=..)`` to ``postgres``."""


_LOCK_NAMESPACE = 0x64627277  # "dbrw": the first int4 of every dbrewind advisory lock
"""``classid`` of dbrewind's advisory locks (``pg_try_advisory_lock(ns, key)``)."""
_LOCK_POLL = 0.05
"""Seconds between two tries of a lock that another session holds."""

_ASYNCPG_SECONDS = ("timeout", "command_timeout")
"""asyncpg's connect options that are seconds (a URL gives them as text)."""


def _seconds(option: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigurationError(
            f"The URL option {option}={value!r} is not a number of seconds. "
            f"Write it as {option}=10 or {option}=2.5."
        )
    return seconds


def _lock_key(purpose: str, database: str) -> int:
    """The second int4 of the advisory lock ``purpose`` on ``database``: stable, 31 bits."""
    digest = hashlib.sha1(f"{purpose}:{database}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class _AdvisoryLock(Lock):
    """A session-level advisory lock, held by the open connection in ``stack``."""

    def __init__(self, name: str, stack: ExitStack) -> None:
        self.name = name
        self._stack: ExitStack | None = stack

    def __repr__(self) -> str:
        state = "held" if self._stack is not None else "released"
        return f"<PostgreSQL advisory lock {self.name!r}, {state}>"

    def release(self) -> None:
        """Close the connection: the server drops the session's advisory locks with it."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


_LOCK_HOLDER_SQL = text(
    """
    SELECT l.pid,
           CASE WHEN a.client_port = -1 THEN 'a local socket' ELSE host(a.client_addr) END,
           a.application_name
    FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(:key AS oid)
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
    ORDER BY l.pid
    """
)
_LIST_DATABASES_SQL = text(
    "SELECT datname FROM pg_database WHERE starts_with(datname::text, CAST(:prefix AS text))"
)


def _acquire_lock(
    server_connection: ServerConnection, url: DatabaseURL, purpose: str, wait: float
) -> Lock | None:
    """See :meth:`PostgreSQLDialect.acquire_lock`."""
    key = _lock_key(purpose, url.database)
    holder = f"dbrewind lock {os.getpid()}@{socket.gethostname()}"
    stack = ExitStack()
    try:
        conn = stack.enter_context(server_connection(url, holder))
        conn.connection.detach()  # never back to a pool: closed by release()
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            taken = conn.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({_LOCK_NAMESPACE}, {key})"
            ).scalar()
            if taken:
                return _AdvisoryLock(f"{purpose}:{url.database}", stack)
            left = deadline - time.monotonic()
            if left <= 0:
                stack.close()
                return None
            time.sleep(min(_LOCK_POLL, left))
    except DBAPIError as exc:
        stack.close()
        raise LeaseError(
            f"Cannot take dbrewind's {purpose!r} lock for {url.display()}: "
            f"{(str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]}"
        ) from exc
    except BaseException:
        stack.close()
        raise


def _lock_holder(server_connection: ServerConnection, url: DatabaseURL, purpose: str) -> str | None:
    """See :meth:`PostgreSQLDialect.lock_holder`."""
    key = _lock_key(purpose, url.database)
    with server_connection(url) as conn:
        row = conn.execute(_LOCK_HOLDER_SQL, {"ns": _LOCK_NAMESPACE, "key": key}).first()
    if row is None:
        return None
    pid, where, application = row  # both NULL when the role may not see the session
    return (
        f"pid {pid}"
        + (f" on {where}" if where else "")
        + (f", {application}" if application else "")
    )
