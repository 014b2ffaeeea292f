"""The rollback sandbox's PostgreSQL specifics (psycopg, psycopg2, asyncpg)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from ..base import SandboxOps

__all__ = ["PostgreSQLSandboxOps"]


def _psycopg_info(driver: Any) -> Any:
    """psycopg's ``ConnectionInfo`` (``transaction_status``) of ``driver``, or None (asyncpg)."""
    info = getattr(driver, "info", None)
    if info is not None and hasattr(info, "transaction_status"):
        return info
    return None


class PostgreSQLSandboxOps(SandboxOps):
    """The rollback sandbox on PostgreSQL (psycopg, psycopg2, asyncpg): an error aborts
    the transaction, and deferred constraints are checked before the rollback."""

    statement_guard: ClassVar[bool] = True

    def transaction_probe(self, driver: Any) -> Callable[[], bool] | None:
        """psycopg's ``info.transaction_status`` (not IDLE), asyncpg's ``is_in_transaction()``."""
        info = _psycopg_info(driver)
        if info is not None:
            return lambda: info.transaction_status != 0  # IDLE
        if hasattr(driver, "is_in_transaction"):
            return driver.is_in_transaction  # type: ignore[no-any-return]
        return None

    def session_id(self, driver: Any) -> int | None:
        """The backend pid: psycopg's ``info.backend_pid``, psycopg2's
        ``get_backend_pid()``, asyncpg's ``get_server_pid()``; aiopg's
        ``get_backend_pid()`` is a coroutine, and its psycopg2 connection (``raw``)
        answers at once."""
        info = getattr(driver, "info", None)
        pid = getattr(info, "backend_pid", None)
        if pid is None:
            getter = getattr(driver, "get_backend_pid", None) or getattr(
                driver, "get_server_pid", None
            )
            pid = getter() if getter is not None else None
        if inspect.isawaitable(pid):
            getattr(pid, "close", lambda: None)()  # never awaited: no warning
            raw: Any = getattr(driver, "raw", None)
            pid = raw.get_backend_pid() if hasattr(raw, "get_backend_pid") else None
        return int(pid) if pid else None

    def error_aborts(self, driver: Any, error: BaseException) -> bool:
        """psycopg: the transaction status is INERROR; other drivers: the error carries
        a SQLSTATE (the server raised it)."""
        info = _psycopg_info(driver)
        if info is not None:
            return bool(info.transaction_status == 3)  # INERROR
        return bool(getattr(error, "sqlstate", None) or getattr(error, "pgcode", None))

    def check_deferred(
        self,
        driver: Any,
        run: Callable[[str], None],
        before_rollback: str | None,
        then: str | None = None,
    ) -> tuple[BaseException | None, bool, Any]:
        """``SET CONSTRAINTS ALL IMMEDIATE``; with psycopg, ``before_rollback``, the check,
        the ``ROLLBACK`` and ``then`` in one round trip."""
        rolled_back = False
        value: Any = NotImplemented
        try:
            if _psycopg_info(driver) is not None:  # psycopg: all of it and the rollback in one trip
                prologue = f"{before_rollback}; " if before_rollback else ""
                ending = f"{prologue}SET CONSTRAINTS ALL IMMEDIATE; ROLLBACK"
                if then is None:
                    run(ending)
                else:
                    value = _last_value(driver, f"{ending}; {then}")
                rolled_back = True
            else:  # one statement per call (asyncpg prepares what it runs)
                if before_rollback:
                    run(before_rollback)
                run("SET CONSTRAINTS ALL IMMEDIATE")
        except Exception as exc:
            state = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
            if state.startswith("23"):  # integrity constraint violation
                return exc, rolled_back, value
        return None, rolled_back, value

    def rollback_with(self, driver: Any, then: str) -> Any:
        """psycopg: ``ROLLBACK; <then>`` as one simple query (just ``then`` when no
        transaction is open). Other drivers: ``NotImplemented``."""
        info = _psycopg_info(driver)
        if info is None:
            return NotImplemented
        if info.transaction_status == 0:  # idle: the query alone, opening no transaction
            driver.autocommit = True
            try:
                return _last_value(driver, then)
            except Exception:
                return None
            finally:
                driver.autocommit = False
        try:
            return _last_value(driver, f"ROLLBACK; {then}")
        except Exception:
            if info.transaction_status != 0:  # the rollback did not happen either
                raise
            return None


def _last_value(driver: Any, sql: str) -> Any:
    """Run ``sql`` (statements separated by ``;``, no parameters: one simple query) on
    psycopg's connection ``driver``; the first value of the last result with rows."""
    value: Any = None
    with driver.cursor() as cursor:
        cursor.execute(sql)
        while True:
            if cursor.description is not None:
                row = cursor.fetchone()
                value = row[0] if row else None
            if not cursor.nextset():
                break
    return value
