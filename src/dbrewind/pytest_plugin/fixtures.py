"""Every fixture the plugin provides; their docstrings state the trade-offs.

The databases come from :mod:`dbrewind.provision`, the lifecycle every entry
point shares; the fixtures only choose the isolation for each test.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._test_context import offered
from ..exceptions import ConfigurationError, DbrewindError
from .app_engines import redirect_app_engines, restore_app_engines, route, sandbox_engine
from .config import (
    DB_FIXTURES,
    MARK,
    PRIMARY,
    ROLLBACK_FIXTURES,
    TRANSACTIONAL_FIXTURES,
    baseline_data,
    load_callable,
)
from .state import ESCAPED_NOTHING, SANDBOX_KEY, plugin_state

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.orm import Session

    from ..provision import Database
    from .config import DbrewindMark

__all__ = [
    "DB_FIXTURES",
    "ROLLBACK_FIXTURES",
    "alias",
    "async_db_engine",
    "class_db_session",
    "db",
    "db_assert",
    "db_engine",
    "db_session",
    "db_url",
    "dbrewind_databases",
    "dbrewind_setup",
    "module_db_session",
    "transactional_db",
]


def item_mark(item: Any) -> DbrewindMark | None:
    """The item's merged ``dbrewind`` mark (a bad one raises its ConfigurationError)."""
    found = item.stash.get(MARK, None) if isinstance(item, pytest.Item) else None
    if isinstance(found, ConfigurationError):
        raise found
    return found


def is_transactional(request: pytest.FixtureRequest) -> bool:
    mark = item_mark(request.node)
    return bool(mark and mark.transactional) or not TRANSACTIONAL_FIXTURES.isdisjoint(
        request.fixturenames
    )


def is_async_test(request: pytest.FixtureRequest) -> bool:
    """Whether the test is an ``async def`` (run on an event loop)."""
    return inspect.iscoroutinefunction(getattr(request.node, "function", None))


def data_dir(request: pytest.FixtureRequest) -> Path:
    path = getattr(request.node, "path", None)
    return Path(path).parent if path is not None else request.config.rootpath


# ------------------------------------------------------------- session fixtures


@pytest.fixture(scope="session")
def dbrewind_setup(pytestconfig: pytest.Config) -> Any:
    """The schema setup, run once into the prepared template (kept while unchanged).

    Override this session fixture in ``conftest.py`` to return a callable that
    receives a SQLAlchemy Connection (or a list of them, or a dict of them by
    database alias); :mod:`dbrewind.setup` has ready-made ones for metadata,
    Alembic and SQL files. By default it is ini ``dbrewind_setup``
    (``package.module:callable``), or nothing.
    """
    spec = str(pytestconfig.getini("dbrewind_setup") or "").strip()
    return load_callable(spec) if spec else None


@pytest.fixture(scope="session")
def dbrewind_databases(
    pytestconfig: pytest.Config, dbrewind_setup: Any
) -> Iterator[dict[str, Database]]:
    """Every configured database, prepared, by alias (``"default"`` is the primary one).

    Each is a test database of its own, cloned from its own prepared template,
    leased by this run for its whole life, and rewound after every test. Extra
    databases come from the ini ``dbrewind_databases`` (``alias = url`` lines);
    reach one with ``dbrewind_databases["reports"].engine`` (or ``.url``,
    ``.async_engine``, ``.rewinder``).
    """
    state = plugin_state(pytestconfig)
    try:
        configs = state.configs()
        from .._setups import as_steps
        from ..provision import Target, acquire

        rootpath = pytestconfig.rootpath
        paths = tuple(rootpath / p for p in pytestconfig.getini("dbrewind_fingerprint_paths"))
        for alias, config in configs.items():
            steps = as_steps(dbrewind_setup, alias=alias, what="dbrewind_setup")
            steps += baseline_data(pytestconfig, alias)
            database = acquire(
                Target(
                    url=config.test,
                    setups=tuple(steps),
                    clone=True,
                    worker=state.worker,
                    rebuild=state.rebuild,
                    replace=state.replace,
                    fingerprint_paths=paths,
                    fingerprint_root=rootpath,
                    lock_timeout=state.lock_timeout,
                    lock_wait=state.lock_wait,
                    reset_sequences=state.reset_sequences,  # type: ignore[arg-type]
                    origin="pytest",
                )
            )
            state.databases[alias] = database
        redirect_app_engines(state)
    except DbrewindError as exc:
        restore_app_engines(state)
        for database in state.databases.values():
            database.release()
        state.databases.clear()
        raise pytest.fail.Exception(f"dbrewind: {exc}", pytrace=False) from None
    try:
        if state.verify:
            from ..provision.verify import Snapshot

            for database in state.databases.values():
                assert database.rewinder is not None
                state.snapshots[id(database)] = Snapshot.capture(database.rewinder)
        yield dict(state.databases)
    finally:
        restore_app_engines(state)
        for database in reversed(state.databases.values()):
            database.release()
        state.databases.clear()


