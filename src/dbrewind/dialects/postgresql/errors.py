"""What the server's errors mean: connect failures by SQLSTATE or message, and the
dbrewind error for a failed tracking statement."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ...exceptions import (
    AuthenticationError,
    ConnectionFailedError,
    DatabaseNotFoundError,
    DbrewindError,
    LockTimeoutError,
    NotPreparedError,
    ServerUnreachableError,
    WrongServerError,
)
from ..base import LOCK_ADVICE, describe_sessions, describe_wait
from ._sql import _FK_VIOLATION, _LOCK_NOT_AVAILABLE, _UNDEFINED, _driver_state

__all__ = [
    "_LOCK_WAITS_SQL",
    "_OPEN_TRANSACTIONS_SQL",
    "_connect_failure",
    "_open_transactions",
    "_translate",
]


# Connecting: SQLSTATEs (asyncpg gives them), and libpq's / asyncpg's messages
# (lower case) when a connect fails before the server sent a code.
_AUTH_STATES = frozenset({"28000", "28P01"})  # invalid authorization / password
_NO_DATABASE_STATE = "3D000"  # invalid_catalog_name
_CONNECT_PHRASES: tuple[tuple[type[ConnectionFailedError], tuple[str, ...]], ...] = (
    (DatabaseNotFoundError, ('fatal:  database "',)),
    (
        AuthenticationError,
        (
            "password authentication failed",
            "authentication failed for user",
            "no pg_hba.conf entry",
            "no password supplied",
            'fatal:  role "',
        ),
    ),
    (
        WrongServerError,
        (
            "invalid response to ssl negotiation",
            "rejected ssl upgrade",
            "expected authentication request from server",
            "server closed the connection unexpectedly",
            "unexpected message from server",
        ),
    ),
    (
        ServerUnreachableError,
        (
            "connection refused",
            "timeout expired",
            "timed out",
            "could not translate host name",
            "failed to resolve host",
            "name or service not known",
            "no route to host",
            "network is unreachable",
            "no such file or directory",
            "the database system is starting up",
            "the database system is shutting down",
        ),
    ),
)


_LOCK_WAITS_SQL = text(
    """
    SELECT pid, left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 300),
           EXTRACT(EPOCH FROM clock_timestamp() - state_change)
    FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND CAST(:pid AS integer) = ANY(pg_blocking_pids(pid))
    ORDER BY pid
    """
)
"""Sessions of this database whose statement waits on a lock the session ``:pid`` holds:
pid, statement, seconds waited."""

_OPEN_TRANSACTIONS_SQL = text(
    """
    SELECT pid, coalesce(state, ''), EXTRACT(EPOCH FROM now() - xact_start)::bigint,
           left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 120)
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
    ORDER BY xact_start
    LIMIT 5
    """
)


def _open_transactions(conn: Connection) -> str:
    """The database's other sessions with a transaction open, for an error message."""
    return describe_sessions(
        lambda: [
            f"pid {pid}, {state or 'unknown state'} for {seconds} s, last statement: {query!r}"
            for pid, state, seconds, query in conn.execute(_OPEN_TRANSACTIONS_SQL)
        ]
    )


def _connect_failure(error: BaseException) -> type[ConnectionFailedError] | None:
    """asyncpg's SQLSTATE when it has one; else libpq's message (psycopg, psycopg2 and
    asyncpg's own connection errors carry no code); None when neither tells."""
    state = getattr(error, "sqlstate", None)
    if state in _AUTH_STATES:
        return AuthenticationError
    if state == _NO_DATABASE_STATE:
        return DatabaseNotFoundError
    said = str(error).lower()
    for kind, phrases in _CONNECT_PHRASES:
        if any(phrase in said for phrase in phrases):
            return kind
    return None


def _translate(
    exc: BaseException, conn: Connection, doing: str, lock_timeout: float | None
) -> DbrewindError:
    """A dbrewind error for a SQLAlchemy ``DBAPIError`` or a bare driver error.

    ``doing`` starts the sentence of a lock timeout (e.g. "Pushing a baseline layer onto").
    """
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = _driver_state(orig) if orig is not None else None
    where = conn.engine.url.render_as_string(hide_password=True)
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if state in _UNDEFINED:
        return NotPreparedError(
            f"dbrewind tracking is not installed in {where} ({first}). "
            "Call Rewinder.prepare() (or install()) once before tests run."
        )
    if state == _LOCK_NOT_AVAILABLE:
        return LockTimeoutError(
            f"{doing} {where} waited {describe_wait(lock_timeout)} for a lock that "
            f"another session holds ({first}); nothing was changed. "
            f"{_open_transactions(conn)} {LOCK_ADVICE}"
        )
    if state == _FK_VIOLATION:
        return DbrewindError(
            f"Rewinding {where} hit a foreign key ({first}). The database role may not "
            "set session_replication_role, so the rewind had to keep FK checks on, and "
            "a cycle of foreign keys blocks it. Run as a superuser, or grant it with: "
            "GRANT SET ON PARAMETER session_replication_role TO <role>; "
            "or declare the foreign keys DEFERRABLE."
        )
    return DbrewindError(f"dbrewind failed on {where}: {first}")
