"""A rollback sandbox for peewee-async tests: a drop-in for ``peewee_async.testing``.

::

    from dbrewind.peewee_async import AsyncPeeweeSandbox

    async with AsyncPeeweeSandbox(database):
        await Author.aio_create(name="ada")
        async with database.aio_atomic():        # a savepoint, to any depth
            ...
        with pytest.raises(peewee.IntegrityError):
            await Author.aio_create(name="ada")  # only this statement is undone
        await asyncio.gather(*(Author.select().aio_count() for _ in range(20)))
    # everything is rolled back; sync queries that escaped were rewound by the
    # safety net and reported in ``leaked``

``TransactionTestCase`` is another name for :class:`AsyncPeeweeSandbox`, so
``from dbrewind.peewee_async import TransactionTestCase`` replaces
``from peewee_async.testing import TransactionTestCase`` with nothing else to
change. Unlike ``peewee_async.testing.TransactionTestCase``:

1. ``aio_atomic()`` and ``aio_transaction()`` work inside the block and nest
   as savepoints to any depth (``aio_transaction()`` too); a failing inner
   block rolls back only its own savepoint.
2. A database error does not poison the test: on PostgreSQL each statement
   runs under its own savepoint, so the failing statement is undone alone
   (MySQL and SQLite undo a failing statement by themselves). With aiopg and
   psycopg's client-side-binding cursors (peewee-async's), the savepoint
   travels with the statement, in its round trip: a statement costs what it
   costs outside the sandbox, and only a failing one one round trip more.
3. Sync queries (``Model.create()`` through peewee's sync path) commit on
   another connection; the safety net rewinds the tables they wrote after the
   block and reports them in :attr:`AsyncPeeweeSandbox.leaked` (the queries
   themselves are listed in :attr:`AsyncPeeweeSandbox.sync_queries`).
4. ``aio_begin()`` / ``aio_savepoint()`` and raw ``BEGIN`` / ``COMMIT`` /
   ``ROLLBACK`` statements become savepoints; commands that would end the
   outer transaction (MySQL DDL and ``TRUNCATE``, two-phase commit) are
   refused with :class:`~dbrewind.exceptions.SandboxError`.

The safety net's check after the block: the dialect's receipt runs right after
the ``ROLLBACK`` (PostgreSQL: in its round trip on aiopg and psycopg; SQLite:
on the block's connection), and the full check runs only when the receipt
cannot say that nothing escaped; on MySQL the full check runs on a thread
beside the rollback (it reads only what other connections committed). Under
the pytest plugin, a block that a fixture ends and that found nothing spares
the plugin its own check after the test.

All queries in the block share one pooled connection. Concurrent tasks
(``asyncio.gather``) are serialised statement by statement, and an
``aio_atomic()`` / ``aio_begin()`` transaction holds the connection for its
task (and the tasks it starts) until it ends, so concurrent transactions never
interleave their savepoints. Raw ``BEGIN`` SQL is mapped but does not hold the
connection that way. The outer transaction is always rolled back, the
connection released and every patch reverted, also on errors and cancellation.

Supported peewee-async 2.1 databases: ``Psycopg3Database`` (psycopg 3 with
``psycopg_pool``), ``PostgresqlDatabase`` (aiopg), ``MySQLDatabase``
(aiomysql) and ``SqliteDatabase`` (aiosqlite). On SQLite one writer at a time
holds the file: a sync write made while the sandbox holds the write lock fails
with :class:`~dbrewind.exceptions.SandboxError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import peewee
from peewee_async import Transaction

from .exceptions import SandboxError
from .peewee.databases import backend_of, database_url
from .peewee.router import SavepointRouter
from .peewee.sandbox import SandboxOptions
from .rewinder import Rewinder
from .sandbox import LeakCallback

__all__ = ["AsyncPeeweeSandbox", "TransactionTestCase"]


class _Scope:
    """One level of transaction nesting: a lock held by a statement or a transaction.

    Reentrant for the task that holds it. A transaction holds its level's
    lock and gives its body (and the tasks the body starts) the next level.
    """

    def __init__(self, case: AsyncPeeweeSandbox) -> None:
        self.case = case
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if self._owner is not None and self._owner is task:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner = task
        self._depth = 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


_scope: ContextVar[_Scope | None] = ContextVar("dbrewind_peewee_async_scope", default=None)


async def _run(raw: Any, sql: str) -> None:
    """Run one statement on the raw driver connection, bypassing the sandbox."""
    async with raw.cursor() as cursor:
        await cursor.execute(sql)


class _Wire:
    """What the driver connection can do in one round trip (no I/O of its own)."""

    def __init__(self, raw: Any) -> None:
        module = type(raw).__module__
        #: aiopg (psycopg2): interpolates parameters itself, sends every statement as
        #: one query string, and keeps the last statement's result.
        self.aiopg = module.startswith("aiopg")
        #: psycopg 3: its client-side-binding cursors may send several statements;
        #: their results come one after another (``nextset``).
        self.psycopg = module == "psycopg" or module.startswith("psycopg.")
        self._client_cursor: Any = None
        self._plain = self.aiopg
        if self.psycopg:
            import psycopg

            self._client_cursor = psycopg.AsyncClientCursor
            factory = getattr(raw, "cursor_factory", None)
            self._plain = isinstance(factory, type) and issubclass(factory, self._client_cursor)

    def joins(self, cursor: Any) -> bool:
        """Whether ``cursor`` may send ``"a; b"`` (with parameters) in one execute."""
        if self.aiopg:
            return True
        return self._client_cursor is not None and isinstance(cursor, self._client_cursor)

    def joins_plain(self) -> bool:
        """Whether the connection's own cursors send ``"a; b"`` (no parameters) at once."""
        return self._plain

    def last_result(self, cursor: Any) -> None:
        """Put ``cursor`` on the result of the last statement it sent."""
        if self.psycopg:
            while cursor.nextset():
                pass

    async def fetch_last(self, cursor: Any) -> Any:
        self.last_result(cursor)
        return await cursor.fetchone()


