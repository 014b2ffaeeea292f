"""What ``dbrewind doctor`` and ``dbrewind clean`` read of the server: its version, the
settings that bear on test speed, and the sessions on a database."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..base import ServerReport

__all__ = ["_SESSIONS_SQL", "_describe_session", "_server_report"]

_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_connections",
)
"""Settings ``doctor`` shows: the first three decide what a commit waits for."""

_SETTINGS_SQL = text(
    "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(:names) ORDER BY name"
)

_SESSIONS_SQL = text(
    """
    SELECT pid, usename, application_name,
           CASE WHEN client_port = -1 THEN 'a local socket' ELSE host(client_addr) END,
           state
    FROM pg_stat_activity
    WHERE datname = :name AND pid <> pg_backend_pid() AND backend_type = 'client backend'
    ORDER BY pid
    """
)
"""Client sessions on one database, read from another (the ``postgres`` database); the
server's own processes there (autovacuum, parallel and other background workers) are
not sessions anyone holds."""

FILE_COPY_FROM = 150000
"""``server_version_num`` from which ``CREATE DATABASE`` has ``STRATEGY`` (PostgreSQL 15)."""


def _describe_session(row: tuple[object, ...]) -> str:
    pid, user, application, where, state = row
    text_ = f"pid {pid}"
    if user:
        text_ += f" of {user}"
    if where:
        text_ += f" on {where}"
    if application:
        text_ += f" ({application})"
    return text_ + (f", {state}" if state else "")


def _server_report(conn: Connection) -> ServerReport:
    """``version()``, :data:`_SETTINGS` and the strategy ``CREATE DATABASE .. TEMPLATE``
    (how dbrewind clones a template) copies with."""
    version = str(conn.exec_driver_sql("SHOW server_version").scalar())
    number = int(conn.exec_driver_sql("SHOW server_version_num").scalar() or 0)
    settings: dict[str, str] = {
        str(name): str(value)
        for name, value in conn.execute(_SETTINGS_SQL, {"names": list(_SETTINGS)})
    }
    if number >= FILE_COPY_FROM:
        settings["clone_strategy"] = "WAL_LOG"
    else:
        settings["clone_strategy"] = "FILE_COPY"
    return ServerReport(f"PostgreSQL {version}", settings, _notes(settings, number))


def _notes(settings: Mapping[str, str], number: int) -> tuple[str, ...]:
    notes = []
    if settings.get("fsync") == "on" and settings.get("synchronous_commit") != "off":
        notes.append(
            "every commit (a transactional test's, a rewind's) waits for the disk: on a "
            "throwaway test server, fsync=off, synchronous_commit=off and "
            "full_page_writes=off make commits, clones and rewinds faster (never on a "
            "server whose data matter)"
        )
    if number >= FILE_COPY_FROM:
        notes.append(
            "templates are cloned with CREATE DATABASE .. TEMPLATE, whose default strategy "
            "is WAL_LOG since PostgreSQL 15: it copies the template block by block "
            "through the WAL, which is fast for the small templates of test suites"
        )
    return tuple(notes)
