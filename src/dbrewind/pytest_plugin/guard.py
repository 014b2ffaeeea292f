"""The safety net: after every test, put every database in use back to its baseline.

One fixture, which the plugin puts first among every test's fixtures in a run
that may use a database (``hooks._guard``); elsewhere it is not there at all.
A test that touches no database, in a run where none is configured or in use
yet, passes through it without any work. Once a
database is in use (the plugin's, a ``clean_db_urls`` one, or one a peewee or
unittest sandbox acquired), every test ends with one cheap check per database;
writes that escaped a sandbox are rewound and reported. Before that check, the
threads a test left running are waited for, and the connections it left
checked out of dbrewind's engines are closed (see :class:`Watch`).
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from .._strategy import Strategy
from ..exceptions import (
    DataLoadError,
    DbrewindError,
    DbrewindLeakWarning,
    DbrewindWarning,
    LeakError,
    VerificationError,
)
from .config import DB_FIXTURES, PRIMARY, ROLLBACK_FIXTURES, TRANSACTIONAL_FIXTURES
from .fixtures import data_dir, is_async_test, item_mark
from .report import TestRecord
from .state import ESCAPED_NOTHING, SANDBOX_KEY, PluginState, plugin_state

if TYPE_CHECKING:
    from ..provision import Database

__all__ = ["after_test", "compat_databases"]


def compat_databases(request: pytest.FixtureRequest, state: PluginState) -> None:
    """pytest-clean-database's interface: track and rewind the ``clean_db_urls`` databases.

    The baseline is what each database holds when ``clean_db_urls`` is first
    set up: after the fixtures it requires created and migrated it.
    """
    if not state.compat_possible or state.compat is not None:
        return
    try:
        urls = request.getfixturevalue("clean_db_urls")
    except pytest.FixtureLookupError:
        return
    except pytest.fail.Exception:
        if request.scope == "function":
            raise
        return  # e.g. a function-scoped clean_db_urls: taken up by each test instead
    if isinstance(urls, str):
        urls = [urls]
    from .._url import parse_url
    from ..provision import Target, acquire

    schema = request.config.getoption("clean_db_pg_schema", "public") or "public"
    found: list[Database] = []
    try:
        for url in urls:
            found.append(
                acquire(
                    Target(
                        url=parse_url(str(url)),
                        schemas=(str(schema),),
                        lock_timeout=state.lock_timeout,
                        reset_sequences=state.reset_sequences,  # type: ignore[arg-type]
                        origin="clean_db_urls",
                    )
                )
            )
    except DbrewindError as exc:
        pytest.fail(f"dbrewind (clean_db_urls): {exc}", pytrace=False)
    state.compat = found


@pytest.fixture(scope="session")
def _dbrewind_session(request: pytest.FixtureRequest) -> None:
    """Takes up ``clean_db_urls`` before any other fixture of the first test writes."""
    state = plugin_state(request.config)
    compat_databases(request, state)


def _label(state: PluginState, database: Database, key: str) -> str:
    for alias, own in state.databases.items():
        if own is database:
            return key if alias == PRIMARY else f"{alias}:{key}"
    return f"{database.url.database}:{key}" if len(state.active) > 1 else key


@pytest.fixture
def _dbrewind_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """The safety net: after every test, rewind whatever was committed, and say so."""
    item = request.node
    state = plugin_state(request.config)
    try:
        mark = item_mark(item)
    except DbrewindError as exc:
        pytest.fail(str(exc), pytrace=False)
    names = request.fixturenames
    if (
        mark is None
        and not state.explicit
        and not state.active
        and not state.compat_possible
        and DB_FIXTURES.isdisjoint(names)
    ):
        yield  # nothing here uses a database (yet): no work at all
        return
    if (mark is not None or state.explicit) and not state.databases:
        # prepared up front, so that a test without dbrewind fixtures is still guarded
        request.getfixturevalue("dbrewind_databases")
    compat_databases(request, state)
    transactional = bool(mark and mark.transactional) or not TRANSACTIONAL_FIXTURES.isdisjoint(
        names
    )
    rollback = not transactional and not ROLLBACK_FIXTURES.isdisjoint(names)
    if state.engine_specs and not transactional:
        rollback = True  # the application's engines run in the test's sandbox
    load = mark is not None and bool(mark.data) and not rollback and PRIMARY in state.databases
    if load:
        transactional = True  # the data is committed, and cleaned after the test
    strategy = (
        Strategy.CLEAN if transactional else Strategy.ROLLBACK if rollback else Strategy.SAFETY_NET
    )
    if mark is not None and mark.reset_sequences:  # the test starts from baseline ids
        for database in state.guarded():
            database.before_test(reset_sequences=True)
    if load:  # after the counters are put back, which rewinds what is dirty
        _load_data(request, state, item, mark, strategy)
    # threads are waited for only after a test that asked for a database: another
    # test's thread that writes is caught by the next test's check all the same
    watch = Watch.start(state, threads=strategy is not Strategy.SAFETY_NET)
    yield
    after_test(item, state, mark, strategy, watch)


def _load_data(
    request: pytest.FixtureRequest, state: PluginState, item: Any, mark: Any, strategy: Strategy
) -> None:
    """The marker's ``data=`` files, committed into the primary database before a test
    that runs outside the rollback sandbox. A load that fails is rewound at once (the
    test never runs, so its teardown would not): on MySQL a DDL statement of a ``.sql``
    file has committed what came before it."""
    from ..data import load_data

    try:
        with state.databases[PRIMARY].engine.begin() as conn:
            load_data(conn, *mark.data, base_dir=data_dir(request))
    except BaseException as exc:
        after_test(item, state, mark, strategy)
        if isinstance(exc, DataLoadError):
            raise pytest.fail.Exception(f"dbrewind: {exc}", pytrace=False) from None
        raise


def blocked_hint(item: pytest.Item, error: BaseException) -> str | None:
    """What to tell of ``error`` when the test's own sandbox caused it: another
    connection could not write past the one write lock the sandbox holds (SQLite)."""
    sandbox = item.stash.get(SANDBOX_KEY, None)
    if sandbox is None or not sandbox.active or not sandbox.blocks(error):
        return None
    return (
        "A connection outside the test's sandbox could not write: the sandbox holds the "
        "database's one write lock (it wrote, and keeps its transaction open until the test "
        "ends), and that connection gave up after its busy timeout. Route that connection's "
        "engine into the sandbox (ini dbrewind_engines = package.module:engine, or use the "
        "db_engine / async_db_engine fixtures), or use transactional_db, whose commits are "
        "real."
    )


REAL_COMMITS = pytest.StashKey[bool]()
"""Set on a test whose application engines commit for real (see _dbrewind_app_engines)."""
OWN_THREADS = "dbrewind-"
"""The name prefix of dbrewind's own threads (the lock watch): never waited for."""


