"""The dbrewind pytest plugin (registered through the ``pytest11`` entry point).

Configuration, fixtures and the marker are described in the README ("The pytest plugin").
The plugin is a thin layer over :mod:`dbrewind.provision`, the one lifecycle
every entry point shares:

* :mod:`.hooks` — options, header and summary, markers, fixture scopes (a
  wider-scoped fixture's commits become a baseline layer of its scope);
* :mod:`.fixtures` — every fixture, with its trade-off;
* :mod:`.guard` — the per-test safety net, and ``clean_db_urls`` suites;
* :mod:`.config`, :mod:`.state`, :mod:`.report` — settings, run state, summary.

Importing it imports neither SQLAlchemy nor a driver: nothing happens to any
database until a test asks for a dbrewind fixture or marker, a database URL is
configured (``--dbrewind-url``, ``DBREWIND_URL``, ini ``dbrewind_url``), or a
``clean_db_urls`` fixture exists.
"""

from __future__ import annotations

from ..exceptions import DbrewindLeakWarning
from .async_fixtures import ASYNC_SESSION_FIXTURES, SCOPED_ASYNC_FIXTURES, async_db_session
from .config import ALIASED
from .fixtures import (
    _dbrewind_sandbox,  # noqa: F401
    alias,
    async_db_engine,
    class_db_session,
    db,
    db_assert,
    db_engine,
    db_session,
    db_url,
    dbrewind_databases,
    dbrewind_setup,
    module_db_session,
    transactional_db,
)
from .guard import _dbrewind_app_engines, _dbrewind_guard, _dbrewind_session  # noqa: F401
from .hooks import (
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_fixture_post_finalizer,
    pytest_fixture_setup,
    pytest_report_collectionfinish,
    pytest_report_header,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
    pytest_testnodedown,
    pytest_unconfigure,
)

# the async session fixtures (anyio's, and one per pytest-asyncio loop scope): pytest
# finds fixtures among the plugin module's attributes
globals().update(ASYNC_SESSION_FIXTURES)
globals().update(SCOPED_ASYNC_FIXTURES)  # module_async_db_session, class_async_db_session
# dbrewind_db, dbrewind_db_session, ...: for a project whose own fixtures shadow these
globals().update({f"dbrewind_{name}": alias(name, globals()[name]) for name in ALIASED})

__all__ = [
    "DbrewindLeakWarning",
    "async_db_engine",
    "async_db_session",
    "class_db_session",
    "db",
    "db_assert",
    "db_engine",
    "db_session",
    "db_url",
    "dbrewind_databases",
    "dbrewind_setup",
    "module_db_session",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_fixture_post_finalizer",
    "pytest_fixture_setup",
    "pytest_report_collectionfinish",
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
    "transactional_db",
]