def _primary(databases: Mapping[str, Database]) -> Database:
    return databases[PRIMARY]


@pytest.fixture(scope="session")
def db_url(dbrewind_databases: dict[str, Database]) -> str:
    """The primary test database's URL (with its password), for the application's config.

    It names the database this run works on, which may be a clone of its own
    (``<name>_gw0`` under xdist, ``<name>_r1`` when another run holds ``<name>``).
    """
    return _primary(dbrewind_databases).url.url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def db_engine(dbrewind_databases: dict[str, Database]) -> Engine:
    """The session's sync Engine on the primary test database.

    Inside a test that uses ``db``/``db_session`` its connections are routed
    into the rollback sandbox; elsewhere its commits are real (and rewound by
    the safety net after the test).
    """
    return _primary(dbrewind_databases).engine


@pytest.fixture(scope="session")
def async_db_engine(dbrewind_databases: dict[str, Database]) -> AsyncEngine:
    """The session's AsyncEngine on the primary test database, usable from any event loop.

    It keeps no pooled connections (``NullPool``), so no connection outlives
    the loop that opened it: no "attached to a different loop" whatever the
    loop scope. Each ``connect()`` opens a connection (a few ms); inside a
    test that uses ``async_db_session`` it is routed into that test's sandbox.
    """
    try:
        return _primary(dbrewind_databases).async_engine
    except DbrewindError as exc:
        raise pytest.fail.Exception(f"dbrewind: {exc}", pytrace=False) from None


# ------------------------------------------------------------ function fixtures

SANDBOX_WHAT = "where db, db_session and db_engine's connections run"
ASYNC_SANDBOX_WHAT = "where async_db_session runs"


@pytest.fixture
def _dbrewind_sandbox(
    request: pytest.FixtureRequest, dbrewind_databases: dict[str, Database]
) -> Iterator[Any]:
    from ..sandbox import Sandbox

    database = _primary(dbrewind_databases)
    own = database.engine
    # check=False: the autouse guard runs the one safety-net check after every test
    sandbox = Sandbox(sandbox_engine(request, own), rewinder=database.rewinder, check=False)
    threads = set(threading.enumerate())
    sandbox.start()
    watched = database.watch_locks(sandbox, SANDBOX_WHAT)
    request.node.stash[SANDBOX_KEY] = sandbox
    try:
        route(request, sandbox, own)
        mark = item_mark(request.node)
        if mark is not None and mark.data:
            from ..data import load_data

            load_data(sandbox.connection, *mark.data, base_dir=data_dir(request))
        yield sandbox
    finally:
        database.unwatch_locks(watched)
        sandbox.stop()
        # nothing escaped as the sandbox ended, and no thread the test started can
        # still write: the safety net's check after the test has nothing to find
        if sandbox.escaped_nothing and threads.issuperset(threading.enumerate()):
            request.node.stash[ESCAPED_NOTHING] = database


@pytest.fixture
def db(
    request: pytest.FixtureRequest, dbrewind_databases: dict[str, Database]
) -> Iterator[Connection]:
    """A Connection to the primary test database inside the rollback sandbox.

    Fastest isolation (two round trips, and the pool's ping on a server): the test runs in one outer
    transaction that is rolled back afterwards; the application's own
    ``BEGIN``/``COMMIT`` become savepoints, and ``db_engine`` connections are
    routed here. It cannot show real commit behaviour (other connections,
    threads, ``SELECT ... FOR UPDATE`` waits): use ``transactional_db`` for
    those. Under ``@pytest.mark.dbrewind(transactional=True)`` this is a plain
    connection whose commits are real, rewound after the test.
    """
    if is_transactional(request):
        with _primary(dbrewind_databases).engine.connect() as conn:
            yield conn
        return
    yield request.getfixturevalue("_dbrewind_sandbox").connection