@pytest.fixture
def _dbrewind_app_engines(request: pytest.FixtureRequest) -> None:
    """ini ``dbrewind_engines``: open the test's sandboxes for the application's engines
    (they are routed in as the sandboxes start), unless the test runs under the clean
    strategy. An async engine in a sync test, whose event loop the test does not run,
    cannot be sandboxed: its commits are real, and the test is cleaned after instead."""
    state = plugin_state(request.config)
    mark = item_mark(request.node)
    names = request.fixturenames
    if (mark is not None and mark.transactional) or not TRANSACTIONAL_FIXTURES.isdisjoint(names):
        return
    request.getfixturevalue("dbrewind_databases")  # loads and redirects the engines
    kinds = {app_engine.is_async for app_engine in state.app_engines}
    if False in kinds:
        request.getfixturevalue("_dbrewind_sandbox")
    if True in kinds:
        if is_async_test(request):
            request.getfixturevalue("dbrewind_async_db_session")
        else:
            request.node.stash[REAL_COMMITS] = True


THREAD_GRACE = 2.0
"""Seconds the safety net waits for threads a test started and left running."""
THREAD_NOTE_AFTER = 0.05
"""A wait for such threads this long or longer is noted in the run's summary."""
THREAD_POLL = 0.01
"""Seconds between two looks at a thread that is still busy."""

_QUEUE_GET = (os.path.join("", "queue.py"), "get")
"""``queue.Queue.get``, where anyio's worker threads wait for their next job."""
_WAITING_IN = ("threading.py",)


def _waiting_for_work(frame: FrameType | None) -> tuple[int, int] | None:
    """Where the innermost frame ``frame`` of a thread stands, if it waits for a job: in
    ``queue.Queue.get``, or on a line that calls a ``get(`` written in C (a
    ``SimpleQueue``'s, where ``concurrent.futures`` and aiosqlite workers wait)."""
    while frame is not None and frame.f_code.co_filename.endswith(_WAITING_IN):
        frame = frame.f_back
    if frame is None:
        return None
    code = frame.f_code
    at_get = code.co_filename.endswith(_QUEUE_GET[0]) and code.co_name == _QUEUE_GET[1]
    if at_get or ".get(" in linecache.getline(code.co_filename, frame.f_lineno):
        return id(frame), frame.f_lasti
    return None


