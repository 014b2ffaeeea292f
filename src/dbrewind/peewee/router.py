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
from ..dialects._syntax import SqlSyntax, syntax_for
from ..dialects.base import SandboxOps
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
    _PLAIN_HEADS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
    """Statements that start with one of these words (no leading space or comment, as
    ORMs write them) are ordinary statements on every backend: routed without parsing."""

    def __init__(self, backend: Backend, where: str) -> None:
        self.backend: Backend = backend
        self.where = where
        facts = _FACTS.get(backend)
        if facts is None:
            ops = get_dialect(backend).sandbox
            name = ops.quote(self.STATEMENT_SAVEPOINT)
            facts = _FACTS[backend] = (
                syntax_for(backend),
                ops,
                f"SAVEPOINT {name}; ",
                f"RELEASE SAVEPOINT {name}; SAVEPOINT {name}; ",
                f"ROLLBACK TO SAVEPOINT {name}",
                f"RELEASE SAVEPOINT {name}; ",
            )
        (
            self.syntax,
            self._ops,
            self._guard_first,
            self._guard_next,
            self._guard_back,
            self._guard_drop,
        ) = facts
        #: Whether each statement needs its own savepoint to survive an error
        #: (PostgreSQL aborts the whole transaction on any error).
        self.guard = self._ops.statement_guard
        self.open: list[str] = []
        self._counter = 0
        #: Joined guards (:meth:`guard_prefix`): the statement savepoint is open and is
        #: the innermost savepoint, holding the state before the last guarded statement.
        self.guard_open = False

    @property
    def ops(self) -> SandboxOps:
        """The backend's sandbox specifics (:class:`~dbrewind.dialects.base.SandboxOps`)."""
        return self._ops

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

    # the same, joined to the statement in one round trip (drivers that send several
    # statements at once: psycopg2/aiopg, psycopg's client-side-binding cursors)
    def guard_prefix(self) -> str:
        """What to send before a guarded statement, in the same round trip: a new statement
        savepoint, in place of the previous one (released, so nesting stays one deep).

        After it succeeds, call :meth:`guard_done`; after it fails, run
        :meth:`guard_recover`'s statement: the failed statement alone is undone and the
        savepoint stays, holding the state before it.
        """
        return self._guard_next if self.guard_open else self._guard_first

    def guard_done(self) -> None:
        """The guarded statement (and its prefix) ran: the statement savepoint is open."""
        self.guard_open = True

    def guard_recover(self) -> str:
        """After a joined guarded statement failed: the statement that undoes it alone."""
        return self._guard_back

    def guard_lost(self) -> None:
        """The statement savepoint's state is unknown (its recovery failed): open anew."""
        self.guard_open = False

    def before_control(self, statements: tuple[str, ...]) -> str:
        """What to send, joined, before transaction commands that replace or are a guarded
        backend's statement: the open statement savepoint is released before a new
        savepoint, so that it never stays buried under the code's own savepoints.
        (``RELEASE`` and ``ROLLBACK TO`` of an older savepoint end it by themselves.)"""
        if not self.guard_open or not statements:
            return ""
        self.guard_open = False
        if statements and statements[0].lstrip()[:9].upper() == "SAVEPOINT":
            return self._guard_drop
        return ""

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
        head = sql[:6].upper()
        if head in self._PLAIN_HEADS and (
            len(sql) == 6 or not (sql[6].isalnum() or sql[6] in "_$")
        ):
            return _RUN
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
        return _RUN

    def reset(self) -> None:
        """Forget open savepoints (the outer transaction is being rolled back)."""
        self.open.clear()
        self.guard_open = False


_RUN = Route("run")
_FACTS: dict[Backend, tuple[SqlSyntax, SandboxOps, str, str, str, str]] = {}
"""Per backend: its syntax, sandbox specifics and statement-savepoint commands."""
