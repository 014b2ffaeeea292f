"""What the running test offers helpers that take an optional session, and the
factories' counters that restart with every test.

A module of its own, importing nothing heavy: the pytest plugin fills it in (the
test's ``db_session`` / ``async_db_session`` as they are set up, the counters'
baseline as wider-scoped fixtures come and go), and the helpers read it
(:func:`current_session`, :func:`next_value`). Outside pytest it stays empty,
and a helper asked for the test's session says what to pass instead.

Tests run one at a time in a process (xdist runs processes), so the state is
plain module state, not context variables: pytest-asyncio and anyio set up
async fixtures in other contexts than the test's own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .exceptions import ConfigurationError

__all__ = [
    "at_test_end",
    "clear_test",
    "current_session",
    "next_value",
    "offer_fetch",
    "offered",
    "register_session",
    "reset_value",
    "restore_counters",
    "running_test",
    "snapshot_counters",
    "start_test",
    "unregister_session",
]

_LOCK = threading.Lock()


class _Running:
    """The test now running in this process, as the plugin sees it."""

    nodeid: str | None = None
    is_async: bool = False
    fetch_sync: Callable[[], Any] | None = None
    sessions: list[Any] = []  # noqa: RUF012  (replaced, never mutated in place, per test)


_running = _Running()


def start_test(nodeid: str, *, is_async: bool) -> None:
    """A test begins (its setup): its sessions are registered as they are made."""
    with _LOCK:
        _running.nodeid = nodeid
        _running.is_async = is_async
        _running.fetch_sync = None
        _running.sessions = []


def offer_fetch(fetch_sync: Callable[[], Any] | None) -> None:
    """While the test's body runs: ``fetch_sync`` sets up its ``db_session`` on demand."""
    with _LOCK:
        _running.fetch_sync = fetch_sync


_at_test_end: list[Callable[[], None]] = []


def at_test_end(callback: Callable[[], None]) -> None:
    """Have ``callback()`` called as every test ends (once, however often it is given)."""
    with _LOCK:
        if callback not in _at_test_end:
            _at_test_end.append(callback)


def clear_test() -> None:
    """The test ended: nothing of it is offered any more, nor kept by a helper."""
    with _LOCK:
        _running.nodeid = None
        _running.is_async = False
        _running.fetch_sync = None
        _running.sessions = []
        callbacks = list(_at_test_end)
    for callback in callbacks:
        callback()


def running_test() -> str | None:
    """The node id of the test now running in this process (its setup, body or
    teardown), or None."""
    return _running.nodeid


def register_session(session: Any) -> None:
    """The test's ``db_session`` or ``async_db_session`` is ready."""
    with _LOCK:
        _running.sessions = [*_running.sessions, session]


def unregister_session(session: Any) -> None:
    """That session is being closed."""
    with _LOCK:
        _running.sessions = [s for s in _running.sessions if s is not session]


@contextmanager
def offered(session: Any) -> Iterator[None]:
    """The test's session, registered for as long as the block runs."""
    register_session(session)
    try:
        yield
    finally:
        unregister_session(session)


def _is_async(session: Any) -> bool:
    from ._asyncio import is_async_session

    return is_async_session(session)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def current_session(what: str = "This helper") -> Any:
    """The running test's session: a ``Session`` or an ``AsyncSession``.

    In an async test, its ``async_db_session`` when it asked for one, else its
    ``db_session``; in a sync test its ``db_session``, set up on demand when
    the test did not ask for it (the test's ``db`` sandbox is shared). Usable as
    factory_boy's ``sqlalchemy_session_factory`` and polyfactory's ``__session__``.

    :param what: the caller, named in the error.
    :raises ConfigurationError: no test is running, or this one has no session
        to offer; the message says what to pass or ask for.
    """
    with _LOCK:
        nodeid, is_async = _running.nodeid, _running.is_async
        sessions, fetch = list(_running.sessions), _running.fetch_sync
    if nodeid is None:
        raise ConfigurationError(
            f"{what} has no session: no test is running. Pass session=... (a SQLAlchemy "
            "Session or AsyncSession), or call it inside a test that uses dbrewind's "
            "db_session or async_db_session."
        )
    asynchronous = [s for s in sessions if _is_async(s)]
    synchronous = [s for s in sessions if not _is_async(s)]
    if is_async and asynchronous:
        return asynchronous[-1]
    if synchronous:
        return synchronous[-1]
    if asynchronous:
        return asynchronous[-1]
    if fetch is not None and not is_async and not _loop_running():
        return fetch()
    ask = "async_db_session (or db_session)" if is_async else "db_session"
    raise ConfigurationError(
        f"{what} has no session: {nodeid} has no dbrewind session to use. Ask for {ask} "
        "in the test, or pass session=... . (Fixtures wider than a test pass theirs, "
        "e.g. session=module_db_session.)"
    )


# ------------------------------------------------------------------ counters
_counters: dict[Any, int] = {}


def next_value(key: Any) -> int:
    """The next number of ``key``'s counter: 1, 2, 3, ... (thread-safe)."""
    with _LOCK:
        value = _counters.get(key, 0) + 1
        _counters[key] = value
        return value


def reset_value(key: Any, value: int = 0) -> None:
    """Restart ``key``'s counter so that the next :func:`next_value` is ``value + 1``."""
    with _LOCK:
        _counters[key] = value


def snapshot_counters() -> dict[Any, int]:
    """Every counter's value now (the baseline a wider-scoped fixture leaves)."""
    with _LOCK:
        return dict(_counters)


def restore_counters(snapshot: dict[Any, int]) -> None:
    """Put every counter back to ``snapshot`` (counters not in it start again at 1)."""
    with _LOCK:
        _counters.clear()
        _counters.update(snapshot)