def _busy(threads: list[threading.Thread]) -> list[threading.Thread]:
    """The ``threads`` still alive and working: not a pool's worker waiting for its next
    job (a ``ThreadPoolExecutor``'s, anyio's, a driver's connection thread), which has
    done what the test gave it and does nothing until it is given more. A thread counts
    as waiting when it stands at the same such place twice, :data:`THREAD_POLL` apart."""

    def where(among: list[threading.Thread]) -> dict[threading.Thread, tuple[int, int] | None]:
        frames = sys._current_frames()
        return {t: _waiting_for_work(frames.get(t.ident or -1)) for t in among if t.is_alive()}

    first = where(threads)
    waiting = [t for t, at in first.items() if at is not None]
    if waiting:
        time.sleep(THREAD_POLL)
        again = where(waiting)
        waiting = [t for t in waiting if again.get(t) == first[t]]
    return [t for t in first if t not in waiting and t.is_alive()]


@dataclass
class Watch:
    """What was running when a test started: its threads, and a mark of each database's
    checked-out connections."""

    threads: set[threading.Thread]
    checkouts: dict[int, int]

    watch_threads: bool = True

    @classmethod
    def start(cls, state: PluginState, *, threads: bool = True) -> Watch:
        marks = {id(db): db.checkouts() for db in state.active}
        return cls(set(threading.enumerate()), marks, threads)

    def settle(self, item: Any, state: PluginState) -> list[str]:
        """Wait for the threads the test left running, take back the connections it left
        checked out; what to tell the user of it.

        The policy: a thread the test started that still runs when its fixtures
        were torn down is waited for (up to :data:`THREAD_GRACE` seconds) before
        the rewind, so that what it writes while finishing is rewound too; one
        that outlives the wait is named (its later writes would reach the next
        tests). A pool's worker waiting for its next job has finished, and the
        threads a wider-scoped fixture started belong to its scope: neither is
        waited for. A connection of dbrewind's engines the test left checked out is
        closed, rolling back what it had not committed
        (:meth:`~dbrewind.provision.Database.take_back`).
        """
        said: list[str] = []
        started = time.monotonic()
        left = [
            t
            for t in (threading.enumerate() if self.watch_threads else ())
            if t not in self.threads
            and t not in state.scope_threads
            and t.is_alive()
            and not t.name.startswith(OWN_THREADS)
        ]
        busy = _busy(left)
        while busy and time.monotonic() - started < THREAD_GRACE:
            busy[0].join(THREAD_POLL)
            busy = _busy(busy)
        waited = time.monotonic() - started
        running = [t.name for t in busy]
        if running:
            said.append(
                f"{item.nodeid} left thread(s) {', '.join(map(repr, running))} running "
                f"{THREAD_GRACE:.0f} s after it ended; dbrewind rewound what they wrote until "
                "then, but what they write later reaches the next tests. Stop and join the "
                "threads a test starts before it ends (in the test or a fixture's teardown)."
            )
        elif left and waited >= THREAD_NOTE_AFTER:  # idle pool workers end at once: no news
            names = ", ".join(repr(t.name) for t in left)
            state.stats.note(
                f"{item.nodeid} left thread(s) {names} running; dbrewind waited "
                f"{waited * 1000:.0f} ms for them to finish before the rewind"
            )
        for database in state.active:
            taken = database.take_back(self.checkouts.get(id(database), 0))
            if taken:
                said.append(
                    f"{item.nodeid} left {taken} connection(s) to {database.url.display()} "
                    "checked out (never closed); dbrewind closed them, rolling back what they "
                    "had not committed, so that their locks cannot block the rewind. Close "
                    "connections (a with block, or close()) before the test ends."
                )
        return said


