"""The plugin's hooks: options, the run's header and summary, markers, fixture scopes.

Nothing here imports SQLAlchemy or touches a database until a test asks for
one: a project whose tests use none pays only for a few hook calls.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from .. import _test_context
from .._context import set_worker, subscribe
from .._strategy import Strategy
from ..exceptions import ConfigurationError, DbrewindError, FixtureShadowedWarning
from .config import (
    ALIASED,
    DB_FIXTURES,
    MARK,
    PRIMARY,
    check_configuration,
    default_url,
    mark_for,
)
from .guard import after_test, blocked_hint
from .state import find_state, install_state, plugin_state

__all__ = [
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_fixture_post_finalizer",
    "pytest_fixture_setup",
    "pytest_report_header",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
    "pytest_testnodedown",
    "pytest_unconfigure",
]

# Fixtures whose setup never writes to a test database: no need to look for a layer.
_QUIET_MODULES = ("_pytest", "pytest_asyncio", "anyio", "xdist", "dbrewind", "pluggy")


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
        "--dbrewind-replace",
        dest="dbrewind_replace",
        action="store_true",
        default=False,
        help="Replace a test database dbrewind did not make that holds tables (by default "
        "that is refused, naming it, so that nothing is lost).",
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
        "dbrewind_reset_sequences",
        "When a rewind puts sequences / AUTO_INCREMENT counters back: 'auto' (default: "
        "always on PostgreSQL and SQLite; on MySQL/MariaDB, where it is DDL, only for tests "
        "marked dbrewind(reset_sequences=True)), 'always' or 'never'.",
        default="",
    )
    parser.addini(
        "dbrewind_engines",
        "The application's own engines, one 'package.module:attribute' per line (an Engine, "
        "AsyncEngine, or a sessionmaker bound to one): pointed at the test database for the "
        "run and routed into each test's rollback sandbox.",
        type="linelist",
        default=[],
    )
    parser.addini(
        "dbrewind_replace",
        "Replace a test database dbrewind did not make that holds tables (see --dbrewind-replace).",
        type="bool",
        default=False,
    )
    parser.addini(
        "dbrewind_session_class",
        "The class of db_session, 'package.module:Class' (a Session subclass, e.g. "
        "sqlmodel:Session). Default: sqlalchemy.orm.Session.",
        default="",
    )
    parser.addini(
        "dbrewind_async_session_class",
        "The class of async_db_session (an AsyncSession subclass, e.g. "
        "sqlmodel.ext.asyncio.session:AsyncSession).",
        default="",
    )
    parser.addini(
        "dbrewind_lock_wait",
        "Seconds another connection's statement may wait on a lock a test's rollback "
        "sandbox holds (it would wait until the test ends: a hang) before dbrewind cancels "
        "it and fails the test, naming both; 'none' never to look. Default 3.",
        default="",
    )
    parser.addini(
        "dbrewind_data",
        "Data files (.json, .yaml, .csv, .sql) loaded into the primary database once, after "
        "the schema setup, as part of the baseline every test starts from (rewound after "
        "each test, never reloaded per test), relative to the rootdir.",
        type="linelist",
        default=[],
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
        "dbrewind(transactional=False, data=(), backends=(), verify=None, strict=None, "
        "reset_sequences=None): "
        'how dbrewind isolates this test; see the README\'s "The pytest plugin".',
    )
    config.addinivalue_line(
        "markers",
        "db: a database test (a tag for selecting tests, -m db; dbrewind's fixtures "
        "isolate the test whether or not it is marked)",
    )
    state = install_state(config)
    check_configuration(config)
    state._unsubscribe.append(subscribe(state.acquired))
    set_worker(state.worker)


def pytest_sessionstart(session: pytest.Session) -> None:
    state = plugin_state(session.config)
    state.session = session
    registry = sys.modules.get("dbrewind.provision.registry")
    if registry is not None:  # an earlier session in this process (pytester) warned already
        registry.forget_warnings()


def pytest_unconfigure(config: pytest.Config) -> None:
    state = find_state(config)
    if state is None:  # pytest_configure failed (a usage error)
        return
    # (the databases themselves were released at the session's end)
    for unsubscribe in state._unsubscribe:
        unsubscribe()
    state._unsubscribe.clear()
    provision = sys.modules.get("dbrewind.provision")
    if provision is not None:  # leases the header took for a run that never used them
        provision.release_reservations()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = plugin_state(config)
    if not state.explicit:
        if not config.getoption("numprocesses", None):
            return []  # named after collection, if a test uses it (below)
        # under xdist the workers collect and the controller never hears which tests
        # ask for a database: name it now, and when it is used
        url = default_url(config, create=False)
        return [f"dbrewind: {url} (default; used when a test asks for a database)"]
    try:
        databases = state.configs()
    except DbrewindError as exc:
        return [f"dbrewind: configuration error: {exc}"]
    lines = [f"dbrewind: {db.header()}" for db in databases.values()]
    if state.worker is None and not config.getoption("numprocesses", None):
        # lease the run's databases now, so that a second run says at once that it works
        # on clones of its own (under xdist each worker does so itself, in the summary)
        from ..provision import Target, reserve

        for db in databases.values():
            try:
                note = reserve(Target(url=db.test, setups=(), clone=True))
            except DbrewindError:
                continue  # the fixture reports it, at the first test that asks
            if note is not None:
                lines.append(f"dbrewind: {note}")
    return lines


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """With no database configured: the default one, named only when a collected test
    asks for it (a run whose tests use databases of their own is not told of it)."""
    state = plugin_state(config)
    if state.explicit or config.getoption("numprocesses", None):
        return []
    if state.asks_default:
        # No SQLAlchemy import for a project that may never use a database.
        url = default_url(config, create=False)
        return [f"dbrewind: {url} (default: no dbrewind_url is set)"]
    if state.compat_possible:
        return ["dbrewind: the databases clean_db_urls names (pytest-clean-database's interface)"]
    return []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = plugin_state(config)
    # pytest-clean-database's interface: a conftest (or test module) defines clean_db_urls
    state.compat_possible = any(
        getattr(plugin, "__file__", None) and hasattr(plugin, "clean_db_urls")
        for plugin in config.pluginmanager.get_plugins()
    ) or any(hasattr(getattr(item, "module", None), "clean_db_urls") for item in items)
    uses_databases = state.explicit or state.compat_possible
    backend: str | None = None
    for item in items:
        try:
            mark = mark_for(item)
        except ConfigurationError as exc:
            item.stash[MARK] = exc
            uses_databases = True
            continue
        item.stash[MARK] = mark
        if mark is not None or not DB_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            uses_databases = state.asks_default = True
        if mark is None or not mark.backends:
            continue
        if backend is None:
            try:
                backend = state.configs()[PRIMARY].backend
            except DbrewindError:
                continue  # reported when the database is prepared
        if backend not in mark.backends:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"dbrewind: runs on {', '.join(mark.backends)}, not {backend}"
                )
            )
    if uses_databases:  # (a project shadowing dbrewind's db asks for a "db": it counts)
        _guard(items, compat=state.compat_possible, engines=bool(state.engine_specs))
        _warn_shadowed(items)


def _warn_shadowed(items: list[pytest.Item]) -> None:
    """A project fixture named like one of dbrewind's: say so once, with the alias.

    One built on a ``dbrewind_<name>`` alias (``def db(dbrewind_db_session)``), or on
    another of dbrewind's fixtures (``def db(db_session)``), is meant: nothing is said.
    """
    said: set[tuple[str, str]] = set()
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name in ALIASED:
            definitions = info.name2fixturedefs.get(name)
            if not definitions:
                continue
            func = definitions[-1].func
            module = getattr(func, "__module__", "") or ""
            if module.startswith("dbrewind.") or any(
                arg.startswith("dbrewind_") or arg in ALIASED for arg in definitions[-1].argnames
            ):
                continue  # built on one of dbrewind's (seed-style ``def db(db_session)``)
            where = _where(func)
            if (name, where) in said:
                continue
            said.add((name, where))
            warnings.warn(
                FixtureShadowedWarning(
                    f"the fixture {name!r} of {where} shadows dbrewind's {name!r}: tests that "
                    f"ask for {name!r} get that one. If that is not meant, rename it; "
                    f"dbrewind's is also there as 'dbrewind_{name}' (a fixture built on "
                    f"that alias keeps the name without this warning)."
                ),
                stacklevel=1,
            )


def _where(func: Any) -> str:
    code = getattr(func, "__code__", None)
    if code is None:
        return repr(func)
    return f"{code.co_filename}:{code.co_firstlineno}"


def _guard(items: list[pytest.Item], *, compat: bool, engines: bool = False) -> None:
    """Give every test the safety net, first among its fixtures (so it is torn down last).

    Only in a run that may use a database: elsewhere a test pays nothing for the
    plugin. (An autouse fixture would cost every test of every project.)
    """
    first = ["_dbrewind_session", "_dbrewind_guard"] if compat else ["_dbrewind_guard"]
    for item in items:
        names = getattr(item, "fixturenames", None)
        if isinstance(names, list) and "_dbrewind_guard" not in names:
            names[:0] = first
            if engines:
                names.insert(_after_wider_scopes(item, names), "_dbrewind_app_engines")


def _after_wider_scopes(item: pytest.Item, names: list[str]) -> int:
    """Where the application's engines' sandbox goes among a test's fixtures: after the
    guard and after every wider-scoped fixture (pytest sets those up first), so that what
    a module's fixtures write through the application is committed for the module, not
    rolled back with the first test's sandbox; before the test's own fixtures."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    at = names.index("_dbrewind_guard") + 1
    for index, name in enumerate(names):
        found = defs.get(name)
        if found and found[-1].scope != "function":
            at = max(at, index + 1)
    return at


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: Any, request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Rows a wider-scoped fixture commits belong to its scope: keep them as a layer;
    the threads it starts belong to its scope too."""
    if fixturedef.scope == "function":
        return (yield)
    state = plugin_state(request.config)
    before = set(threading.enumerate())
    counters = state.counters
    value = yield
    state.scope_threads.update(t for t in threading.enumerate() if t not in before)
    # the factories' counters it moved stay moved for its scope (no second user1)
    state.counter_layers[id(fixturedef)] = counters
    state.counters = _test_context.snapshot_counters()
    if not state.active:
        return value
    module = getattr(getattr(fixturedef, "func", None), "__module__", "") or ""
    if module.startswith(_QUIET_MODULES):
        return value
    for session in state.scoped_sessions:  # module_db_session: what the fixture wrote
        if session.in_transaction():
            session.commit()
    for database in state.guarded():
        if database.refresh(fixturedef):
            state.new_reference(database)
        for note in database.notes:
            state.stats.note(note)
    return value


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test begins: the factories' counters start from the baseline (a test's first
    user is ``user1`` whatever ran before it), and helpers may ask for its session."""
    state = plugin_state(item.config)
    _test_context.restore_counters(state.counters)
    is_async = inspect.iscoroutinefunction(getattr(item, "function", None))
    _test_context.start_test(item.nodeid, is_async=is_async)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """While a sync test runs, a helper given no session may set up its ``db_session``."""
    request = getattr(item, "_request", None)
    if request is None or "_dbrewind_guard" not in getattr(item, "fixturenames", ()):
        return (yield)  # not a database test: nothing to set up on demand
    _test_context.offer_fetch(lambda: request.getfixturevalue("dbrewind_db_session"))
    try:
        return (yield)
    finally:
        _test_context.offer_fetch(None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    """The safety net for a test that has no ``_dbrewind_guard`` fixture.

    In a run whose collection showed no database use, a sandbox of the peewee
    or unittest classes may still have taken one up: every later test ends with
    its check too, after all the test's fixtures were torn down.
    """
    try:
        value = yield
    finally:
        _test_context.clear_test()
    names = getattr(item, "fixturenames", ())
    if "_dbrewind_guard" not in names:
        state = plugin_state(item.config)
        if state.guarded():
            after_test(item, state, None, Strategy.SAFETY_NET)
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test that failed because its own sandbox held a lock another connection needed
    (SQLite's one write lock) gets a section saying so."""
    report = yield
    if call.excinfo is not None and call.when == "call":
        hint = blocked_hint(item, call.excinfo.value)
        if hint is not None:
            report.sections.append(("dbrewind", hint))
    return report


def pytest_fixture_post_finalizer(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    """A wider-scoped fixture was torn down: rewind the rows it kept for its scope."""
    if fixturedef.scope == "function":
        return
    state = plugin_state(request.config)
    state.counters = state.counter_layers.pop(id(fixturedef), state.counters)
    for database in state.guarded():
        if database.pop_layer(fixturedef) is not None:
            state.new_reference(database)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = plugin_state(config)
    lines = state.stats.lines()
    if not lines:
        return
    terminalreporter.write_sep("-", "dbrewind")
    for line in lines:
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = plugin_state(session.config)
    for database in reversed(state.active):
        with contextlib.suppress(Exception):
            database.release()
        for note in database.notes:
            state.stats.note(note)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["dbrewind_stats"] = state.stats.to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: fold a worker's statistics into the controller's summary."""
    data = getattr(node, "workeroutput", {}).get("dbrewind_stats")
    if data:
        plugin_state(node.config).stats.merge_json(data)
