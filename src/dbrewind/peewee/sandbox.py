"""The synchronous peewee sandbox, :class:`PeeweeSandbox` (also ``TransactionTestCase``),
and what it shares with the async one: :class:`SandboxOptions` (the options, the safety
net after each block, the leak report) and :class:`_Patches` (attributes set on the
database object for the block, reverted after it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import ContextDecorator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import peewee

from ..dialects import RewindResult, get_dialect
from ..dialects.base import SandboxOps
from ..exceptions import SandboxError
from ..rewinder import Rewinder
from ..sandbox import LeakCallback
from .databases import (
    _lost,
    _wrap_errors,
    backend_of,
    database_url,
    safety_net_database,
    tracking_rewinder,
)
from .router import SavepointRouter

if TYPE_CHECKING:
    from .._url import DatabaseURL
    from ..provision import Database
    from ..provision.lockwatch import Watched

__all__ = ["PeeweeSandbox", "SandboxOptions", "TransactionTestCase", "_Patches"]

logger = logging.getLogger("dbrewind")


# ------------------------------------------------------------------- patching
class _Patches:
    """Instance attributes set on an object and reverted later, in reverse order."""

    _missing = object()

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []

    def set(self, target: object, name: str, value: object) -> None:
        old = target.__dict__.get(name, self._missing)
        self._undo.append((target, name, old))
        setattr(target, name, value)

    def revert(self) -> None:
        while self._undo:
            target, name, old = self._undo.pop()
            if old is self._missing:
                target.__dict__.pop(name, None)
            else:
                setattr(target, name, old)


# -------------------------------------------------------------------- sandbox
_HELD: dict[DatabaseURL, Database] = {}
"""The lifecycle's database of each URL a block took up (until it is released)."""


class SandboxOptions:
    """What the sync and async peewee sandboxes share: their options and the leak report."""

    def __init__(
        self,
        database: Any,
        *,
        rewinder: Rewinder | None,
        safety_net: bool,
        on_leak: LeakCallback | None,
    ) -> None:
        self.database: Any = database
        self.rewinder = rewinder
        self._given_rewinder = rewinder is not None
        self._database: Database | None = None
        self.safety_net = safety_net
        self.on_leak = on_leak
        #: What the safety net rewound after the last block, when writes escaped it.
        self.leaked: RewindResult | None = None
        self._router: SavepointRouter | None = None
        self._patches = _Patches()
        self._session_id: int | None = None
        self._watched: Watched | None = None

    @property
    def session_id(self) -> int | None:
        """The server's id of the session the block's statements run on (PostgreSQL's
        backend pid, MySQL's connection id) while the block runs; None on SQLite or
        when the driver cannot say."""
        return self._session_id

    def _watch_locks(self, raw: Any, what: str, fix: str, ops: SandboxOps | None = None) -> None:
        """The block began on the driver connection ``raw``: watch for other connections'
        statements that wait on its locks (see :meth:`Database.watch_locks`); ``ops``:
        the backend's sandbox specifics, when the caller has them at hand."""
        if ops is None:
            ops = get_dialect(backend_of(self.database)).sandbox
        self._session_id = ops.session_id(raw)
        if self._database is not None:
            self._watched = self._database.watch_locks(self, what, fix)

    def _unwatch_locks(self) -> list[str]:
        """Stop watching (the block ends): the waits found and cancelled, one message each."""
        watched, self._watched = self._watched, None
        self._session_id = None
        if self._database is None:
            return []
        return self._database.unwatch_locks(watched, report=False)

    @staticmethod
    def _fail_lock_waits(found: list[str]) -> None:
        """Fail the block for the waits :meth:`_unwatch_locks` found."""
        if found:
            raise SandboxError("\n".join(found))

    def _take_safety_net(self) -> None:
        """Choose this block's safety net: the given Rewinder, the lifecycle's, or none."""
        if self._take_safety_net_at_once():
            return
        if self.rewinder is not None and self._given_rewinder:
            self.rewinder = tracking_rewinder(self.database, self.rewinder)
            return
        url = database_url(self.database)
        self._database = safety_net_database(self.database)
        self.rewinder = self._database.rewinder
        _HELD[url] = self._database

    def _take_safety_net_at_once(self) -> bool:
        """:meth:`_take_safety_net` when it needs no I/O: no safety net, or the lifecycle's
        database an earlier block took up (a suite makes a database object per test, and
        the lifecycle's is the same for all). False when the I/O is still to do."""
        self._database = None
        if not self.safety_net:
            return True
        url = database_url(self.database)
        if self.rewinder is None and url.is_memory:
            return True  # another connection sees another database: nothing can escape
        if self._given_rewinder:
            return False
        held = _HELD.get(url)
        if held is None or held.released:
            return False
        self._database = held
        self.rewinder = held.rewinder
        return True

    def _after_block(self) -> None:
        """The safety net after the block: rewind what escaped it, and say so."""
        if not self.safety_net:
            return
        rewinder = self.rewinder
        recoveries = rewinder.recoveries if rewinder is not None else 0
        if self._database is not None:
            if self._database.safety_net:
                self._report(self._database.after_test())
        elif self.rewinder is not None:
            self._report(self.rewinder.rewind())
        if rewinder is not None and rewinder.recoveries != recoveries:
            # the server closed dbrewind's connection (a restart, a failover...): say so
            logger.warning("%s", rewinder.last_recovery)
            notes = self._database.notes if self._database is not None else None
            if notes is not None and rewinder.last_recovery not in notes:
                notes.append(rewinder.last_recovery)  # the pytest plugin's summary shows it

    def _report(self, result: RewindResult) -> None:
        """Record and announce what the safety net rewound (nothing when clean)."""
        if result.clean:
            return
        self.leaked = result
        assert self.rewinder is not None
        logger.warning(
            "Writes escaped the rollback sandbox on %s and were rewound: %s",
            self.rewinder.url.display(),
            ", ".join(result.tables + result.created_tables),
        )
        if self.on_leak is not None:
            self.on_leak(result)


