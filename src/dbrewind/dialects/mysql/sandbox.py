"""The rollback sandbox's MySQL/MariaDB operations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base import OuterTransaction, SandboxOps

__all__ = ["MySQLSandboxOps"]

_SANDBOX_GUARD = ("SAVEPOINT `dbrewind_guard`", "ROLLBACK TO SAVEPOINT `dbrewind_guard`")
_CALL_CHECK = ("SAVEPOINT `dbrewind_call`", "RELEASE SAVEPOINT `dbrewind_call`")


class MySQLSandboxOps(SandboxOps):
    """The rollback sandbox on MySQL/MariaDB (PyMySQL, mysqlclient, aiomysql, asyncmy):
    some statements commit implicitly. Those that say so are refused before they run;
    the server status the driver keeps shows, after each statement, a commit that ended
    the transaction; a savepoint around each ``CALL`` shows one a procedure ran and
    followed with more work (a new transaction). A driver that keeps no status gets a
    guard savepoint under the whole test instead, looked at when the test ends."""

    identifier_quote = "`"
    ended_because = "MySQL/MariaDB commits implicitly before and after some statements"
    refused_because = (
        "MySQL/MariaDB commits implicitly before and after DDL, TRUNCATE, LOCK TABLES and "
        "similar statements"
    )

    unseen_commit_check = _CALL_CHECK

    def begin(self, raw: Any, run: Callable[[str], None]) -> OuterTransaction:
        """``START TRANSACTION``; the guard savepoint only where the driver keeps no
        server status (see :meth:`transaction_probe`)."""
        run("START TRANSACTION")
        if self.transaction_probe(getattr(raw, "driver_connection", None) or raw) is not None:
            return OuterTransaction(explicit=True)
        # implicit commits that no check saw (a procedure's DDL) remove this savepoint
        run(_SANDBOX_GUARD[0])
        return OuterTransaction(explicit=True, guarded=True)

    def transaction_probe(self, driver: Any) -> Callable[[], bool] | None:
        """The server status flag the driver keeps (PyMySQL, aiomysql: ``server_status``)."""
        if hasattr(driver, "server_status"):
            return lambda: bool(driver.server_status & 1)  # SERVER_STATUS_IN_TRANS
        return None

    def session_id(self, driver: Any) -> int | None:
        """The connection (thread) id from the server's greeting: ``thread_id()``
        (PyMySQL, mysqlclient, aiomysql; asyncmy keeps it as an attribute)."""
        value = getattr(driver, "thread_id", None)
        if callable(value):
            value = value()
        return int(value) if value else None

    def outer_lost(self, run: Callable[[str], None]) -> bool:
        """Rolling back to the guard savepoint fails with error 1305 once an implicit
        commit removed it."""
        try:
            run(_SANDBOX_GUARD[1])
        except Exception as exc:
            if not self.savepoint_missing(exc):
                raise
            return True
        return False

    def savepoint_missing(self, error: BaseException) -> bool:
        """MySQL error 1305: the savepoint is gone (an implicit commit removed it)."""
        args: tuple[Any, ...] = getattr(error, "args", ())
        return bool(args) and args[0] == 1305
