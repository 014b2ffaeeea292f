"""The machinery under :mod:`dbrewind.sandbox`: one real connection, a savepoint stack, proxies.

While a sandbox is active, the engine's pool is replaced by a :class:`SandboxPool`.
Every checkout from it gets a fresh :class:`ProxyConnection`: a DB-API connection
look-alike that runs its statements on the one real connection holding the
outer transaction. Each proxy keeps its own transaction as a chain of
savepoints on a shared stack (:class:`SandboxState`):

* the first statement of a transaction opens a savepoint (or adopts a clean,
  finished one on top of the stack, at no cost);
* ``commit()`` releases it (no SQL when the transaction only read, and
  deferred while another connection's savepoint sits above it);
* ``rollback()`` rolls back to the first of its savepoints it wrote in (no
  SQL when it only read), so work other connections committed in between
  survives whenever that is possible on one connection;
* ``SAVEPOINT``/``RELEASE``/``ROLLBACK TO`` statements (``begin_nested``) and
  textual ``BEGIN``/``COMMIT``/``ROLLBACK`` (``AND CHAIN`` too) are mapped onto
  the same stack, and two-phase commit commands are refused;
* on PostgreSQL a failed statement rolls back to the innermost savepoint, so
  the connection stays usable;
* after every statement a local (no round trip) check confirms the outer
  transaction still exists; an implicit commit raises
  :class:`~dbrewind.exceptions.SandboxBrokenError`.

What differs per database (how the outer transaction begins, the driver's
state that says it is intact, which errors abort it) is the dialect's
:class:`~dbrewind.dialects.SandboxOps` (``Dialect.sandbox``).

All work on the real connection is serialised: a reentrant thread lock for
sync engines, a greenlet-aware lock for asyncio engines. An asyncio sandbox
used from another thread (its own event loop) runs each operation on the
sandbox's loop, where the connection lives.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool, StaticPool
from sqlalchemy.util.concurrency import await_, in_greenlet

from .._backends import backend_named
from .._sql import Control, commits_implicitly, is_read, may_commit_unseen, transaction_control
from ..dialects import OuterTransaction, SandboxOps, get_dialect
from ..dialects._syntax import syntax_for
from ..exceptions import SandboxBrokenError, SandboxError
from .proxies import ProxyConnection, SandboxPool

__all__ = ["HOME_TIMEOUT", "SandboxState"]

_NEW, _ACTIVE, _ENDING, _CLOSED = range(4)

HOME_TIMEOUT = 60.0
"""Seconds a statement from another thread waits for the sandbox's event loop."""


def _shorten(statement: str, limit: int = 120) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Entry:
    """One savepoint on the real connection."""

    __slots__ = ("alive", "owner", "seq", "sql", "wrote")

    def __init__(self, sql: tuple[str, str, str], owner: ProxyConnection, seq: int) -> None:
        self.sql = sql  # (SAVEPOINT x, RELEASE SAVEPOINT x, ROLLBACK TO SAVEPOINT x)
        self.owner: ProxyConnection | None = owner  # None once its transaction ended
        self.seq = seq  # SandboxState.write_seq when the database was last at this savepoint
        self.wrote = False  # its owner wrote while this was the owner's current savepoint
        self.alive = True  # still exists in the database


class _GreenletLock:
    """A reentrant lock for code running in SQLAlchemy's asyncio greenlets.

    Tasks take turns; the holder may re-enter. Waiting never blocks the event
    loop: it awaits a future that the releasing holder resolves.
    """

    def __init__(self) -> None:
        self._owner: object | None = None
        self._count = 0
        self._waiters: deque[Any] = deque()

    def __enter__(self) -> None:
        from greenlet import getcurrent  # type: ignore[import-untyped]

        me = getcurrent()
        if self._owner is me:
            self._count += 1
            return
        while self._owner is not None:
            import asyncio

            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await_(fut)
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        self._owner = me
        self._count = 1

    def __exit__(self, *exc: object) -> None:
        self._count -= 1
        if self._count:
            return
        self._owner = None
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                break


