"""The proxies a sandboxed engine hands out: DB-API connections and cursors over the
sandbox's one real connection, and the pool that makes them (:class:`SandboxPool`).

Every statement a proxy is given goes through :class:`~dbrewind.sandbox.state.SandboxState`,
which keeps the savepoint stack; a proxy holds only its own place in that stack.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy.pool import Pool
from sqlalchemy.pool.base import _ConnectionRecord

from ..exceptions import SandboxError

if TYPE_CHECKING:
    from .state import SandboxState, _Entry

__all__ = ["ProxyConnection", "ProxyCursor", "SandboxPool"]

_SHADOWED = frozenset({"autocommit", "isolation_level", "read_only", "readonly", "deferrable"})


class ProxyConnection:
    """A DB-API connection look-alike whose transaction is a savepoint chain on the real one."""

    __slots__ = ("chain", "closed", "core", "named", "seen", "shadow")

    def __init__(self, core: SandboxState) -> None:
        self.core = core
        self.chain: list[_Entry] = []
        self.named: dict[str, _Entry] = {}
        self.seen = 0
        self.shadow: dict[str, Any] = {}
        self.closed = False
        core.proxies += 1

    # transaction control
    def cursor(self, *args: Any, **kwargs: Any) -> ProxyCursor:
        core = self.core
        raw = core.raw
        if raw is None:
            core.check_usable("")
        if core.foreign():
            return ProxyCursor(self, core.run_home(lambda: raw.cursor(*args, **kwargs)))
        return ProxyCursor(self, raw.cursor(*args, **kwargs))

    def execute(self, statement: str, *args: Any) -> ProxyCursor:
        cursor = self.cursor()
        cursor.execute(statement, *args)
        return cursor

    def commit(self) -> None:
        self.core.commit(self)

    def rollback(self) -> None:
        self.core.rollback(self)

    def begin(self) -> None:
        with self.core.lock:
            self.core._ensure(self)

    def close(self) -> None:
        self.core.detach(self)

    def terminate(self) -> None:
        self.core.detach(self)

    # isolation and autocommit settings stay on the proxy: the real connection
    # must keep its outer transaction
    @property
    def autocommit(self) -> Any:
        real = getattr(self.core.raw, "autocommit", False)
        if callable(real):  # MySQL drivers: conn.autocommit(True)
            return self._set_autocommit
        return self.shadow.get("autocommit", real)

    @autocommit.setter
    def autocommit(self, value: Any) -> None:
        self.shadow["autocommit"] = value

    def _set_autocommit(self, value: Any) -> None:
        self.shadow["autocommit"] = bool(value)

    def autocommit_mode(self) -> bool:
        """Whether this connection was switched to autocommit (each statement commits)."""
        shadow = self.shadow
        if "autocommit" in shadow:
            return bool(shadow["autocommit"])
        if "isolation_level" in shadow:
            return self.core.ops.isolation_autocommit(shadow["isolation_level"])
        return self.core.default_autocommit

    def set_isolation_level(self, level: Any) -> None:
        self.shadow["isolation_level"] = level

    def get_autocommit(self) -> bool:
        return bool(self.shadow.get("autocommit", False))

    def __getattr__(self, name: str) -> Any:
        if name in _SHADOWED and name in self.shadow:
            return self.shadow[name]
        return getattr(self.core.raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ProxyConnection.__slots__:
            object.__setattr__(self, name, value)
        elif name in _SHADOWED:
            self.shadow[name] = value
        else:
            setattr(self.core.raw, name, value)

    def __repr__(self) -> str:
        return f"<dbrewind sandbox connection over {self.core.raw!r}>"


class ProxyCursor:
    """A cursor whose statements go through the sandbox (savepoints, locking, checks)."""

    __slots__ = ("_cursor", "_proxy")
    _proxy: ProxyConnection
    _cursor: Any

    def __init__(self, proxy: ProxyConnection, cursor: Any) -> None:
        object.__setattr__(self, "_proxy", proxy)
        object.__setattr__(self, "_cursor", cursor)

    def execute(self, statement: str, *args: Any) -> Any:
        result = self._proxy.core.execute(self._proxy, self._cursor, statement, args, False)
        return self if result is None or result is self._cursor else result

    def executemany(self, statement: str, *args: Any) -> Any:
        result = self._proxy.core.execute(self._proxy, self._cursor, statement, args, True)
        return self if result is None or result is self._cursor else result

    @property
    def connection(self) -> ProxyConnection:
        return self._proxy

    def close(self) -> None:
        core = self._proxy.core
        if core.foreign() and not core.closed:
            core.run_home(self._cursor.close)
        else:
            self._cursor.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._cursor, name, value)

    def __iter__(self) -> Any:
        return iter(self._cursor)


def _no_creator() -> Any:
    raise SandboxError("The sandbox pool never opens connections of its own.")


_POOL_EVENTS = (
    "checkin",
    "checkout",
    "close",
    "close_detached",
    "connect",
    "detach",
    "first_connect",
    "invalidate",
    "reset",
    "soft_invalidate",
)


def _listeners(pool: Pool) -> tuple[int, ...]:
    """How many listeners each of the pool's events has (a listener added changes it)."""
    dispatch = pool.dispatch
    return tuple(len(getattr(dispatch, name)) for name in _POOL_EVENTS)


