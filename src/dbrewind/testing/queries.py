"""Capturing the statements the code under test sends: :class:`QueryCapture`.

A capture listens where the application's statements pass: a SQLAlchemy
session's bind (``before_cursor_execute``: each cursor execution once, an
``executemany`` once), or a peewee database's ``execute_sql`` and peewee-async's
``aio_execute_sql``. What is not captured:

* dbrewind's own bookkeeping. Inside the rollback sandboxes the application's
  ``BEGIN``/``COMMIT``/``ROLLBACK`` become ``SAVEPOINT``/``RELEASE``/``ROLLBACK TO``
  statements that dbrewind sends on the driver's connection, below these hooks (and
  savepoints named ``dbrewind_*`` are left out wherever they are seen: a peewee
  capture begun before the sandbox it then runs in sees the sandbox's own).
* The transaction's own begin and end (``BEGIN``, ``START TRANSACTION``,
  ``COMMIT``, ``ROLLBACK``), whoever sends them: SQLAlchemy and peewee on
  PostgreSQL leave them to the driver, peewee on SQLite sends them as
  statements, so counting them would make a count depend on the database and
  on the sandbox. Savepoints the application asks for (``begin_nested()``,
  a nested ``atomic()``) are captured: the code under test sent them.
* The statements of dbrewind's assertion helpers themselves, and the flush of
  pending changes a helper's read triggers, while they run in the block.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from .._sql.classify import transaction_control
from ..dialects._syntax import PORTABLE

__all__ = ["QueryCapture", "QueryCounter", "Source", "helper_running", "sources_of"]

_HELPER = contextvars.ContextVar("dbrewind_testing_helper", default=False)


@contextmanager
def helper_running() -> Iterator[None]:
    """While an assertion helper runs: what it sends is not captured."""
    token = _HELPER.set(True)
    try:
        yield
    finally:
        _HELPER.reset(token)


_SAVEPOINT_KINDS = ("savepoint", "release", "rollback_to")


def _left_out(statement: str) -> bool:
    """The transaction's begin or end, or one of dbrewind's own savepoints (``dbrewind_*``:
    seen when a capture began before the sandbox it then ran in)."""
    control = transaction_control(statement, PORTABLE)
    if control is None:
        return False
    if control.kind in ("begin", "commit", "rollback"):
        return True
    name = (control.name or "").strip('"`[]')
    return control.kind in _SAVEPOINT_KINDS and name.startswith("dbrewind_")


Listener = Callable[[str], None]


class Source:
    """Where statements are seen: :meth:`attach` a listener; call what it returns to detach."""

    def attach(self, listener: Listener) -> Callable[[], None]:  # pragma: no cover - interface
        raise NotImplementedError


class _SQLAlchemySource(Source):
    """A SQLAlchemy Engine or Connection's ``before_cursor_execute``."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def attach(self, listener: Listener) -> Callable[[], None]:
        from sqlalchemy import event

        def hook(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            listener(statement)

        event.listen(self.target, "before_cursor_execute", hook)
        return lambda: event.remove(self.target, "before_cursor_execute", hook)


class _PeeweeHooks:
    """One peewee database's ``execute_sql`` (and ``aio_execute_sql``), wrapped once.

    The wrappers are set on the database object while a capture listens; they pass
    every call on to what was there before (dbrewind's sandbox, when it is active).
    """

    def __init__(self, database: Any) -> None:
        self.database = database
        self.listeners: list[Listener] = []
        self._saved: dict[str, Any] = {}
        self._wrappers: dict[str, Any] = {}

    def _tell(self, sql: Any) -> None:
        for listener in list(self.listeners):
            listener(str(sql))

    def add(self, listener: Listener) -> None:
        self.listeners.append(listener)
        if len(self.listeners) > 1:
            return
        db = self.database
        inner = db.execute_sql

        def execute_sql(sql: Any, *args: Any, **kwargs: Any) -> Any:
            self._tell(sql)
            return inner(sql, *args, **kwargs)

        self._install("execute_sql", execute_sql)
        ainner = getattr(db, "aio_execute_sql", None)
        if ainner is not None:

            async def aio_execute_sql(sql: Any, *args: Any, **kwargs: Any) -> Any:
                self._tell(sql)
                return await ainner(sql, *args, **kwargs)

            self._install("aio_execute_sql", aio_execute_sql)

    def _install(self, name: str, wrapper: Any) -> None:
        db = self.database
        self._saved[name] = db.__dict__.get(name, _MISSING)
        self._wrappers[name] = wrapper
        setattr(db, name, wrapper)

    def remove(self, listener: Listener) -> None:
        self.listeners = [x for x in self.listeners if x is not listener]
        if self.listeners:
            return
        db = self.database
        for name, wrapper in self._wrappers.items():
            if db.__dict__.get(name) is not wrapper:
                continue  # wrapped again since (a sandbox's patch): left, as a pass-through
            saved = self._saved[name]
            if saved is _MISSING:
                del db.__dict__[name]
            else:
                setattr(db, name, saved)
        self._wrappers.clear()
        self._saved.clear()


_MISSING = object()
_peewee_hooks: weakref.WeakKeyDictionary[Any, _PeeweeHooks] = weakref.WeakKeyDictionary()


class _PeeweeSource(Source):
    def __init__(self, database: Any) -> None:
        self.database = database

    def attach(self, listener: Listener) -> Callable[[], None]:
        hooks = _peewee_hooks.get(self.database)
        if hooks is None:
            hooks = _peewee_hooks[self.database] = _PeeweeHooks(self.database)
        hooks.add(listener)
        return lambda: hooks.remove(listener)


def sources_of(target: Any) -> list[Source]:
    """Where the statements of ``target`` (an Engine, a Connection, a peewee database) pass."""
    from sqlalchemy.engine import Connection, Engine

    if isinstance(target, (Engine, Connection)):
        return [_SQLAlchemySource(target)]
    return [_PeeweeSource(target)]


class QueryCapture:
    """The statements the code under test sends while the block runs.

    Use with ``with`` or ``async with``; :attr:`statements` lists them in order
    (see the module docstring for what is left out). Made by
    ``DatabaseAssertions.capture_queries()`` (no expectation),
    ``assert_num_queries(n)`` (exactly ``n``) and ``assert_max_num_queries(n)``
    (at most ``n``): on leaving the block without an exception, a count that
    breaks the expectation fails with the statements listed.
    """

    def __init__(
        self, sources: list[Source], expected: int | None = None, *, at_most: bool = False
    ) -> None:
        self.sources = sources
        self.expected = expected
        self.at_most = at_most
        #: The statements captured, in the order they were sent.
        self.statements: list[str] = []
        self._detach: list[Callable[[], None]] = []

    @property
    def count(self) -> int:
        """How many statements were captured so far."""
        return len(self.statements)

    def __len__(self) -> int:
        return len(self.statements)

    def _listen(self, statement: str) -> None:
        if _HELPER.get() or _left_out(statement):
            return
        self.statements.append(statement)

    def __enter__(self) -> QueryCapture:
        self.statements = []
        listener = self._listen
        self._detach = [source.attach(listener) for source in self.sources]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        detach, self._detach = self._detach, []
        for undo in detach:
            undo()
        if exc_type is None and self.expected is not None:
            self.verify()

    def verify(self) -> None:
        """Fail unless the count meets the expectation; lists the statements."""
        __tracebackhide__ = True
        expected, count = self.expected, self.count
        if expected is None:
            return
        if (count <= expected) if self.at_most else (count == expected):
            return
        what = "at most " if self.at_most else ""
        noun = "query" if expected == 1 else "queries"
        listing = "\n".join(f"  {i}. {s}" for i, s in enumerate(self.statements, 1))
        raise AssertionError(
            f"Expected {what}{expected} {noun}, {count} ran" + (f":\n{listing}" if listing else ".")
        )

    async def __aenter__(self) -> QueryCapture:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.__exit__(exc_type, exc, tb)


QueryCounter = QueryCapture
"""Alias of :class:`QueryCapture` (the same class), kept for existing imports."""
