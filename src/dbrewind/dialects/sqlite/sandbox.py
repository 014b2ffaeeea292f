"""The rollback sandbox's SQLite specifics: sqlite3's ``isolation_level`` and ``BEGIN``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from ..base import OuterTransaction, SandboxOps

__all__ = ["SQLiteSandboxOps"]


class SQLiteSandboxOps(SandboxOps):
    """The rollback sandbox on SQLite (sqlite3, aiosqlite): the sandbox issues ``BEGIN``
    itself, and sqlite3's ``isolation_level`` says whether a connection autocommits."""

    def autocommit(self, raw: Any, driver: Any) -> bool:
        """sqlite3's ``isolation_level`` None: autocommit."""
        return raw.isolation_level is None

    def isolation_autocommit(self, level: Any) -> bool:
        """sqlite3's ``isolation_level`` None: autocommit."""
        return level is None

    def begin(self, raw: Any, run: Callable[[str], None]) -> OuterTransaction:
        """``BEGIN``, with sqlite3's own transaction handling off until the sandbox ends."""
        # take control of BEGIN: pysqlite's legacy mode would commit before DDL
        # and breaks SAVEPOINT nesting
        saved = raw.isolation_level
        raw.isolation_level = None

        def restore() -> None:
            raw.isolation_level = saved

        try:
            run("BEGIN")
        except BaseException:
            with suppress(Exception):
                restore()
            raise
        return OuterTransaction(explicit=True, restore=restore)

    def rollback_with(self, driver: Any, then: str) -> Any:
        """sqlite3: ``ROLLBACK`` when a transaction is open, then ``then``: no round trip
        either way, only less Python than the safety net's check through its own
        connection. aiosqlite (its cursors are awaited): ``NotImplemented``."""
        if not isinstance(driver, sqlite3.Connection):
            return NotImplemented
        if driver.in_transaction:
            driver.execute("ROLLBACK")
        try:
            row = driver.execute(then).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def transaction_probe(self, driver: Any) -> Callable[[], bool] | None:
        """sqlite3's (and aiosqlite's) ``in_transaction``."""
        return lambda: bool(driver.in_transaction)

    def blocked_by_write_lock(self, error: BaseException) -> bool:
        """SQLite allows one writer at a time: "database is locked"."""
        return "locked" in str(error)