_made: weakref.WeakKeyDictionary[Pool, tuple[SandboxPool, tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)


class SandboxPool(Pool):
    """Stands in for the engine's pool while a sandbox is active.

    Every checkout is a new :class:`ProxyConnection` over the sandbox's one
    real connection; nothing is ever opened or closed for real.
    """

    @classmethod
    def over(cls, core: SandboxState, original: Pool) -> SandboxPool:
        """The sandbox pool standing in for ``original``, for the sandbox ``core``.

        One is made per original pool and used again by the next sandbox (a pool
        is costly to make, and an engine is in one sandbox at a time), unless
        listeners were added to the original's events since.
        """
        found = _made.get(original)
        events = _listeners(original)
        if found is not None and found[1] == events and not found[0]._out:
            pool = found[0]
            pool.core = core
            return pool
        pool = cls(core, original)
        _made[original] = (pool, events)
        return pool

    def __init__(self, core: SandboxState, original: Pool) -> None:
        super().__init__(
            _no_creator,
            echo=original.echo,
            reset_on_return=original._reset_on_return,
            dialect=original._dialect,
            pre_ping=False,
            _dispatch=original.dispatch,
        )
        self.core = core
        self.original = original
        self._out: set[_ConnectionRecord] = set()

    def _do_get(self) -> _ConnectionRecord:
        record = _ConnectionRecord(self, connect=False)
        record.dbapi_connection = ProxyConnection(self.core)
        record.starttime = time.time()
        self._out.add(record)
        return record

    def _do_return_conn(self, record: Any) -> None:
        self._out.discard(record)
        proxy = record.dbapi_connection
        if isinstance(proxy, ProxyConnection):
            proxy.core.detach(proxy)  # its own sandbox's (this pool serves one after another)

    def reclaim(self) -> None:
        """Check in what the code under test left checked out (the sandbox is ending).

        The connections' work is rolled back with the sandbox; returning them
        here spares the garbage collector (and its warnings) later.
        """
        for record in list(self._out):
            fairy = record.fairy_ref() if record.fairy_ref is not None else None
            if fairy is not None:
                fairy._finalizer.detach()  # its owner may still close it: that is harmless
            if record.in_use:
                with contextlib.suppress(Exception):
                    record.checkin()
            self._out.discard(record)

    def _close_connection(self, connection: Any, *, terminate: bool = False) -> None:
        if isinstance(connection, ProxyConnection):
            connection.core.detach(connection)

    def recreate(self) -> SandboxPool:
        return self

    def dispose(self) -> None:
        pass

    def status(self) -> str:
        return f"SandboxPool over {self.original.status()}, {self.core.proxies} checked out"

    def checkedout(self) -> int:
        """Sandbox connections currently handed out and not yet returned."""
        return self.core.proxies