async def _lost(raw: Any) -> bool:
    """Whether the driver connection ``raw`` no longer answers (after a statement failed)."""
    try:
        await _run(raw, "SELECT 1")
    except Exception:
        return True
    return False


async def _release_dead(database: Any, raw: Any) -> None:
    """Give a connection the server closed back to its pool, which drops it."""
    with contextlib.suppress(Exception):
        close = raw.close()
        if asyncio.iscoroutine(close):
            await close
    with contextlib.suppress(Exception):
        await database.pool_backend.release(raw)


_WORKER = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="dbrewind-peewee-async")
"""Where the safety net's blocking work runs: threads of the process, not one per
event loop (a suite runs each test on a loop of its own, and a new thread each costs)."""


def _in_thread(work: Callable[[], None]) -> asyncio.Future[None]:
    """Run ``work`` on :data:`_WORKER` without blocking the event loop."""
    return asyncio.get_running_loop().run_in_executor(_WORKER, work)


_SEEN: dict[int, tuple[Any, str]] = {}
"""By ``id`` of a lifecycle database: the database, and its :func:`_seen_sql`."""


def _seen_sql(database: Any) -> str:
    """What the block's ``BEGIN`` carries so that the tracking triggers do nothing
    inside it (:meth:`~dbrewind.dialects.Dialect.block_begin_sql`; see
    :meth:`AsyncPeeweeSandbox._begin`)."""
    rewinder = database.rewinder
    if rewinder is None:
        return ""
    try:
        with rewinder.connection() as conn:
            return str(rewinder.dialect.block_begin_sql(conn))
    except Exception:  # another kind of installation: the triggers fire, as they did
        return ""


_CLEAN = object()
"""What :meth:`AsyncPeeweeSandbox._end_transaction` returns when the check that rode on
the rollback found nothing to rewind."""

_WHERE: dict[Any, tuple[Any, str]] = {}


