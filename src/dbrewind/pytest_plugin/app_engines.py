"""The application's own engines (ini ``dbrewind_engines``) in the plugin's fixtures.

Loaded and pointed at the primary test database when ``dbrewind_databases`` is
set up (:class:`~dbrewind.provision.app_engines.AppEngine`), given back at its
end; each test's sandbox is opened on the engine whose driver the application
uses, and the application's other engines are routed into it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from ..exceptions import DbrewindError
from .config import PRIMARY, load_object
from .state import PluginState, plugin_state

__all__ = ["redirect_app_engines", "restore_app_engines", "route", "sandbox_engine"]


def redirect_app_engines(state: PluginState) -> None:
    """ini ``dbrewind_engines``: load each, point it at the primary test database."""
    if not state.engine_specs:
        return
    from ..provision.app_engines import AppEngine

    url = state.databases[PRIMARY].url
    for spec in state.engine_specs:
        obj = load_object(spec, what="dbrewind_engines", example="app.core.db:engine")
        app_engine = AppEngine.of(spec, obj)
        app_engine.redirect(url)
        state.app_engines.append(app_engine)


def restore_app_engines(state: PluginState) -> None:
    for app_engine in reversed(state.app_engines):
        app_engine.restore()
    state.app_engines.clear()


def sandbox_engine(request: pytest.FixtureRequest, own: Any) -> Any:
    """The engine a test's sandbox opens its real connection on: dbrewind's own ``own``,
    unless the application's engines of the kind (``dbrewind_engines``, pointed at the
    test database) use another driver: then the first of those."""
    is_async = hasattr(own, "sync_engine")
    driver = (own.sync_engine if is_async else own).dialect.driver
    for app_engine in plugin_state(request.config).app_engines:
        if app_engine.is_async == is_async and app_engine.engine.dialect.driver != driver:
            return app_engine.public
    return own


def route(request: pytest.FixtureRequest, sandbox: Any, own: Any) -> None:
    """Route the application's other engines of the sandbox's kind into it, and
    dbrewind's own engine ``own`` when the sandbox is on one of the application's."""
    is_async = hasattr(own, "sync_engine")
    for app_engine in plugin_state(request.config).app_engines:
        if app_engine.is_async == is_async:
            try:
                sandbox.route(app_engine.public)
            except DbrewindError as exc:
                raise pytest.fail.Exception(
                    f"dbrewind: dbrewind_engines = {app_engine.spec!r}: {exc}", pytrace=False
                ) from None
    if sandbox.engine is not own:
        # db_engine / async_db_engine too, when their driver is the application's
        with contextlib.suppress(DbrewindError):
            sandbox.route(own)
