"""The plugin's async fixtures: ``async_db_session`` on whichever loop runs the test,
and the module- and class-scoped async sessions.

``async_db_session`` picks, per test, the fixture of the loop that runs it:
anyio's, or pytest-asyncio's for the test's loop scope (one fixture per scope,
each opened and closed on that loop).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from .._test_context import offered
from ..exceptions import ConfigurationError, DbrewindError
from .app_engines import route, sandbox_engine
from .fixtures import (
    ASYNC_SANDBOX_WHAT,
    _primary,
    data_dir,
    is_async_test,
    is_transactional,
    item_mark,
)
from .state import SANDBOX_KEY, plugin_state

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from ..provision import Database

__all__ = ["ASYNC_SESSION_FIXTURES", "SCOPED_ASYNC_FIXTURES", "async_db_session"]


_LOOP_SCOPES = ("function", "class", "module", "package", "session")


def _async_flavour(request: pytest.FixtureRequest) -> str:
    """Which async fixture runs on this test's event loop: anyio's, or pytest-asyncio's
    for the test's loop scope."""
    if "anyio_backend" in request.fixturenames:
        return "_dbrewind_async_session_anyio"
    if not is_async_test(request):
        raise ConfigurationError(
            f"{request.node.nodeid} asks for async_db_session but is not an async test. "
            "Make it 'async def' and mark it @pytest.mark.asyncio (pytest-asyncio) or "
            "@pytest.mark.anyio, or use db_session in a sync test."
        )
    if not _HAS_PYTEST_ASYNCIO:
        raise ConfigurationError(
            f"{request.node.nodeid}: async_db_session needs pytest-asyncio or anyio's pytest "
            "plugin to run the test's event loop. Install pytest-asyncio, or mark the test "
            "@pytest.mark.anyio."
        )
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
    event-loop fixture is needed. On a loop that outlives the test
    (``loop_scope`` class, module, package or session) the tests reuse one
    pooled connection of that loop, opened and closed on it; on a
    function-scoped loop each test connects. ``expire_on_commit=False``: after
    a commit the test can still read attributes without an implicit (and, in
    async code, impossible) lazy load.
    """
    try:
        flavour = _async_flavour(request)
    except ConfigurationError as exc:
        raise pytest.fail.Exception(f"dbrewind: {exc}", pytrace=False) from None
    return request.getfixturevalue(flavour)


async def _async_session(
    request: pytest.FixtureRequest, databases: dict[str, Database], pool: Any = None
) -> AsyncIterator[AsyncSession]:
    database = _primary(databases)
    try:
        engine = database.async_engine
    except DbrewindError as exc:
        raise pytest.fail.Exception(f"dbrewind: {exc}", pytrace=False) from None

    mark = item_mark(request.node)
    data = mark.data if mark is not None else ()
    session_class = plugin_state(request.config).session_class(is_async=True)
    if is_transactional(request):
        session = session_class(engine, expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
        return
    from ..sandbox import AsyncSandbox

    own, engine = engine, sandbox_engine(request, engine)
    if engine is own and pool is not None:
        engine = pool  # the loop's own pooled engine: no connect per test
    sandbox = AsyncSandbox(engine, rewinder=database.rewinder, check=False)
    await sandbox.start()
    watched = database.watch_locks(sandbox, ASYNC_SANDBOX_WHAT)
    request.node.stash[SANDBOX_KEY] = sandbox
    try:
        route(request, sandbox, own)
        if data:
            from ..data import aload_data

            await aload_data(sandbox.connection, *data, base_dir=data_dir(request))
        async_session = sandbox.session(session_class, expire_on_commit=False)
        try:
            yield async_session
        finally:
            await async_session.close()
    finally:
        database.unwatch_locks(watched)
        await sandbox.stop()


def _make_async_fixture(scope: str | None) -> Any:
    pool_name = f"_dbrewind_async_pool_{scope}" if scope not in (None, "function") else None

    async def fixture(
        request: pytest.FixtureRequest, dbrewind_databases: dict[str, Database], **pools: Any
    ) -> AsyncIterator[AsyncSession]:
        pool = pools.get(pool_name) if pool_name else None
        async for session in _async_session(request, dbrewind_databases, pool):
            with offered(session):  # the session factories use when given none
                yield session

    name = f"_dbrewind_async_session_{scope or 'anyio'}"
    fixture.__name__ = fixture.__qualname__ = name
    # the loop outlives the test: its pooled engine (a fixture of the loop's scope, set
    # up on that loop) is a parameter, as pytest-asyncio needs
    params = [
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for n in ("request", "dbrewind_databases", *((pool_name,) if pool_name else ()))
    ]
    fixture.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    if scope is None:
        return pytest.fixture(name=name)(fixture)
    import pytest_asyncio

    return pytest_asyncio.fixture(loop_scope=scope, name=name)(fixture)  # type: ignore[call-overload]


def _make_pool_fixture(scope: str) -> Any:
    async def fixture(dbrewind_databases: dict[str, Database]) -> AsyncIterator[Any]:
        try:
            engine = _primary(dbrewind_databases).loop_async_engine()
        except DbrewindError as exc:
            raise pytest.fail.Exception(f"dbrewind: {exc}", pytrace=False) from None
        try:
            yield engine
        finally:
            await engine.dispose()

    name = f"_dbrewind_async_pool_{scope}"
    fixture.__name__ = fixture.__qualname__ = name
    fixture.__doc__ = f"""A pooled AsyncEngine on the primary test database for the event loop
    of pytest-asyncio's ``loop_scope="{scope}"``: opened on that loop and disposed on it
    when the scope ends, so the tests on it reuse one connection instead of each opening
    its own (a connection can never outlive, or change, its loop)."""
    import pytest_asyncio

    return pytest_asyncio.fixture(scope=scope, loop_scope=scope, name=name)(fixture)  # type: ignore[call-overload]


def _has_pytest_asyncio() -> bool:
    try:
        import pytest_asyncio  # noqa: F401  (a pytest plugin: already loaded when installed)
    except ImportError:  # pragma: no cover - pytest-asyncio is optional
        return False
    return True


_HAS_PYTEST_ASYNCIO = _has_pytest_asyncio()
ASYNC_SESSION_FIXTURES: dict[str, Any] = {
    "_dbrewind_async_session_anyio": _make_async_fixture(None)
}
"""The async session fixture for anyio and one per pytest-asyncio loop scope."""
if _HAS_PYTEST_ASYNCIO:
    ASYNC_SESSION_FIXTURES.update(
        {f"_dbrewind_async_session_{scope}": _make_async_fixture(scope) for scope in _LOOP_SCOPES}
    )
    ASYNC_SESSION_FIXTURES.update(
        {f"_dbrewind_async_pool_{scope}": _make_pool_fixture(scope) for scope in _LOOP_SCOPES[1:]}
    )


def _make_scoped_async_session(scope: str) -> Any:
    async def fixture(dbrewind_databases: dict[str, Database]) -> AsyncIterator[AsyncSession]:
        from sqlalchemy.ext.asyncio import AsyncSession

        database = _primary(dbrewind_databases)
        try:
            engine = database.scope_engine(is_async=True)
        except DbrewindError as exc:
            raise pytest.fail.Exception(f"dbrewind: {exc}", pytrace=False) from None
        session = AsyncSession(engine, expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()

    name = f"{scope}_async_db_session"
    fixture.__name__ = fixture.__qualname__ = name
    fixture.__doc__ = f"""``{scope}_db_session`` for async code: an AsyncSession on the
    {scope}'s event loop (pytest-asyncio ``loop_scope="{scope}"``). Await its
    ``commit()`` in the {scope}-scoped fixture that writes: the rows are then kept as
    a layer every test of the {scope} starts from, and rewound when the scope ends.
    """
    if not _HAS_PYTEST_ASYNCIO:
        return None
    import pytest_asyncio

    return pytest_asyncio.fixture(scope=scope, loop_scope=scope, name=name)(fixture)  # type: ignore[call-overload]


SCOPED_ASYNC_FIXTURES: dict[str, Any] = {
    f"{scope}_async_db_session": fixture
    for scope in ("module", "class")
    if (fixture := _make_scoped_async_session(scope)) is not None
}
"""``module_async_db_session`` and ``class_async_db_session`` (with pytest-asyncio)."""