def after_test(
    item: Any, state: PluginState, mark: Any, strategy: Strategy, watch: Watch | None = None
) -> None:
    """Rewind every guarded database after ``item``; report leaks, failures, differences.

    Under strict mode a leak is a :class:`~dbrewind.exceptions.LeakError`, and under
    ``--dbrewind-verify`` a difference from the baseline a
    :class:`~dbrewind.exceptions.VerificationError`: the test fails with their
    messages (the first is the failure's ``__cause__``).
    """
    left = watch.settle(item, state) if watch is not None else []
    guarded = state.guarded()
    if not guarded:
        for message in left:
            warnings.warn(DbrewindLeakWarning(message), stacklevel=1)
        return
    started = time.perf_counter()
    own = {id(db) for db in state.databases.values()}
    dirtied: list[str] = []
    leaks: list[str] = []
    failures: list[str] = []
    compat = {id(db) for db in state.compat or ()}
    real_commits = item.stash.get(REAL_COMMITS, False)
    for database in guarded:  # every one, even when another fails
        reclones = database.reclones
        recoveries = database.rewinder.recoveries if database.rewinder is not None else 0
        # a test that committed for real may have changed the schema too
        committed = strategy is Strategy.CLEAN or id(database) in compat or real_commits
        reset = None if mark is None else mark.reset_sequences
        told = item.stash.get(ESCAPED_NOTHING, None) is database or (
            database.escaped_nothing_in == f"{item.nodeid} (teardown)"
        )
        database.escaped_nothing_in = None
        clean = not committed and not left and told
        try:
            result = database.after_test(
                check_schema=committed, reset_sequences=reset, escaped_nothing=clean
            )
        except Exception as exc:
            failures.append(
                f"dbrewind could not put {database.url.display()} back to its baseline after "
                f"{item.nodeid}: {exc}"
            )
            continue
        if database.rewinder is not None and database.rewinder.recoveries != recoveries:
            state.stats.note(f"after {item.nodeid}: {database.rewinder.last_recovery}")
        failures += [f"{item.nodeid}: {problem}" for problem in database.problems]
        database.problems.clear()
        tables = [_label(state, database, t) for t in result.tables]
        dirtied += tables
        if tables and id(database) in own and strategy is not Strategy.CLEAN and not real_commits:
            leaks += tables
        if database.reclones != reclones:
            message = database.notes[-1]
            state.stats.note(message)
            warnings.warn(DbrewindWarning(f"{item.nodeid}: {message}"), stacklevel=1)
    seconds = time.perf_counter() - started
    if state.compat and strategy is Strategy.SAFETY_NET:
        strategy = Strategy.CLEAN  # its clean_db_urls databases were put back after it
    forced = real_commits and bool(dirtied)
    if forced:
        strategy = Strategy.CLEAN  # an engine of the application's committed for real
    state.stats.add(TestRecord(item.nodeid, strategy, seconds, tuple(dirtied), forced))
    strict = state.strict if mark is None or mark.strict is None else mark.strict
    problems = list(failures[:1])
    if len(failures) > 1:
        problems.append(f"({len(failures) - 1} more database(s) failed the same way.)")
    errors: list[DbrewindError] = []
    for message in left:
        if strict:
            errors.append(LeakError(message))
        else:
            warnings.warn(DbrewindLeakWarning(message), stacklevel=1)
    if leaks:
        message = (
            f"{item.nodeid} committed writes to {', '.join(sorted(leaks))} outside a dbrewind "
            "sandbox; dbrewind rewound them. Use the db / db_session fixtures (rolled back), "
            "or transactional_db / @pytest.mark.dbrewind(transactional=True) when the test "
            "needs real commits."
        )
        if strict:
            errors.append(LeakError(message))
        else:
            warnings.warn(DbrewindLeakWarning(message), stacklevel=1)
    verify = state.verify if mark is None or mark.verify is None else mark.verify
    if verify:
        try:
            _verify(item, state)
        except VerificationError as exc:
            errors.append(exc)
    problems += [str(error) for error in errors]
    if problems:
        failed = pytest.fail.Exception("\n".join(problems), pytrace=False)
        raise failed from (errors[0] if errors else None)


def _verify(item: Any, state: PluginState) -> None:
    """``--dbrewind-verify``: each database compared with its baseline, after the rewind;
    :class:`~dbrewind.exceptions.VerificationError` naming every difference."""
    from ..provision.verify import Snapshot

    problems: list[str] = []
    for alias, database in state.databases.items():
        if database.rewinder is None:
            continue
        now = Snapshot.capture(database.rewinder)
        reference = state.snapshots.get(id(database))
        state.snapshots[id(database)] = now
        if reference is None:
            continue
        problems += [
            f"{item.nodeid} left {alias!r} ({database.url.display()}) different from its "
            f"baseline after the rewind: {problem}"
            for problem in reference.compare(now)
        ]
    if problems:
        raise VerificationError("\n".join(problems))