@pytest.fixture
def db_session(
    request: pytest.FixtureRequest, dbrewind_databases: dict[str, Database]
) -> Iterator[Session]:
    """An ORM Session on the primary test database inside the rollback sandbox.

    The same trade-off as ``db`` (it shares the test's sandbox): fast, but
    nothing is really committed. Under ``transactional=True`` it is a plain
    Session whose commits are real and rewound after the test.
    """
    session_class = plugin_state(request.config).session_class(is_async=False)
    if is_transactional(request):
        with session_class(_primary(dbrewind_databases).engine) as session, offered(session):
            yield session
        return
    session = request.getfixturevalue("_dbrewind_sandbox").session(session_class)
    try:
        with offered(session):  # the session factories use when given none
            yield session
    finally:
        session.close()


@pytest.fixture
def transactional_db(dbrewind_databases: dict[str, Database]) -> Iterator[Connection]:
    """A Connection to the primary test database whose commits are real.

    Slower than ``db`` but with real transaction semantics: other connections,
    threads and processes see the commits. After the test only the tables it
    dirtied are put back to the baseline (tracked by triggers, typically a
    millisecond or two per table), so the next test still starts clean.
    """
    with _primary(dbrewind_databases).engine.connect() as conn:
        yield conn


# ------------------------------------------------------------ scoped test data


def _make_scoped_session(scope: str) -> Any:
    def fixture(
        request: pytest.FixtureRequest, dbrewind_databases: dict[str, Database]
    ) -> Iterator[Session]:
        from sqlalchemy.orm import Session

        state = plugin_state(request.config)
        session = Session(_primary(dbrewind_databases).scope_engine(), expire_on_commit=False)
        state.scoped_sessions.append(session)
        try:
            yield session
        finally:
            state.scoped_sessions.remove(session)
            session.close()

    fixture.__name__ = fixture.__qualname__ = f"{scope}_db_session"
    fixture.__doc__ = f"""An ORM Session for data that every test of the {scope} builds on.

    Django's ``setUpTestData`` for pytest: a ``scope="{scope}"`` fixture that writes
    through it (a user, a login, a hashed password) runs once per {scope}; what it
    wrote is committed when that fixture is set up and kept as a baseline layer, so
    every test of the {scope} starts from it (whatever an earlier test did), and it
    is rewound when the fixture's scope ends. Write through it in fixtures of that
    scope, and use ``db_session`` in the tests. ``expire_on_commit=False``: the
    objects it made stay readable in the tests.
    """
    return pytest.fixture(scope=scope, name=f"{scope}_db_session")(fixture)  # type: ignore[call-overload]


module_db_session = _make_scoped_session("module")
class_db_session = _make_scoped_session("class")


@pytest.fixture
def db_assert(request: pytest.FixtureRequest) -> Any:
    """:class:`dbrewind.testing.DatabaseAssertions` bound to this test's session.

    Async tests get awaitable methods, over ``async_db_session``, or over
    ``db_session`` when that is the only one the test asked for; other tests
    get plain methods over ``db_session``. It shares their isolation, and sees
    what the test's session wrote and has not committed.
    """
    from ..testing import AsyncDatabaseAssertions, DatabaseAssertions

    names = request.fixturenames
    asks_async = "async_db_session" in names or "dbrewind_async_db_session" in names
    asks_sync = "db_session" in names or "dbrewind_db_session" in names
    is_async = is_async_test(request)
    # the very session the test asked for (it sees what that session has not flushed);
    # an async test that asked for db_session alone gets that one, not a second sandbox
    wanted = "async_db_session" if asks_async or (is_async and not asks_sync) else "db_session"
    name = wanted if wanted in names and _is_ours(request, wanted) else f"dbrewind_{wanted}"
    session = request.getfixturevalue(name)
    if is_async or asks_async:
        return AsyncDatabaseAssertions(session)
    return DatabaseAssertions(session)


def _is_ours(request: pytest.FixtureRequest, name: str) -> bool:
    """Whether the test's fixture ``name`` is dbrewind's (not a project's of that name)."""
    definitions = request._fixturemanager.getfixturedefs(name, request.node)
    module = getattr(definitions[-1].func, "__module__", "") if definitions else ""
    return str(module).startswith("dbrewind.")


def alias(name: str, definition: Any) -> Any:
    """``dbrewind_<name>``: the fixture ``definition`` again, under a name no project
    shadows (see :data:`~dbrewind.pytest_plugin.config.ALIASED`)."""
    marker = definition._fixture_function_marker
    return pytest.fixture(scope=marker.scope, name=f"dbrewind_{name}")(
        definition._get_wrapped_function()
    )
