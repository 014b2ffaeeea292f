"""The statement router of the peewee sandboxes: :class:`SavepointRouter` maps the
transaction commands of code under test onto savepoints and decides, per statement,
what to run (a :class:`Route`). It does no I/O, so the sync sandbox
(:class:`~dbrewind.peewee.PeeweeSandbox`) and the async one
(:class:`~dbrewind.peewee_async.AsyncPeeweeSandbox`) share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .._sql import autocommit_setting, commits_implicitly, transaction_control
from .._url import Backend
from ..dialects import get_dialect
from ..dialects._syntax import syntax_for
from ..exceptions import SandboxBrokenError, SandboxError

__all__ = ["Route", "SavepointRouter"]


@dataclass(frozen=True)
class Route:
    """What to run for one statement the code under test sent."""

    kind: Literal["run", "control", "replace"]
    """``run``: the statement itself, under a statement savepoint when
    :attr:`SavepointRouter.guard` is set; ``control``: the statement itself, a
    savepoint command never wrapped; ``replace``: :attr:`statements` instead."""
    statements: tuple[str, ...] = ()


class SavepointRouter:
    """Maps the transaction commands of code under test onto savepoints (no I/O).

    ``BEGIN`` / ``START TRANSACTION`` open a savepoint; ``COMMIT`` / ``END``
    release the innermost one opened that way and ``ROLLBACK`` / ``ABORT``
    roll back to it; with none open they do nothing (as in autocommit mode).
    Savepoint commands pass through. Commands that would end the outer
    transaction are refused with :class:`~dbrewind.exceptions.SandboxError`.
    """

    STATEMENT_SAVEPOINT = "dbrewind_stmt"

    def __init__(self, backend: Backend, where: str) -> None:
        self.backend: Backend = backend
        self.syntax = syntax_for(backend)
        self.where = where
        self._ops = get_dialect(backend).sandbox
        #: Whether each statement needs its own savepoint to survive an error
        #: (PostgreSQL aborts the whole transaction on any error).
        self.guard = self._ops.statement_guard
        self.open: list[str] = []
        self._counter = 0

    def quote(self, name: str) -> str:
        """Quote an identifier for this backend."""
        return self._ops.quote(name)

    # statements run around a guarded statement
    def guard_begin(self) -> str:
        return f"SAVEPOINT {self.quote(self.STATEMENT_SAVEPOINT)}"

    def guard_release(self) -> str:
        return f"RELEASE SAVEPOINT {self.quote(self.STATEMENT_SAVEPOINT)}"

    def guard_undo(self) -> tuple[str, str]:
        name = self.quote(self.STATEMENT_SAVEPOINT)
        return (f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}")

    def _refuse(
        self, sql: str, why: str, fix: str, kind: type[SandboxError] = SandboxError
    ) -> SandboxError:
        shown = " ".join(sql.split())[:80]
        return kind(f"dbrewind's sandbox on {self.where} refused {shown!r}: {why} {fix}")

    def _open(self) -> str:
        self._counter += 1
        name = f"dbrewind_tx_{self._counter}"
        self.open.append(name)
        return f"SAVEPOINT {self.quote(name)}"

    def _commit(self, chain: bool) -> tuple[str, ...]:
        if not self.open:
            return ()
        out = [f"RELEASE SAVEPOINT {self.quote(self.open.pop())}"]
        if chain:
            out.append(self._open())
        return tuple(out)

    def _rollback(self, chain: bool) -> tuple[str, ...]:
        if not self.open:
            return ()
        name = self.quote(self.open.pop())
        out = [f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}"]
        if chain:
            out.append(self._open())
        return tuple(out)

    def route(self, sql: str) -> Route:
        """Decide what to run for ``sql``; updates the open-savepoint stack."""
        control = transaction_control(sql, self.syntax)
        if control is not None:
            if control.kind == "begin":
                return Route("replace", (self._open(),))
            if control.kind == "commit":
                return Route("replace", self._commit(control.chain))
            if control.kind == "rollback":
                return Route("replace", self._rollback(control.chain))
            if control.kind == "two_phase":
                raise self._refuse(
                    sql,
                    "two-phase commit cannot run inside the test's outer transaction.",
                    "Test that code with dbrewind's clean strategy (real commits, cleaned after).",
                )
            return Route("control")  # SAVEPOINT, RELEASE, ROLLBACK TO
        if autocommit_setting(sql, self.syntax) is not None:
            raise self._refuse(
                sql,
                "changing autocommit would commit the test's outer transaction.",
                "Use database.atomic() for a transaction instead.",
                SandboxBrokenError,
            )
        if commits_implicitly(sql, self.syntax):
            raise self._refuse(
                sql,
                "MySQL commits the open transaction before this statement, which would "
                "end the test's sandbox and keep its writes.",
                "Create tables before entering the sandbox, use "
                "Model.delete() instead of TRUNCATE, or test this code with dbrewind's "
                "clean strategy.",
                SandboxBrokenError,
            )
        return Route("run")

    def reset(self) -> None:
        """Forget open savepoints (the outer transaction is being rolled back)."""
        self.open.clear()
