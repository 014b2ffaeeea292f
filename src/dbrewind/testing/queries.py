"""Counting the statements a session sends: :class:`QueryCounter`."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ..exceptions import ConfigurationError

__all__ = ["QueryCounter", "_bind_of"]


@dataclass
class QueryCounter:
    """Counts SQL statements sent through one session's bind while the block runs.

    Use with ``with`` (a sync session) or ``async with`` (an async session).
    Each cursor execution counts once (an ``executemany`` is one statement);
    ``SAVEPOINT`` statements count, ``BEGIN``/``COMMIT`` issued by the driver
    do not. When the session is bound to a Connection, only that connection
    is watched; when bound to an Engine, every connection of the engine is.
    On leaving the block without an exception, a count different from
    ``expected`` fails with the statements listed.
    """

    target: Connection | Engine
    expected: int | None
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Statements counted so far."""
        return len(self.statements)

    def _on_execute(self, *args: Any) -> None:
        self.statements.append(str(args[2]))

    def __enter__(self) -> QueryCounter:
        self.statements.clear()
        event.listen(self.target, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        event.remove(self.target, "before_cursor_execute", self._on_execute)
        if exc_type is None and self.expected is not None and self.count != self.expected:
            listing = "\n".join(f"  {i}. {s}" for i, s in enumerate(self.statements, 1))
            raise AssertionError(
                f"Expected {self.expected} quer{'y' if self.expected == 1 else 'ies'}, "
                f"{self.count} ran" + (f":\n{listing}" if listing else ".")
            )

    async def __aenter__(self) -> QueryCounter:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.__exit__(exc_type, exc, tb)


def _bind_of(session: Session) -> Connection | Engine:
    bind = session.get_bind()
    if isinstance(bind, (Connection, Engine)):
        return bind
    raise ConfigurationError(  # pragma: no cover - SQLAlchemy binds are one of the two
        f"Cannot count queries on {bind!r}: the session is bound to neither an Engine "
        "nor a Connection."
    )
