"""What ``dbrewind doctor`` and ``dbrewind clean`` read of the server: its version, the
settings that bear on test speed, and the sessions on a database."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..._url import DatabaseURL
from ..base import Dialect, ServerReport
from ._sql import VERSION_SQL, _is_mariadb
from .databases import _server_connection

__all__ = ["_Server"]

_SETTINGS = (
    "innodb_flush_log_at_trx_commit",
    "sync_binlog",
    "log_bin",
    "innodb_doublewrite",
    "performance_schema",
    "lower_case_table_names",
    "transaction_isolation",
    "tx_isolation",
    "max_connections",
)
"""Variables ``doctor`` shows (those the server has: MariaDB 10.11 names the isolation
level ``tx_isolation``, MySQL 8 ``transaction_isolation``)."""


class _Server(Dialect):
    """``sessions`` and ``server_report``."""

    def sessions(self, url: DatabaseURL) -> list[str]:
        """``information_schema.PROCESSLIST`` rows whose database is ``url``'s (dbrewind's
        ``GET_LOCK`` connections select no database, so they are not among them)."""
        with _server_connection(url) as conn:
            rows = conn.execute(
                text(
                    "SELECT ID, USER, HOST, COMMAND FROM information_schema.PROCESSLIST "
                    "WHERE DB = :n AND ID <> CONNECTION_ID() ORDER BY ID"
                ),
                {"n": url.database},
            ).all()
        return [
            f"connection {int(i)} of {user} from {host}, {command}"
            for i, user, host, command in rows
        ]

    def server_report(self, conn: Connection) -> ServerReport:
        """``VERSION()`` and the durability variables that decide what a commit waits for."""
        version = str(conn.exec_driver_sql(VERSION_SQL).scalar())
        name = "MariaDB" if _is_mariadb(conn) else "MySQL"
        names = ", ".join(f"'{n}'" for n in _SETTINGS)
        settings = {
            str(key): str(value)
            for key, value in conn.exec_driver_sql(
                f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})"
            )
        }
        ordered = {key: settings[key] for key in sorted(settings)}
        return ServerReport(f"{name} {version}", ordered, _notes(ordered))


def _notes(settings: Mapping[str, str]) -> tuple[str, ...]:
    notes = []
    if settings.get("innodb_flush_log_at_trx_commit") == "1":
        notes.append(
            "innodb_flush_log_at_trx_commit=1: every commit (a transactional test's, a "
            "rewind's) waits for the disk; on a throwaway test server, 2 (or 0) and "
            "sync_binlog=0 make commits and rewinds faster"
        )
    if settings.get("performance_schema", "").upper() == "OFF":
        notes.append(
            "performance_schema is off: the holder of a lease is named by its connection, "
            "without the process id of the run that holds it"
        )
    return tuple(notes)