class SandboxState:
    """The state of one active sandbox: the real connection and its savepoint stack."""

    def __init__(self, engine: Engine, *, is_async: bool, url_display: str) -> None:
        self.engine = engine
        self.is_async = is_async
        self.url_display = url_display
        dialect_name = engine.dialect.name
        known = backend_named(dialect_name)
        self.backend = known or dialect_name
        #: A database dbrewind supports; ``ops`` and ``implicit_commits`` are its dialect's.
        self.supported = known is not None
        dialect = get_dialect(known) if known is not None else None
        self.ops: SandboxOps = dialect.sandbox if dialect is not None else SandboxOps()
        self.implicit_commits = dialect is not None and dialect.capabilities.implicit_commits
        self.syntax = syntax_for(self.backend)
        self.lock: Any = _GreenletLock() if is_async else threading.RLock()
        self.stack: list[_Entry] = []
        self.write_seq = 0
        self.wrote_any = False
        self.used = False
        self.state = _NEW
        self.broken: str | None = None
        self.broken_reported = False
        self.broken_ran = True
        self.thread = threading.get_ident()
        self.loop: Any = None  # asyncio: the event loop the real connection belongs to
        self._quote = engine.dialect.identifier_preparer.quote_identifier
        self._names: list[tuple[str, str, str]] = []
        self._original_pool: Pool | None = None
        self.pool: SandboxPool | None = None
        #: Other engines routed here (:meth:`route`), with the pools they had.
        self._routed: list[tuple[Engine, Pool, SandboxPool]] = []
        self._fairy: Any = None
        self.raw: Any = None
        self._explicit = False
        self._outer: OuterTransaction | None = None
        self._in_tx: Callable[[], bool] | None = None
        self.proxies = 0
        self.interrupted = False
        self._rolled_back = False
        self.default_autocommit = False
        self.last_statement = ""
        #: SQL to run before the final rollback when the test wrote (see
        #: Dialect.sandbox_rollback_sql): e.g. put PostgreSQL sequences back.
        self.before_rollback: str | None = None
        #: A query run right after the final rollback, in its round trip where the
        #: driver allows (Dialect.sandbox_receipt_sql): true when nothing outside the
        #: sandbox left the database dirty.
        self.receipt_sql: str | None = None
        #: Its value (None when it was not run, or failed).
        self.receipt: Any = None

    # ------------------------------------------------------------ lifecycle
    @property
    def closed(self) -> bool:
        """Whether the sandbox has ended: its real connection went back to the pool."""
        return self.state == _CLOSED

    def start(self) -> None:
        """Take one real connection, open the outer transaction, route the pool to it."""
        if self.state != _NEW:
            raise SandboxError(
                f"This sandbox on {self.url_display} was already started; a sandbox is used "
                "once. Create a new Sandbox for each test."
            )
        original = self.engine.pool
        if isinstance(original, SandboxPool):
            raise SandboxError(
                f"The engine for {self.url_display} is already inside an active sandbox. "
                "Stop that sandbox first; sandboxes on one engine do not nest "
                "(use begin_nested() for nested transactions)."
            )
        if isinstance(original, StaticPool):
            # one shared connection (in-memory SQLite): use it without a second checkout
            self.raw = original.connection.get_connection()
        else:
            try:
                self._fairy = original.connect()
            except Exception as exc:
                failure = self._connect_error(exc)
                if failure is None:
                    raise
                raise failure from exc
            self.raw = self._fairy.dbapi_connection
        try:
            self._begin_outer()
        except BaseException:
            self._give_back(ok=False)
            raise
        if self.is_async:
            import asyncio

            self.loop = asyncio.get_running_loop()
        self._original_pool = original
        self.pool = SandboxPool.over(self, original)
        self.engine.pool = self.pool
        self.state = _ACTIVE

    def route(self, engine: Engine) -> None:
        """Route another engine's checkouts into this sandbox until it stops.

        The engine must use the same DB-API driver as the sandbox's own (its SQL
        runs on the sandbox's real connection); what it points at does not matter.
        """
        if self.state != _ACTIVE:
            raise SandboxError(f"The sandbox on {self.url_display} is not active.")
        if engine is self.engine or any(e is engine for e, _, _ in self._routed):
            return
        ours, theirs = self.engine.dialect, engine.dialect
        if (theirs.name, theirs.driver) != (ours.name, ours.driver):
            raise SandboxError(
                f"Cannot route the engine on {engine.url.drivername} into the sandbox on "
                f"{self.engine.url.drivername}: its statements would run on a connection of "
                "another driver. Give the test database's URL the same driver as the "
                f"application's engine (e.g. {engine.url.drivername}://...)."
            )
        original = engine.pool
        if isinstance(original, SandboxPool):
            raise SandboxError(
                f"The engine on {engine.url.drivername} is already inside an active sandbox."
            )
        pool = SandboxPool.over(self, original)
        engine.pool = pool
        self._routed.append((engine, original, pool))

    def _connect_error(self, error: Exception) -> Exception | None:
        """The dbrewind error for a failed first connect of the engine, as its own engines give."""
        if not self.supported:
            return None
        from .._url import DatabaseURL
        from ..dialects.engines import connect_error

        return connect_error(DatabaseURL(self.engine.url, self.backend), error)  # type: ignore[arg-type]

    def _driver(self) -> Any:
        getter = getattr(self.raw, "driver_connection", None)
        return getter if getter is not None else self.raw

    def _begin_outer(self) -> None:
        if not self.supported:
            raise SandboxError(
                f"The rollback sandbox does not support the '{self.engine.dialect.name}' "
                f"database ({self.url_display}); dbrewind supports sqlite, postgresql and "
                "mysql/mariadb."
            )
        raw = self.raw
        driver = self._driver()
        self.default_autocommit = self.ops.autocommit(raw, driver)
        self._outer = self.ops.begin(raw, self.sql)
        self._explicit = self._outer.explicit
        self._in_tx = self.ops.transaction_probe(driver)

    def begin_ending(self) -> None:
        """From now on, ending a proxy's transaction emits no SQL (all is rolled back next)."""
        if self.state == _ACTIVE:
            self.state = _ENDING

    def stop(self) -> BaseException | None:
        """Check deferred constraints, roll everything back, restore the engine.

        Returns the deferred-constraint error when one would fail at COMMIT
        (after cleaning up; the caller raises it).
        """
        if self.state in (_NEW, _CLOSED):
            return None
        self.begin_ending()
        deferred: BaseException | None = None
        ok = False
        try:
            with self.lock:
                if not self.interrupted:
                    self._check_outer_transaction()
                    deferred = self._check_deferred()
                if self.raw is not None and not self._rolled_back:
                    ask = self._receipt_wanted()
                    value: Any = NotImplemented
                    if ask is not None:
                        value = self.ops.rollback_with(self._driver(), ask)
                    if value is not NotImplemented:
                        self.receipt = value
                    elif self._explicit:
                        self.sql("ROLLBACK")
                    else:
                        self.raw.rollback()
                ok = True
        except Exception:
            # the connection is unusable (an interrupted query): closing it below
            # makes the server roll back all the same
            ok = False
        finally:
            self._restore()
            self._give_back(ok=ok)
            self.state = _CLOSED
        return deferred

    def _check_outer_transaction(self) -> None:
        expected = self._explicit or self.used
        gone = self._in_tx is not None and expected and not self._in_tx()
        guarded = self._outer is not None and self._outer.guarded
        if self.broken is None and not gone and guarded and self.ops.outer_lost(self.sql):
            gone = True
        if self.broken is None and gone:
            self.broken = f"a statement up to {_shorten(self.last_statement)!r}"

    def _check_deferred(self) -> BaseException | None:
        """Check deferred constraints now, as COMMIT would (the dialect's check: PostgreSQL)."""
        if not self.wrote_any or self.broken is not None:
            return None
        error, self._rolled_back, value = self.ops.check_deferred(
            self._driver(), self.sql, self.before_rollback, self._receipt_wanted()
        )
        if value is not NotImplemented:
            self.receipt = value
        return error

    def _receipt_wanted(self) -> str | None:
        """The receipt query, when its answer can be trusted: the sandbox ended normally
        (not broken, not interrupted) on a sync connection."""
        if self.receipt_sql is None or self.is_async or self.interrupted or self.broken:
            return None
        return self.receipt_sql

    def _restore(self) -> None:
        if self.pool is not None:
            self.pool.reclaim()
        if self._original_pool is not None:
            self.engine.pool = self._original_pool
            self._original_pool = None
        for engine, original, pool in reversed(self._routed):
            pool.reclaim()
            engine.pool = original
        self._routed.clear()
        for entry in self.stack:
            entry.alive = False
        self.stack.clear()

    def _give_back(self, *, ok: bool) -> None:
        raw, fairy = self.raw, self._fairy
        self.raw = self._fairy = None
        if raw is None:
            return
        restore = self._outer.restore if self._outer is not None else None
        if restore is not None:  # what opening the outer transaction changed (SQLite)
            try:
                restore()
            except Exception:
                ok = False
        if fairy is None:
            if not ok:
                with contextlib.suppress(Exception):
                    raw.rollback()
            return
        if ok:
            checkin = getattr(fairy, "_checkin", None)
            if checkin is not None:
                checkin(transaction_was_reset=True)
            else:
                fairy.close()
        else:
            # the state of the connection is unknown: close it (the server rolls back)
            fairy.invalidate()
            fairy.close()

    # ----------------------------------------------------------- raw access
    def sql(self, statement: str) -> None:
        cursor = self.raw.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()

    def savepoint_sql(self, statement: str) -> None:
        """Run a savepoint statement; a vanished savepoint means the sandbox broke."""
        try:
            self.sql(statement)
        except Exception as exc:
            if self.ops.savepoint_missing(exc):
                self._break(self.last_statement, ran=True)
            raise

    def _names_for(self, depth: int) -> tuple[str, str, str]:
        while len(self._names) <= depth:
            name = self._quote(f"dbrewind_sp{len(self._names)}")
            self._names.append(
                (f"SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}", f"ROLLBACK TO SAVEPOINT {name}")
            )
        return self._names[depth]

    # ------------------------------------------------------ the proxies' API
    def foreign(self) -> bool:
        """An asyncio sandbox used from another thread (e.g. a live server with its own loop)."""
        return self.is_async and self.loop is not None and threading.get_ident() != self.thread

    def run_home(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the sandbox's own event loop, where its connection lives, and wait.

        The calling thread's event loop keeps running meanwhile. The test must
        not block its own loop while waiting for that thread (a synchronous HTTP
        call from an async test): the statement could then never run.
        """
        import asyncio

        from sqlalchemy.util.concurrency import greenlet_spawn

        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(greenlet_spawn(fn, *args), self.loop)
        try:
            if in_greenlet():
                return await_(asyncio.wait_for(asyncio.wrap_future(future), HOME_TIMEOUT))
            return future.result(HOME_TIMEOUT)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            future.cancel()
            raise SandboxError(
                f"A statement from another thread waited {HOME_TIMEOUT:.0f}s for the event loop "
                f"that owns the sandbox on {self.url_display}. Is the test blocking its loop "
                "while that thread works (a synchronous HTTP call in an async test)? Await an "
                "async client or asyncio.to_thread() instead."
            ) from exc

    def check_usable(self, statement: str) -> None:
        if self.state == _ACTIVE and self.broken is None:
            return
        if self.broken is not None:
            raise SandboxBrokenError(self._broken_message(later=True))
        what = f" (statement {_shorten(statement)!r})" if statement else ""
        raise SandboxError(
            f"A connection to {self.url_display} was used after its sandbox ended{what}. "
            "Close connections and sessions before the test ends, or open new ones after it."
        )

    def execute(
        self, proxy: ProxyConnection, cursor: Any, statement: str, args: tuple[Any, ...], many: bool
    ) -> Any:
        """Run one statement through the sandbox; returns what the driver's call returned.

        Drivers differ there (PyMySQL returns the affected row count, which
        SQLAlchemy's MySQL dialect reads after ``executemany``), so it is
        passed through. ``None`` for transaction control the sandbox emulated.
        """
        if self.foreign():
            return self.run_home(self.execute, proxy, cursor, statement, args, many)
        self.check_usable(statement)
        control = transaction_control(statement, self.syntax)
        if control is not None:
            if control.kind == "two_phase":
                raise SandboxError(
                    f"The rollback sandbox on {self.url_display} refused to run "
                    f"{_shorten(statement)!r}: two-phase commit cannot run inside the "
                    "sandbox's outer transaction. Run this test with the clean strategy "
                    "instead (@pytest.mark.dbrewind(transactional=True), the "
                    "transactional_db fixture, or a dbrewind.Rewinder)."
                )
            self._control(proxy, control, cursor, statement, args)
            return None
        if self.implicit_commits and commits_implicitly(statement, self.syntax):
            self._break(statement, ran=False)
        with self.lock:
            self._ensure(proxy)
            self.used = True
            self.last_statement = statement
            check = self._unseen_commit_check(statement)
            if check is not None:
                self.savepoint_sql(check[0])
            try:
                if many:
                    result = cursor.executemany(statement, *args)
                else:
                    result = cursor.execute(statement, *args)
            except BaseException as exc:
                if check is not None and isinstance(exc, Exception):
                    self.savepoint_sql(check[1])
                self._after_error(proxy, exc)
                raise
            if check is not None:
                self.savepoint_sql(check[1])
            if not is_read(statement, self.syntax):
                self.write_seq += 1
                self.wrote_any = True
                proxy.chain[-1].wrote = True
            proxy.seen = self.write_seq
            if self._in_tx is not None and not self._in_tx():
                self._break(statement, ran=True)
            if proxy.autocommit_mode():
                self.commit(proxy)
            return result

    def _unseen_commit_check(self, statement: str) -> tuple[str, str] | None:
        """The savepoint statements around ``statement`` when it may commit and begin
        again unseen and no guard savepoint sits under the test (MySQL's ``CALL``)."""
        check = self.ops.unseen_commit_check
        if check is None or (self._outer is not None and self._outer.guarded):
            return None
        return check if may_commit_unseen(statement, self.syntax) else None

    def _ensure(self, proxy: ProxyConnection) -> None:
        """Make the proxy's own savepoint the innermost one, opening or adopting one."""
        chain = proxy.chain
        stack = self.stack
        if chain:
            if stack and stack[-1] is chain[-1] and proxy.seen == self.write_seq:
                return
            if not chain[-1].alive:
                proxy.chain = chain = [e for e in chain if e.alive]
        if stack:
            top = stack[-1]
            if top.owner is None and top.seq == self.write_seq:
                # a finished savepoint, and nothing was written since it was set: reuse it
                top.owner = proxy
                top.wrote = False
                chain.append(top)
                proxy.seen = self.write_seq
                return
        self._push(proxy)

    def _push(self, proxy: ProxyConnection) -> _Entry:
        entry = _Entry(self._names_for(len(self.stack)), proxy, self.write_seq)
        self.savepoint_sql(entry.sql[0])
        self.stack.append(entry)
        proxy.chain.append(entry)
        proxy.seen = self.write_seq
        return entry

    def _after_error(self, proxy: ProxyConnection, exc: BaseException) -> None:
        if not isinstance(exc, Exception):  # cancelled or interrupted mid-statement
            self.interrupted = True
            return
        if not self.ops.error_aborts(self._driver(), exc) or not self.stack:
            return
        top = self.stack[-1]
        try:
            self.sql(top.sql[2])
        except Exception:
            return
        top.seq = self.write_seq
        top.wrote = False
        proxy.seen = self.write_seq

    def _break(self, statement: str, *, ran: bool) -> None:
        self.broken = statement
        self.broken_ran = ran
        for entry in self.stack:
            entry.alive = False
        self.stack.clear()
        self.broken_reported = True
        raise SandboxBrokenError(self._broken_message(later=False))

    def _broken_message(self, *, later: bool) -> str:
        when = "earlier " if later else ""
        statement = _shorten(self.broken or "")
        fix = (
            "Run this test with the clean strategy instead "
            "(@pytest.mark.dbrewind(transactional=True), the transactional_db fixture, or a "
            "dbrewind.Rewinder)"
        )
        if not self.broken_ran:
            return (
                f"The rollback sandbox on {self.url_display} {when}refused to run "
                f"{statement!r}: {self.ops.refused_because}, which would end the sandbox's "
                f"transaction and commit what the test wrote. {fix}."
            )
        why = self.ops.ended_because
        return (
            f"The rollback sandbox on {self.url_display} was {when}broken by {statement!r}: its "
            f"outer transaction ended ({why}), so what the test wrote before it was committed "
            f"and cannot be rolled back. {fix}; a Rewinder given to the sandbox cleans what was "
            "committed."
        )

    # ------------------------------------------------------ transaction ends
    def commit(self, proxy: ProxyConnection) -> None:
        if self._ends_here(proxy, self.commit):
            with self.lock:
                chain = self._take_chain(proxy)
                if any(e.wrote for e in chain):
                    self._release_from(chain[0])

    def rollback(self, proxy: ProxyConnection) -> None:
        if self._ends_here(proxy, self.rollback):
            with self.lock:
                self._rollback_to_first_write(self._take_chain(proxy))
                proxy.seen = self.write_seq

    def _ends_here(self, proxy: ProxyConnection, end: Callable[[ProxyConnection], None]) -> bool:
        """Whether this thread ends ``proxy``'s transaction on the stack now: not when it
        has none, when another thread must (``end`` is sent home), or when the sandbox is
        not active or broken (the proxy's entries are only forgotten)."""
        if not proxy.chain:
            return False
        if self.foreign():
            self.run_home(end, proxy)
            return False
        if self.state != _ACTIVE or self.broken is not None:
            self._forget(proxy)
            return False
        return True

    def _take_chain(self, proxy: ProxyConnection) -> list[_Entry]:
        """``proxy``'s entries still on the stack; the proxy forgets all of them."""
        chain = [e for e in proxy.chain if e.alive]
        self._forget(proxy)
        return chain

    def _forget(self, proxy: ProxyConnection) -> None:
        for entry in proxy.chain:
            entry.owner = None
        proxy.chain = []
        proxy.named.clear()

    def _release_from(self, entry: _Entry) -> None:
        """Release ``entry`` (now finished) if nothing still open sits above it."""
        stack = self.stack
        if not entry.alive:
            return
        index = stack.index(entry)
        if any(e.owner is not None for e in stack[index:]):
            return  # another connection's transaction is open above: release later
        while index > 0 and stack[index - 1].owner is None:
            index -= 1
        self.savepoint_sql(stack[index].sql[1])
        for e in stack[index:]:
            e.alive = False
        del stack[index:]

    def _rollback_to_first_write(self, entries: list[_Entry]) -> _Entry | None:
        target = next((e for e in entries if e.wrote and e.alive), None)
        if target is None:
            return None
        stack = self.stack
        index = stack.index(target)
        self.savepoint_sql(target.sql[2])
        for e in stack[index + 1 :]:
            e.alive = False
        del stack[index + 1 :]
        target.wrote = False
        target.seq = self.write_seq
        return target

    def _control(
        self,
        proxy: ProxyConnection,
        control: Control,
        cursor: Any,
        statement: str,
        args: tuple[Any, ...],
    ) -> None:
        kind = control.kind
        if kind in ("begin", "commit", "rollback"):
            if kind == "commit":
                self.commit(proxy)
            elif kind == "rollback":
                self.rollback(proxy)
            if kind == "begin" or control.chain:
                with self.lock:
                    self._ensure(proxy)
        elif kind == "savepoint":
            with self.lock:
                if not proxy.chain or not proxy.chain[0].alive:
                    self._ensure(proxy)
                proxy.named[control.name or ""] = self._push(proxy)
        else:
            name = control.name or ""
            with self.lock:
                entry = proxy.named.get(name)
                if entry is None or not entry.alive or entry not in proxy.chain:
                    cursor.execute(statement, *args)  # let the database report the error
                    return
                index = proxy.chain.index(entry)
                above = proxy.chain[index:]
                if kind == "release":
                    del proxy.chain[index:]
                    for e in above:
                        e.owner = None
                    for key in [k for k, v in proxy.named.items() if v in above]:
                        del proxy.named[key]
                    if any(e.wrote for e in above):
                        if proxy.chain:
                            proxy.chain[-1].wrote = True
                        self._release_from(entry)
                else:
                    self._rollback_to_first_write(above)
                    for e in above[1:]:
                        e.owner = None
                    del proxy.chain[index + 1 :]
                proxy.seen = self.write_seq

    def detach(self, proxy: ProxyConnection) -> None:
        """A proxy went back to the pool or was closed: end its transaction."""
        if proxy.closed:
            return
        proxy.closed = True
        self.proxies -= 1
        if not proxy.chain:
            return
        can_sql = self.state == _ACTIVE and (not self.is_async or in_greenlet())
        if can_sql and self.foreign():
            with contextlib.suppress(Exception):
                self.run_home(self.rollback, proxy)
            self._forget(proxy)
            return
        if can_sql:
            try:
                self.rollback(proxy)
                return
            except Exception:
                pass
        self._forget(proxy)