def _router(database: Any) -> SavepointRouter:
    """A fresh statement router for a block on ``database`` (its backend and where it is
    looked up once per URL)."""
    url = database_url(database)
    found = _WHERE.get(url)
    if found is None:
        if len(_WHERE) >= 256:
            _WHERE.clear()
        found = _WHERE[url] = (backend_of(database), url.display())
    return SavepointRouter(found[0], found[1])


class _Cursor:
    """The driver's cursor, with ``execute`` routed through the sandbox."""

    def __init__(self, case: AsyncPeeweeSandbox, raw: Any, cursor: Any) -> None:
        self._case = case
        self._raw = raw
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    async def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        case = self._case
        router = case._router
        assert router is not None
        route = router.route(sql)
        if route.kind == "run":
            if not router.guard:
                return await self._cursor.execute(sql, *args, **kwargs)
            if case._wire.joins(self._cursor):
                return await self._guarded(router, sql, args, kwargs)
        elif not router.guard:
            if route.kind == "control":
                return await self._cursor.execute(sql, *args, **kwargs)
            for statement in route.statements:
                await self._cursor.execute(statement)
            return None
        else:
            statements = route.statements if route.kind == "replace" else (sql,)
            prefix = router.before_control(statements)
            if case._wire.joins(self._cursor):
                if not statements:
                    return None
                if route.kind == "control":
                    result = await self._cursor.execute(prefix + sql, *args, **kwargs)
                else:
                    result = await self._cursor.execute(prefix + "; ".join(statements))
                case._wire.last_result(self._cursor)
                return result if route.kind == "control" else None
            if prefix:
                await _run(self._raw, prefix.rstrip("; "))
            if route.kind == "control":
                return await self._cursor.execute(sql, *args, **kwargs)
            for statement in statements:
                await self._cursor.execute(statement)
            return None
        # a driver that sends one statement at a time: the savepoint on its own
        await _run(self._raw, router.guard_begin())
        try:
            result = await self._cursor.execute(sql, *args, **kwargs)
        except BaseException:
            with contextlib.suppress(Exception):
                for statement in router.guard_undo():
                    await _run(self._raw, statement)
            raise
        await _run(self._raw, router.guard_release())
        return result

    async def _guarded(
        self, router: SavepointRouter, sql: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The statement under a fresh statement savepoint, sent with it in one round trip."""
        try:
            result = await self._cursor.execute(router.guard_prefix() + sql, *args, **kwargs)
        except BaseException:
            try:
                await _run(self._raw, router.guard_recover())
            except Exception:
                router.guard_lost()  # the caller's error stands; the next statement opens anew
            else:
                router.guard_done()  # back to the savepoint, which holds the state before
            raise
        router.guard_done()
        self._case._wire.last_result(self._cursor)
        return result


class _CursorContext:
    """``async with connection.cursor()``: holds the current level's lock meanwhile."""

    def __init__(self, case: AsyncPeeweeSandbox, raw: Any, kwargs: dict[str, Any]) -> None:
        self._case = case
        self._raw = raw
        self._kwargs = kwargs
        self._scope: _Scope | None = None
        self._inner: Any = None

    async def __aenter__(self) -> _Cursor:
        scope = self._case._current_scope()
        await scope.acquire()
        self._scope = scope
        try:
            self._inner = self._raw.cursor(**self._kwargs)
            cursor = await self._inner.__aenter__()
        except BaseException:
            scope.release()
            raise
        return _Cursor(self._case, self._raw, cursor)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            assert self._scope is not None
            self._scope.release()


class _Connection:
    """The one pooled connection every query of the block uses."""

    def __init__(self, case: AsyncPeeweeSandbox, raw: Any) -> None:
        self._case = case
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def cursor(self, **kwargs: Any) -> _CursorContext:
        return _CursorContext(self._case, self._raw, kwargs)

    async def close(self) -> None:
        """Does nothing: the sandbox releases its connection when the block ends."""


class _ScopedTransaction(Transaction):  # type: ignore[misc]
    """A peewee-async ``Transaction`` that holds the connection for its task until it ends."""

    def __init__(self, case: AsyncPeeweeSandbox, connection: Any, is_savepoint: bool) -> None:
        super().__init__(connection, is_savepoint=is_savepoint)
        self._case = case
        self._held: _Scope | None = None
        self._token: Token[_Scope | None] | None = None

    async def begin(self) -> None:
        scope = self._case._current_scope()
        await scope.acquire()
        try:
            await super().begin()
        except BaseException:
            scope.release()
            raise
        self._held = scope
        self._token = _scope.set(_Scope(self._case))

    async def _end(self, action: Any) -> None:
        try:
            await action()
        finally:
            held, token = self._held, self._token
            self._held = self._token = None
            if token is not None:
                try:
                    _scope.reset(token)
                except ValueError:  # ended from another task: restore its level
                    _scope.set(held)
            if held is not None:
                held.release()

    async def commit(self) -> None:
        await self._end(super().commit)

    async def rollback(self) -> None:
        await self._end(super().rollback)


class AsyncPeeweeSandbox(SandboxOptions):
    """Run a block in a rollback sandbox on a peewee-async ``database``.

    :param database: a peewee-async database (``Psycopg3Database``,
        ``PostgresqlDatabase``, ``MySQLDatabase``, ``SqliteDatabase``).
    :param rewinder: the :class:`~dbrewind.Rewinder` to check for escaped
        writes; by default one is built from the database's connection
        parameters (see :func:`dbrewind.peewee.tracking_rewinder`).
    :param safety_net: set ``False`` to run without tracking: nothing is
        installed, escaped writes are neither cleaned nor reported.
    :param on_leak: called with the :class:`~dbrewind.RewindResult` when
        writes escaped the sandbox and were rewound.

    ``TransactionTestCase`` is another name for this class (see the module's
    documentation). Another connection's statement that waits on the block's
    locks is cancelled and fails the block, as in :class:`dbrewind.peewee.PeeweeSandbox`.
    """

    def __init__(
        self,
        database: Any,
        *,
        rewinder: Rewinder | None = None,
        safety_net: bool = True,
        on_leak: LeakCallback | None = None,
    ) -> None:
        super().__init__(database, rewinder=rewinder, safety_net=safety_net, on_leak=on_leak)
        #: SQL of the sync queries run during the last block (they bypass the sandbox).
        self.sync_queries: list[str] = []
        self._root: _Scope | None = None
        self._raw: Any = None
        self._seen_sent = False  # the block's BEGIN carried block_begin_sql (no marks)
        self._wire: _Wire = _Wire(None)
        self._active = False

    def __repr__(self) -> str:
        return f"AsyncPeeweeSandbox({self.database!r})"

    def _current_scope(self) -> _Scope:
        scope = _scope.get()
        if scope is not None and scope.case is self:
            return scope
        assert self._root is not None
        return self._root

    # ------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> AsyncPeeweeSandbox:
        if self._active:
            raise SandboxError(
                f"{self!r} is already active: it cannot be entered twice at once. Nest "
                "database.aio_atomic() blocks inside it instead."
            )
        db = self.database
        if not self._take_safety_net_at_once() or self._marks_unknown():
            await _in_thread(self._take_safety_net_and_seen)
        self.leaked = None
        self.sync_queries = []
        self._router = _router(db)
        self._root = _Scope(self)
        if not db.pool_backend.is_connected:
            await db.aio_connect()  # a pool closed after an earlier test (its event loop ended)
        raw = await db.pool_backend.acquire()
        try:
            await self._begin(raw)
        except Exception:
            await _release_dead(db, raw)
            # the pool handed out a connection the server closed (a restart, a failover,
            # an idle-connection reaper); the others are likely gone too: a new pool
            await db.pool_backend.close()
            await db.aio_connect()
            raw = await db.pool_backend.acquire()
            try:
                await self._begin(raw)
            except BaseException:
                await db.pool_backend.release(raw)
                raise
        except BaseException:
            await db.pool_backend.release(raw)
            raise
        self._raw = raw
        self._active = True
        self._install_patches(_Connection(self, raw))
        self._watch_locks(raw, _WHAT, _FIX, self._router.ops)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        found = self._unwatch_locks()
        outcome: object = None
        checking: asyncio.Future[None] | None = None
        # the block's transaction ended before its end (a COMMIT sent past the sandbox):
        # what it wrote is committed, and, with the marks skipped, unmarked
        unmarked = self._seen_sent and self._outer_gone()
        try:
            self._patches.revert()
            receipt = self._receipt_sql() if self._checks() and not unmarked else None
            if receipt is None and self._checks() and not unmarked:
                # The check reads what other connections committed; the block's own
                # writes were never committed, so it runs beside the rollback. (A rewind
                # that has to wait for the block's locks gets them when it ends.)
                checking = _in_thread(self._check_beside)
            closing = asyncio.ensure_future(self._end_transaction(receipt))
            try:
                outcome = await asyncio.shield(closing)
            except asyncio.CancelledError:
                outcome = await closing  # finish the rollback and release, then stay cancelled
                raise
        finally:
            self._active = False
            if unmarked and self._checks():
                await _in_thread(self._rewind_everything)
            elif checking is not None:
                await checking
            elif outcome is _CLEAN:
                assert self._database is not None
                self._database.note_escaped_nothing()
            elif self._checks():
                await _in_thread(self._after_block)
        self._fail_lock_waits(found)

    # ------------------------------------------------------------ safety net
    async def _begin(self, raw: Any) -> None:
        """``BEGIN`` on ``raw``; on PostgreSQL with tracking, in the same round trip, every
        tracked table's transaction-local ``dbrewind.seen_<n>`` set, as if the block had
        marked it already: the tracking triggers fire for none of the block's writes. A
        mark made in the block would be rolled back with it; what other connections
        commit is marked as ever. (The first firing on a new connection also compiles
        the trigger function: a suite that makes a pool per test paid that every test.)"""
        wire = _Wire(raw)
        database = self._database
        seen = _SEEN.get(id(database), (None, ""))
        self._seen_sent = False
        if seen[0] is not database or not seen[1] or not wire.joins_plain():
            await _run(raw, "BEGIN")
        else:
            try:
                await _run(raw, f"BEGIN; {seen[1]}")
                self._seen_sent = True
            except Exception as exc:
                try:  # the transaction began and the settings failed: without them
                    await _run(raw, "ROLLBACK")
                except Exception:
                    raise exc from None
                await _run(raw, "BEGIN")
        self._wire = wire

    def _outer_gone(self) -> bool:
        """Whether the block's connection is no longer inside its transaction (the
        driver's own state, no round trip; aiopg keeps psycopg2's connection as ``raw``)."""
        raw, router = self._raw, self._router
        if raw is None or router is None:
            return False
        probe = router.ops.transaction_probe(getattr(raw, "raw", raw))
        return probe is not None and not probe()

    def _rewind_everything(self) -> None:
        """The block's transaction was committed with its marks skipped: every tracked
        table is taken as written, so the safety net puts them all back and names them."""
        rewinder = self._database.rewinder if self._database is not None else self.rewinder
        if rewinder is not None:
            rewinder.mark_dirty(*rewinder.call(rewinder.dialect.tracked_tables))
        self._after_block()

    def _marks_unknown(self) -> bool:
        database = self._database
        return database is not None and _SEEN.get(id(database), (None,))[0] is not database

    def _take_safety_net_and_seen(self) -> None:
        """:meth:`_take_safety_net`, then (once per lifecycle database) the settings that
        :meth:`_begin` sends with ``BEGIN`` (:func:`_seen_sql`)."""
        self._take_safety_net()
        database = self._database
        if database is not None and self._marks_unknown():
            if len(_SEEN) >= 64:  # released databases are not kept alive for ever
                _SEEN.clear()
            _SEEN[id(database)] = (database, _seen_sql(database))

    def _checks(self) -> bool:
        """Whether the block ends with a safety-net check (one is in place)."""
        if not self.safety_net:
            return False
        if self._database is not None:
            return bool(self._database.safety_net)
        return self.rewinder is not None

    def _receipt_sql(self) -> str | None:
        """The dialect's receipt (:meth:`~dbrewind.dialects.base.Dialect.sandbox_receipt_sql`),
        run right after the rollback: true when the safety net's check would find nothing.
        None when there is no safety net here, or the dialect has no receipt."""
        database = self._database
        if database is None or database.rewinder is None:
            return None
        return database.rewinder.dialect.sandbox_receipt_sql()

    async def _end_transaction(self, receipt: str | None) -> object:
        """Roll back and release; :data:`_CLEAN` when the ``receipt`` run after the
        rollback (in its round trip where the driver allows) says the safety net's check
        would find nothing."""
        raw, self._raw = self._raw, None
        outcome: object = None
        try:
            if receipt is None:
                await _run(raw, "ROLLBACK")
            else:
                try:
                    async with raw.cursor() as cursor:
                        if self._wire.joins_plain():
                            await cursor.execute(f"ROLLBACK; {receipt}")
                            row = await self._wire.fetch_last(cursor)
                        else:
                            await cursor.execute("ROLLBACK")
                            await cursor.execute(receipt)
                            row = await cursor.fetchone()
                except Exception:
                    await _run(raw, "ROLLBACK")  # the receipt failed, not the rollback: check
                else:
                    outcome = _CLEAN if row is not None and row[0] else None
        except Exception:
            if not await _lost(raw):
                raise
            # the server closed the connection during the test and rolled back itself
            await _release_dead(self.database, raw)
            raw = None
        finally:
            if self._router is not None:
                self._router.reset()
            if raw is not None:
                await self.database.pool_backend.release(raw)
        return outcome

    def _check_beside(self) -> None:
        """The safety net's check, on a thread beside the rollback; a clean one is told to
        the lifecycle database (see :meth:`~dbrewind.provision.Database.note_escaped_nothing`)."""
        self._after_block()
        if self.leaked is None and self._database is not None:
            self._database.note_escaped_nothing()

    # ----------------------------------------------------------------- patches
    def _install_patches(self, connection: _Connection) -> None:
        db = self.database
        original_execute_sql = db.execute_sql
        assert self._router is not None
        ops = self._router.ops

        @contextlib.asynccontextmanager
        async def aio_connection() -> AsyncIterator[_Connection]:
            yield connection

        @contextlib.asynccontextmanager
        async def atomic_block() -> AsyncIterator[None]:
            transaction = _ScopedTransaction(self, connection, is_savepoint=True)
            await transaction.begin()
            try:
                yield
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()

        def _aio_atomic(use_savepoint: bool = False) -> AbstractAsyncContextManager[None]:
            # aio_transaction() nests too: every block inside the sandbox is a savepoint.
            return atomic_block()

        async def _aio_begin(use_savepoint: bool = False) -> Transaction:
            transaction = _ScopedTransaction(self, connection, is_savepoint=use_savepoint)
            await transaction.begin()
            return transaction

        def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            self.sync_queries.append(sql)
            try:
                return original_execute_sql(sql, params, *args, **kwargs)
            except peewee.OperationalError as exc:
                if ops.blocked_by_write_lock(exc):
                    raise SandboxError(
                        f"A sync query could not run on {database_url(db).display()} because "
                        "the async sandbox holds SQLite's write lock. Use the aio_ methods "
                        "inside AsyncPeeweeSandbox, or make the sync write before the "
                        "sandbox writes."
                    ) from exc
                raise

        self._patches.set(db, "aio_connection", aio_connection)
        self._patches.set(db, "_aio_atomic", _aio_atomic)
        self._patches.set(db, "_aio_begin", _aio_begin)
        self._patches.set(db, "execute_sql", execute_sql)


_WHAT = "where the peewee-async database's aio_ queries in the block run"
_FIX = (
    "run that query through the database's aio_ methods inside the sandbox (its sync "
    "queries, and any other engine or client, use connections of their own), or run that "
    "test without the sandbox, committing for real, and let dbrewind.Rewinder put the "
    "tables back after it."
)

TransactionTestCase = AsyncPeeweeSandbox
"""Alias of :class:`AsyncPeeweeSandbox` (the same class): the drop-in for
``peewee_async.testing.TransactionTestCase``."""
