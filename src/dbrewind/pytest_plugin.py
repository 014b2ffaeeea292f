"""The dbrewind pytest plugin (registered through the ``pytest11`` entry point).

Configuration, fixtures and the marker are described in the README ("The pytest plugin"). The
plugin is a thin layer: :class:`~dbrewind.Rewinder` does the clean strategy,
:mod:`dbrewind.sandbox` the rollback strategy, :mod:`dbrewind._template` the
prepared-template cache.

Nothing happens to any database until a test asks for a dbrewind fixture or
marker, or a database URL is configured (``--dbrewind-url``, ``DBREWIND_URL``,
ini ``dbrewind_url``), or a ``clean_db_urls`` fixture exists.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from ._plugin_config import (
    PRIMARY,
    DatabaseConfig,
    DbrewindMark,
    cache_dir,
    load_callable,
    mark_for,
    resolve_databases,
)
from ._plugin_db import ManagedDatabase, Stats, TestRecord
from .exceptions import ConfigurationError, DbrewindError, NotPreparedError
from .rewinder import Rewinder

__all__ = [
    "DbrewindLeakWarning",
    "async_db_engine",
    "async_db_session",
    "db",
    "db_assert",
    "db_engine",
    "db_session",
    "db_url",
    "dbrewind_databases",
    "dbrewind_setup",
    "transactional_db",
]

DB_FIXTURES = frozenset(
    {
        "db",
        "db_session",
        "async_db_session",
        "transactional_db",
        "db_assert",
        "db_url",
        "db_engine",
        "async_db_engine",
        "dbrewind_databases",
    }
)
ROLLBACK_FIXTURES = frozenset({"db", "db_session", "async_db_session", "db_assert"})


class DbrewindLeakWarning(UserWarning):
    """A test committed writes outside its sandbox; dbrewind rewound them."""


# ------------------------------------------------------------------- state


class _State:
    """Everything the plugin keeps for one pytest run (one per xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.strict: bool = bool(config.getoption("dbrewind_strict", False))
        self.verify: bool = bool(config.getoption("dbrewind_verify", False))
        self.rebuild: bool = bool(config.getoption("dbrewind_rebuild", False))
        self.lock_timeout = _lock_timeout(config)
        # pytest-xdist gives each worker's config a ``workerinput``; the
        # environment variable would leak into pytest runs the tests start.
        workerinput = getattr(config, "workerinput", None) or {}
        self.worker: str | None = workerinput.get("workerid") or None
        self.stats = Stats()
        self.managed: dict[str, ManagedDatabase] = {}
        self.compat: dict[str, Rewinder] = {}
        self._databases: dict[str, DatabaseConfig] | None = None
        self._config_error: DbrewindError | None = None

    @property
    def explicit(self) -> bool:
        """Whether the user configured a database (so every test is guarded)."""
        cfg = self.config
        return bool(
            cfg.getoption("dbrewind_url", None)
            or os.environ.get("DBREWIND_URL", "").strip()
            or str(cfg.getini("dbrewind_url") or "").strip()
            or cfg.getini("dbrewind_databases")
        )

    def databases(self) -> dict[str, DatabaseConfig]:
        if self._config_error is not None:
            raise self._config_error
        if self._databases is None:
            try:
                self._databases = resolve_databases(self.config)
            except DbrewindError as exc:
                self._config_error = exc
                raise
        return self._databases


def _lock_timeout(config: pytest.Config) -> float | None:
    """ini ``dbrewind_lock_timeout``: seconds (default 10), or ``none`` for no limit."""
    raw = str(config.getini("dbrewind_lock_timeout") or "").strip()
    if not raw:
        return 10.0
    if raw.lower() == "none":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise pytest.UsageError(
            f"dbrewind_lock_timeout = {raw!r}: give the seconds a rewind may wait for a lock "
            "another session holds (a number above 0, default 10), or 'none' for no limit."
        )
    return seconds


_STATE = pytest.StashKey[_State]()
_MARK = pytest.StashKey["DbrewindMark | ConfigurationError | None"]()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


# ------------------------------------------------------------------- hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbrewind", "dbrewind: a database in a known state for every test")
    group.addoption(
        "--dbrewind-url",
        dest="dbrewind_url",
        default=None,
        help="Database URL for the tests (overrides DBREWIND_URL and ini dbrewind_url). "
        "An application database name gets a derived '<name>_test' database.",
    )
    group.addoption(
        "--dbrewind-strict",
        dest="dbrewind_strict",
        action="store_true",
        default=False,
        help="Fail a test that commits writes outside its sandbox (default: warn).",
    )
    group.addoption(
        "--dbrewind-verify",
        dest="dbrewind_verify",
        action="store_true",
        default=False,
        help="After each test, compare every table with the baseline (row counts and a "
        "checksum) and fail the test that left a difference.",
    )
    group.addoption(
        "--dbrewind-rebuild",
        dest="dbrewind_rebuild",
        action="store_true",
        default=False,
        help="Rebuild the prepared template even when the schema fingerprint is unchanged.",
    )
    # pytest-clean-database's option, for suites written for it (unless that plugin
    # is installed too and registered it)
    with contextlib.suppress(ValueError):
        group.addoption(
            "--clean-db-pg-schema",
            dest="clean_db_pg_schema",
            default="public",
            help="PostgreSQL schema of the clean_db_urls databases (pytest-clean-database).",
        )
    parser.addini("dbrewind_url", "Database URL for the tests (see --dbrewind-url).", default="")
    parser.addini(
        "dbrewind_databases",
        "More databases, one 'alias = url' per line; each is isolated like the primary one.",
        type="linelist",
        default=[],
    )
    parser.addini(
        "dbrewind_setup",
        "Schema setup run once per run: 'package.module:callable' receiving a Connection.",
        default="",
    )
    parser.addini(
        "dbrewind_lock_timeout",
        "Seconds a rewind waits for a lock another session holds (a transaction a test left "
        "open) before the test errors, naming that session; 'none' for no limit. Default 10.",
        default="",
    )
    parser.addini(
        "dbrewind_fingerprint_paths",
        "Files or directories (models, migrations) whose contents decide when the prepared "
        "template is rebuilt, relative to the rootdir.",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dbrewind(transactional=False, data=(), backends=(), verify=None, strict=None): "
        'how dbrewind isolates this test; see the README\'s "The pytest plugin".',
    )
    config.stash[_STATE] = _State(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = _state(config)
    try:
        databases = state.databases()
    except DbrewindError as exc:
        return [f"dbrewind: configuration error: {exc}"]
    return [f"dbrewind: {db.header()}" for db in databases.values()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    for item in items:
        try:
            mark = mark_for(item)
        except ConfigurationError as exc:
            item.stash[_MARK] = exc
            continue
        item.stash[_MARK] = mark
        if mark is not None and mark.backends:
            try:
                backend = state.databases()[PRIMARY].backend
            except DbrewindError:
                continue  # reported when the database is prepared
            if backend not in mark.backends:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"dbrewind: runs on {', '.join(mark.backends)}, not {backend}"
                    )
                )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _state(config)
    lines = state.stats.lines()
    if not lines:
        return
    terminalreporter.write_sep("-", "dbrewind")
    for line in lines:
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _state(session.config)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["dbrewind_stats"] = state.stats.to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: fold a worker's statistics into the controller's summary."""
    data = getattr(node, "workeroutput", {}).get("dbrewind_stats")
    if data:
        _state(node.config).stats.merge_json(data)


# ------------------------------------------------------------- session fixtures


@pytest.fixture(scope="session")
def dbrewind_setup(pytestconfig: pytest.Config) -> Any:
    """The schema setup, run once per run into the prepared template.

    Override this session fixture in ``conftest.py`` to return a callable that
    receives a SQLAlchemy Connection (or a list of them, or a dict of them by
    database alias); :mod:`dbrewind.setup` has ready-made ones for metadata,
    Alembic and SQL files. By default it is ini ``dbrewind_setup``
    (``package.module:callable``), or nothing.
    """
    spec = str(pytestconfig.getini("dbrewind_setup") or "").strip()
    return load_callable(spec) if spec else None


def _setups_for(value: Any, alias: str) -> list[Callable[[Connection], object]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return _setups_for(value.get(alias), alias)
    if callable(value):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        steps = list(value)
        if all(callable(s) for s in steps):
            return steps
    raise ConfigurationError(
        f"dbrewind_setup returned {value!r}; return a callable that receives a Connection, "
        "a list of them, or a dict of them by database alias (e.g. {'default': setup})."
    )


@pytest.fixture(scope="session")
def dbrewind_databases(
    pytestconfig: pytest.Config, dbrewind_setup: Any
) -> Iterator[dict[str, ManagedDatabase]]:
    """Every configured database, prepared, by alias (``"default"`` is the primary one).

    Each is its own test database cloned from its own prepared template, and
    each is rewound after every test. Extra databases come from the ini
    ``dbrewind_databases`` (``alias = url`` lines); reach one with
    ``dbrewind_databases["reports"].engine`` (or ``.url``, ``.async_engine``).
    """
    state = _state(pytestconfig)
    cache = cache_dir(pytestconfig)
    paths = [pytestconfig.rootpath / p for p in pytestconfig.getini("dbrewind_fingerprint_paths")]
    try:
        databases = state.databases()
    except DbrewindError as exc:
        error: DbrewindError | None = exc
    else:
        error = None
    if error is not None:
        pytest.fail(f"dbrewind: {error}", pytrace=False)
    try:
        for alias, dbconfig in databases.items():
            managed = ManagedDatabase(
                dbconfig,
                cache=cache,
                worker=state.worker,
                rebuild=state.rebuild,
                fingerprint_paths=paths,
            )
            state.managed[alias] = managed
            managed.prepare(_setups_for(dbrewind_setup, alias))
            managed.rewinder.lock_timeout = state.lock_timeout
            state.stats.prepare_seconds += managed.prepare_seconds
            if managed.built_template:
                state.stats.templates_built += 1
            else:
                state.stats.templates_reused += 1
            if state.verify:
                managed.capture_baseline()
        yield dict(state.managed)
    finally:
        for managed in state.managed.values():
            managed.close()
        state.managed.clear()


def _primary(databases: Mapping[str, ManagedDatabase]) -> ManagedDatabase:
    return databases[PRIMARY]


@pytest.fixture(scope="session")
def db_url(dbrewind_databases: dict[str, ManagedDatabase]) -> str:
    """The primary test database's URL (with its password), for the application's config."""
    return _primary(dbrewind_databases).url.url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def db_engine(dbrewind_databases: dict[str, ManagedDatabase]) -> Engine:
    """The session's sync Engine on the primary test database.

    Inside a test that uses ``db``/``db_session`` its connections are routed
    into the rollback sandbox; elsewhere its commits are real (and rewound by
    the safety net after the test).
    """
    return _primary(dbrewind_databases).engine


@pytest.fixture(scope="session")
def async_db_engine(dbrewind_databases: dict[str, ManagedDatabase]) -> AsyncEngine:
    """The session's AsyncEngine on the primary test database, usable from any event loop.

    It keeps no pooled connections (``NullPool``), so no connection outlives
    the loop that opened it: no "attached to a different loop" whatever the
    loop scope. Each ``connect()`` opens a connection (a few ms); inside a
    test that uses ``async_db_session`` it is routed into that test's sandbox.
    """
    return _primary(dbrewind_databases).async_engine


# ------------------------------------------------------------ function fixtures


def _mark(item: pytest.Item) -> DbrewindMark | None:
    found = item.stash.get(_MARK, None)
    if isinstance(found, ConfigurationError):
        raise found
    return found


def _is_transactional(request: pytest.FixtureRequest) -> bool:
    mark = _mark(request.node) if isinstance(request.node, pytest.Item) else None
    return bool(mark and mark.transactional) or "transactional_db" in request.fixturenames


def _data_dir(request: pytest.FixtureRequest) -> Path:
    path = getattr(request.node, "path", None)
    return Path(path).parent if path is not None else request.config.rootpath


@pytest.fixture(autouse=True)
def _dbrewind_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """The safety net: after every test, rewind whatever was committed, and say so."""
    item = request.node
    state = _state(request.config)
    try:
        mark = _mark(item) if isinstance(item, pytest.Item) else None
    except ConfigurationError as exc:
        bad_mark: ConfigurationError | None = exc
    else:
        bad_mark = None
    if bad_mark is not None:
        pytest.fail(str(bad_mark), pytrace=False)
    if mark is not None or state.explicit:
        # prepared up front so that a test without fixtures is still guarded
        request.getfixturevalue("dbrewind_databases")
    compat = _compat_rewinders(request, state)
    transactional = _is_transactional(request)
    rollback = not transactional and bool(ROLLBACK_FIXTURES.intersection(request.fixturenames))
    if mark is not None and mark.data and not rollback and state.managed:
        from .data import load_data

        with state.managed[PRIMARY].engine.begin() as conn:
            load_data(conn, *mark.data, base_dir=_data_dir(request))
        transactional = True
    strategy = "transactional" if transactional else "rollback" if rollback else "none"
    yield
    if not state.managed and not compat:
        return
    started = time.perf_counter()
    dirtied: list[str] = []
    leaks: list[str] = []
    for alias, managed in state.managed.items():
        result = managed.rewinder.rewind()
        tables = [t if alias == PRIMARY else f"{alias}:{t}" for t in result.tables]
        dirtied += tables
        if tables and not transactional:
            leaks += tables
    for rewinder in compat:
        with contextlib.suppress(NotPreparedError):  # the user's fixture dropped it meanwhile
            dirtied += list(rewinder.rewind().tables)
    seconds = time.perf_counter() - started
    if compat and strategy == "none":
        strategy = "clean_db_urls"
    state.stats.add(TestRecord(item.nodeid, strategy, seconds, tuple(dirtied)))
    strict = state.strict if mark is None or mark.strict is None else mark.strict
    problems: list[str] = []
    if leaks:
        message = (
            f"{item.nodeid} committed writes to {', '.join(sorted(leaks))} outside a dbrewind "
            "sandbox; dbrewind rewound them. Use the db / db_session fixtures (rolled back), "
            "or transactional_db / @pytest.mark.dbrewind(transactional=True) when the test "
            "needs real commits."
        )
        if strict:
            problems.append(message)
        else:
            warnings.warn(DbrewindLeakWarning(message), stacklevel=1)
    verify = state.verify if mark is None or mark.verify is None else mark.verify
    if verify:
        for alias, managed in state.managed.items():
            for problem in managed.verify():
                problems.append(
                    f"{item.nodeid} left {alias!r} ({managed.url.display()}) different from "
                    f"its baseline after the rewind: {problem}"
                )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _compat_rewinders(request: pytest.FixtureRequest, state: _State) -> list[Rewinder]:
    """pytest-clean-database compatibility: track and rewind the ``clean_db_urls`` databases."""
    try:
        urls = request.getfixturevalue("clean_db_urls")
    except pytest.FixtureLookupError:
        return []
    if isinstance(urls, str):
        urls = [urls]
    schema = request.config.getoption("clean_db_pg_schema", "public") or "public"
    out: list[Rewinder] = []
    new = False
    for url in urls:
        key = str(url)
        rewinder = state.compat.get(key)
        if rewinder is None:
            rewinder = Rewinder(key, schemas=(schema,), lock_timeout=state.lock_timeout)
            rewinder.prepare()
            state.compat[key] = rewinder
            new = True
        out.append(rewinder)
    if new:
        # set up after clean_db_urls, so torn down (closing our connections) before it
        request.getfixturevalue("_dbrewind_compat_closer")
    return out


@pytest.fixture(scope="session")
def _dbrewind_compat_closer(pytestconfig: pytest.Config) -> Iterator[None]:
    yield
    state = _state(pytestconfig)
    for rewinder in state.compat.values():
        rewinder.close()
    state.compat.clear()


@pytest.fixture
def _dbrewind_sandbox(
    request: pytest.FixtureRequest, dbrewind_databases: dict[str, ManagedDatabase]
) -> Iterator[Any]:
    from .sandbox import Sandbox

    managed = _primary(dbrewind_databases)
    # check=False: the autouse guard runs the one safety-net check after every test
    sandbox = Sandbox(managed.engine, rewinder=managed.rewinder, check=False)
    sandbox.start()
    try:
        mark = _mark(request.node)
        if mark is not None and mark.data:
            from .data import load_data

            load_data(sandbox.connection, *mark.data, base_dir=_data_dir(request))
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def db(
    request: pytest.FixtureRequest, dbrewind_databases: dict[str, ManagedDatabase]
) -> Iterator[Connection]:
    """A Connection to the primary test database inside the rollback sandbox.

    Fastest isolation (two round trips): the test runs in one outer
    transaction that is rolled back afterwards; the application's own
    ``BEGIN``/``COMMIT`` become savepoints, and ``db_engine`` connections are
    routed here. It cannot show real commit behaviour (other connections,
    threads, ``SELECT ... FOR UPDATE`` waits): use ``transactional_db`` for
    those. Under ``@pytest.mark.dbrewind(transactional=True)`` this is a plain
    connection whose commits are real, rewound after the test.
    """
    if _is_transactional(request):
        with _primary(dbrewind_databases).engine.connect() as conn:
            yield conn
        return
    yield request.getfixturevalue("_dbrewind_sandbox").connection


@pytest.fixture
def db_session(
    request: pytest.FixtureRequest, dbrewind_databases: dict[str, ManagedDatabase]
) -> Iterator[Session]:
    """An ORM Session on the primary test database inside the rollback sandbox.

    The same trade-off as ``db`` (it shares the test's sandbox): fast, but
    nothing is really committed. Under ``transactional=True`` it is a plain
    Session whose commits are real and rewound after the test.
    """
    if _is_transactional(request):
        with Session(_primary(dbrewind_databases).engine) as session:
            yield session
        return
    session = request.getfixturevalue("_dbrewind_sandbox").session()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def transactional_db(dbrewind_databases: dict[str, ManagedDatabase]) -> Iterator[Connection]:
    """A Connection to the primary test database whose commits are real.

    Slower than ``db`` but with real transaction semantics: other connections,
    threads and processes see the commits. After the test only the tables it
    dirtied are put back to the baseline (tracked by triggers, typically a
    millisecond or two per table), so the next test still starts clean.
    """
    with _primary(dbrewind_databases).engine.connect() as conn:
        yield conn


@pytest.fixture
def db_assert(request: pytest.FixtureRequest) -> Any:
    """:class:`dbrewind.testing.DatabaseTestCase` bound to this test's session.

    Async tests get it over ``async_db_session`` (awaitable methods), others
    over ``db_session``; it shares their isolation.
    """
    from .testing import DatabaseTestCase

    if "async_db_session" in request.fixturenames or inspect.iscoroutinefunction(
        getattr(request.node, "function", None)
    ):
        return DatabaseTestCase(request.getfixturevalue("async_db_session"))
    return DatabaseTestCase(request.getfixturevalue("db_session"))


# ----------------------------------------------------------------- async


_LOOP_SCOPES = ("function", "class", "module", "package", "session")


def _async_flavour(request: pytest.FixtureRequest) -> str:
    """Which async fixture runs on this test's event loop: anyio's, or pytest-asyncio's
    for the test's loop scope."""
    if "anyio_backend" in request.fixturenames:
        return "_dbrewind_async_session_anyio"
    func = getattr(request.node, "function", None)
    if not inspect.iscoroutinefunction(func):
        raise ConfigurationError(
            f"{request.node.nodeid} asks for async_db_session but is not an async test. "
            "Make it 'async def' and mark it @pytest.mark.asyncio (pytest-asyncio) or "
            "@pytest.mark.anyio, or use db_session in a sync test."
        )
    try:
        import pytest_asyncio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            f"{request.node.nodeid}: async_db_session needs pytest-asyncio or anyio's pytest "
            "plugin to run the test's event loop. Install pytest-asyncio, or mark the test "
            "@pytest.mark.anyio."
        ) from None
    marker = request.node.get_closest_marker("asyncio")
    scope: Any = None
    if marker is not None:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
    if not scope:
        try:
            scope = request.config.getini("asyncio_default_test_loop_scope")
        except ValueError:
            scope = None
    scope = scope or "function"
    if scope not in _LOOP_SCOPES:
        raise ConfigurationError(f"{request.node.nodeid}: unknown asyncio loop scope {scope!r}.")
    return f"_dbrewind_async_session_{scope}"


@pytest.fixture
def async_db_session(request: pytest.FixtureRequest) -> Any:
    """An AsyncSession on the primary test database inside the async rollback sandbox.

    The same trade-off as ``db_session``, for async code: fast, nothing really
    committed (``transactional=True`` gives real commits, rewound after). It is
    opened and closed on the event loop the test runs on, whichever runs it:
    pytest-asyncio (strict or auto mode, any ``loop_scope``) or anyio; no
    event-loop fixture is needed. ``expire_on_commit=False``: after a commit
    the test can still read attributes without an implicit (and, in async
    code, impossible) lazy load.
    """
    return request.getfixturevalue(_async_flavour(request))


async def _async_session(
    request: pytest.FixtureRequest, databases: dict[str, ManagedDatabase]
) -> AsyncIterator[AsyncSession]:
    managed = _primary(databases)
    mark = _mark(request.node)
    data = mark.data if mark is not None else ()
    if _is_transactional(request):
        session = AsyncSession(managed.async_engine, expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
        return
    from .sandbox import AsyncSandbox

    sandbox = AsyncSandbox(managed.async_engine, rewinder=managed.rewinder, check=False)
    await sandbox.start()
    try:
        if data:
            from .data import aload_data

            await aload_data(sandbox.connection, *data, base_dir=_data_dir(request))
        session = sandbox.session(expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
    finally:
        await sandbox.stop()


def _make_async_fixture(scope: str | None) -> Any:
    async def fixture(
        request: pytest.FixtureRequest, dbrewind_databases: dict[str, ManagedDatabase]
    ) -> AsyncIterator[AsyncSession]:
        async for session in _async_session(request, dbrewind_databases):
            yield session

    name = f"_dbrewind_async_session_{scope or 'anyio'}"
    fixture.__name__ = fixture.__qualname__ = name
    if scope is None:
        return pytest.fixture(name=name)(fixture)
    import pytest_asyncio

    return pytest_asyncio.fixture(loop_scope=scope, name=name)(fixture)  # type: ignore[call-overload]


_dbrewind_async_session_anyio = _make_async_fixture(None)
try:
    import pytest_asyncio as _pytest_asyncio  # noqa: F401
except ImportError:  # pragma: no cover - pytest-asyncio is optional
    pass
else:
    _dbrewind_async_session_function = _make_async_fixture("function")
    _dbrewind_async_session_class = _make_async_fixture("class")
    _dbrewind_async_session_module = _make_async_fixture("module")
    _dbrewind_async_session_package = _make_async_fixture("package")
    _dbrewind_async_session_session = _make_async_fixture("session")