class PeeweeSandbox(SandboxOptions, ContextDecorator):
    """Run a block (or, as a decorator, a function) in a rollback sandbox on ``database``.

    :param database: a peewee ``SqliteDatabase``, ``PostgresqlDatabase`` or
        ``MySQLDatabase`` (pooled variants included).
    :param rewinder: the :class:`~dbrewind.Rewinder` to check for escaped
        writes; by default one is built from the database's connection
        parameters (see :func:`tracking_rewinder`).
    :param safety_net: set ``False`` to run without tracking: nothing is
        installed, escaped writes are neither cleaned nor reported.
    :param on_leak: called with the :class:`~dbrewind.RewindResult` when
        writes escaped the sandbox and were rewound.

    All statements of the entering thread share its one connection; with a
    ``thread_safe=False`` database every thread shares it and statements are
    serialised. Other threads of a thread-safe database use their own
    connections: their commits are real, and the safety net rewinds them.

    A statement of another connection that waits more than a few seconds on a
    lock the block holds (it would wait for the block's end while the block
    waits for it) is cancelled on the server, and leaving the block raises
    :class:`~dbrewind.exceptions.SandboxError` naming both sides (see
    :mod:`dbrewind.provision.lockwatch`; only with the lifecycle's safety net).

    ``TransactionTestCase`` is another name for this class (the name of
    peewee-async's testing helper, whose drop-in is
    :class:`dbrewind.peewee_async.AsyncPeeweeSandbox`).
    """

    def __init__(
        self,
        database: peewee.Database,
        *,
        rewinder: Rewinder | None = None,
        safety_net: bool = True,
        on_leak: LeakCallback | None = None,
    ) -> None:
        super().__init__(database, rewinder=rewinder, safety_net=safety_net, on_leak=on_leak)
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._opened = False
        self._active = False

    def __repr__(self) -> str:
        return f"PeeweeSandbox({self.database!r})"

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> PeeweeSandbox:
        if self._active:
            raise SandboxError(
                f"{self!r} is already active: it cannot be entered twice at once. Nest "
                "database.atomic() blocks inside it instead."
            )
        db = self.database
        self._take_safety_net()
        self.leaked = None
        where = database_url(db).display()
        if db.in_transaction():
            raise SandboxError(
                f"{where} has a transaction open on this thread: enter PeeweeSandbox "
                "before opening transactions, not inside database.atomic()."
            )
        self._router = SavepointRouter(backend_of(db), where)
        self._opened = db.connect(reuse_if_open=True)
        try:
            try:
                with _wrap_errors:
                    db.cursor().execute("BEGIN")
            except Exception:
                if self._opened:
                    raise
                # the connection this thread kept open was closed by the server meanwhile
                # (a restart, a failover, an idle-connection reaper): once more on a new one
                with contextlib.suppress(Exception):
                    db.close()
                db.connect(reuse_if_open=True)
                with _wrap_errors:
                    db.cursor().execute("BEGIN")
        except BaseException:
            if self._opened:
                db.close()
            raise
        self._owner = threading.get_ident()
        self._active = True
        self._install_patches()
        self._watch_locks(db.connection(), _WHAT, _FIX)
        logger.debug("sandbox on %s, safety net %r", where, self.rewinder)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db = self.database
        found = self._unwatch_locks()
        try:
            self._patches.revert()
            db._state.transactions.clear()
            try:
                with _wrap_errors:
                    db.cursor().execute("ROLLBACK")
            except Exception:
                if not _lost(db):
                    raise
                # the server closed the connection during the test, rolling everything
                # back itself: close what is left of it (the next use reconnects)
                with contextlib.suppress(Exception):
                    db.close()
            finally:
                if self._router is not None:
                    self._router.reset()
                if self._opened and not db.is_closed():
                    db.close()
        finally:
            self._active = False
            self._owner = None
            self._after_block()
        self._fail_lock_waits(found)

    # ----------------------------------------------------------------- patches
    def _mine(self) -> bool:
        return not self.database.thread_safe or threading.get_ident() == self._owner

    def _install_patches(self) -> None:
        db = self.database
        cls = type(db)
        original_execute_sql = db.execute_sql

        def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            if not self._mine():
                return original_execute_sql(sql, params, *args, **kwargs)
            return self._execute(original_execute_sql, sql, params)

        def begin(*args: Any, **kwargs: Any) -> None:
            if not self._mine():
                cls.begin(db, *args, **kwargs)
                return
            execute_sql("BEGIN")

        def commit(*args: Any, **kwargs: Any) -> Any:
            if not self._mine():
                return cls.commit(db, *args, **kwargs)
            return execute_sql("COMMIT")

        def rollback(*args: Any, **kwargs: Any) -> Any:
            if not self._mine():
                return cls.rollback(db, *args, **kwargs)
            return execute_sql("ROLLBACK")

        def transaction(*args: Any, **kwargs: Any) -> Any:
            # Nested transaction() blocks become savepoints (peewee merges them).
            if self._mine() and db.transaction_depth() > 0:
                return db.savepoint()
            return cls.transaction(db, *args, **kwargs)

        def close() -> bool:
            if self._mine():
                return False  # the sandbox's connection stays open until the block ends
            return bool(cls.close(db))

        def connect(reuse_if_open: bool = False) -> bool:
            if self._mine():
                return False
            return bool(cls.connect(db, reuse_if_open))

        for name, value in {
            "execute_sql": execute_sql,
            "begin": begin,
            "commit": commit,
            "rollback": rollback,
            "transaction": transaction,
            "close": close,
            "connect": connect,
        }.items():
            self._patches.set(db, name, value)

    def _execute(self, run: Callable[..., Any], sql: str, params: Any) -> Any:
        router = self._router
        assert router is not None
        with self._lock:
            route = router.route(sql)
            if route.kind == "replace":
                cursor = None
                for statement in route.statements:
                    cursor = run(statement)
                return cursor if cursor is not None else self.database.cursor()
            if route.kind == "control" or not router.guard:
                return run(sql, params)
            run(router.guard_begin())
            try:
                cursor = run(sql, params)
            except Exception:
                for statement in router.guard_undo():
                    run(statement)
                raise
            run(router.guard_release())
            return cursor


_WHAT = "where the peewee database's queries on the thread that entered it run"
_FIX = (
    "run that query through the sandboxed peewee database on the test's own thread (another "
    "thread of a thread-safe database has a connection of its own), or run that test "
    "without the sandbox, committing for real, and let dbrewind.Rewinder put the tables "
    "back after it."
)

TransactionTestCase = PeeweeSandbox
"""Alias of :class:`PeeweeSandbox` (the same class), kept for existing imports."""
