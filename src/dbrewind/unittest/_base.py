"""What the :mod:`dbrewind.unittest` test cases share: their configuration
(:class:`_DatabaseMixin`), the database each class gets from the lifecycle
(:func:`_database_for`, released by :func:`close_databases`), running a
test between a ``before`` and an ``after`` step (:func:`_run_guarded`), and
what a rollback sandbox's test is told when another connection waited on its
locks (:func:`_watch_locks`, :func:`_unwatch_locks`, :func:`_explain_blocked`).
"""

from __future__ import annotations

import os
import sys
import unittest
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.engine import URL, Engine

from .._asyncio import is_async_engine
from .._context import worker as current_worker
from .._url import DatabaseURL, parse_url
from ..dialects import Capabilities, get_dialect
from ..exceptions import ConfigurationError, SandboxError
from ..provision import Database, Target, acquire, as_steps, databases
from ..rewinder import SetupCallable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ..provision.lockwatch import Watched
    from ..sandbox import AsyncSandbox, Sandbox

__all__ = [
    "_DatabaseMixin",
    "_database_for",
    "_engine_for",
    "_explain_blocked",
    "_resolve_target",
    "_run_guarded",
    "_skipped",
    "_unwatch_locks",
    "_watch_locks",
    "close_databases",
]


# --------------------------------------------------------------------------- databases
def _database_for(cls: type[_DatabaseMixin]) -> Database:
    """The database of ``cls``, from the lifecycle every entry point shares.

    With ``database_url`` and ``database_setup``, the setup runs once into a
    template and the tests run on a clone of it (kept between runs while the
    setup is unchanged; one per xdist worker; another one when a concurrent
    run holds it). With an ``engine``, the database it names is set up in
    place. Without a setup, the database is taken as it is.
    """
    url, given_engine = _resolve_target(cls)
    steps = tuple(as_steps(cls.database_setup, what=f"{cls.__qualname__}.database_setup"))
    if given_engine is not None:
        target = Target(
            url=url, setups=steps, engine=given_engine, allow=cls.allow_database, origin="unittest"
        )
    elif steps:
        target = Target(
            url=url,
            setups=steps,
            clone=True,
            worker=current_worker(),
            allow=cls.allow_database,
            origin="unittest",
        )
    else:
        target = Target(url=url, allow=cls.allow_database, origin="unittest")
    database = acquire(target)
    if steps and database.target.setups != steps:
        raise ConfigurationError(
            f"{cls.__qualname__} gives {url.display()} a database_setup that differs from the "
            f"one it was prepared with ({database.target.setups or 'none'}). Give every test "
            "case on one database the same setup (a common base class), or use another database."
        )
    return database


def _engine_for(cls: type[_DatabaseMixin], database: Database) -> Engine:
    """The class's own engine when it names one (what its code uses), else the database's."""
    given = cls.engine
    if is_async_engine(given):
        return given.sync_engine
    return given if isinstance(given, Engine) else database.engine


def _resolve_target(cls: type[_DatabaseMixin]) -> tuple[DatabaseURL, Engine | None]:
    engine: object = cls.engine
    if is_async_engine(engine):
        engine = engine.sync_engine
    if engine is not None and not isinstance(engine, Engine):
        raise ConfigurationError(
            f"{cls.__qualname__}.engine is a {type(engine).__name__}, not a SQLAlchemy Engine. "
            "Set engine = create_engine(...) or database_url = '...'."
        )
    if cls.database_url is not None:
        return parse_url(cls.database_url), engine
    if engine is not None:
        return parse_url(engine.url), engine
    raise ConfigurationError(
        f"{cls.__qualname__} names no test database. Set the class attribute "
        "database_url = 'postgresql://user@host/app_test' (or engine = create_engine(...))."
    )


def close_databases() -> None:
    """Release every database the test cases took up: rewound, lease given up, closed.

    The databases themselves are kept (a clone is reused by the next run).
    Called at exit anyway; call it earlier before dropping a test database.
    """
    for database in databases():
        if database.target.origin == "unittest":
            database.release()


# --------------------------------------------------------------------------- shared behaviour
class _DatabaseMixin:
    """Configuration shared by the test case classes."""

    database_url: ClassVar[str | URL | None] = None
    """The test database's URL; its name must say ``test`` (or set ``allow_database``)."""
    engine: ClassVar[Engine | AsyncEngine | None] = None
    """An engine to the test database, instead of ``database_url``; the code under test
    should use this engine so that the sandbox can route it."""
    database_setup: ClassVar[SetupCallable | Sequence[SetupCallable] | None] = None
    """Run once per process and database before tracking is installed: a callable that
    receives a Connection (``metadata.create_all``), or a list of them."""
    fixtures: ClassVar[Sequence[str | os.PathLike[str]]] = ()
    """Test-data files (``.sql``, ``.json``, ``.yaml``/``.yml``, ``.csv``), see
    :func:`dbrewind.data.load_data` (keys naming models take their import path there)."""
    fixtures_dir: ClassVar[str | os.PathLike[str] | None] = None
    """Where relative ``fixtures`` paths start (default: the folder of the test's module)."""
    allow_database: ClassVar[bool] = False
    """Allow a database whose name does not say ``test`` (see :class:`dbrewind.Rewinder`)."""

    @classmethod
    def _fixtures_base(cls) -> Path:
        if cls.fixtures_dir is not None:
            return Path(cls.fixtures_dir)
        module = sys.modules.get(cls.__module__)
        module_file = getattr(module, "__file__", None)
        return Path(module_file).parent if module_file else Path.cwd()

    @classmethod
    def database_capabilities(cls) -> Capabilities:
        """What the class's database can do (for skipping by feature)."""
        url, _engine = _resolve_target(cls)
        return get_dialect(url.backend).capabilities


def _skipped(test: unittest.TestCase) -> bool:
    method = getattr(test, test._testMethodName, None)
    return bool(
        getattr(type(test), "__unittest_skip__", False)
        or getattr(method, "__unittest_skip__", False)
    )


def _run_guarded(
    test: unittest.TestCase,
    result: unittest.TestResult | None,
    before: Callable[[], None],
    after: Callable[[], None],
    run: Callable[[unittest.TestResult | None], unittest.TestResult | None],
) -> unittest.TestResult | None:
    """Run ``before``, the test, then ``after``; report their failures as errors of the test."""
    if _skipped(test):
        return run(result)
    if result is None:
        result = test.defaultTestResult()
    try:
        before()
    except Exception:
        result.startTest(test)
        result.addError(test, sys.exc_info())
        result.stopTest(test)
        return result
    try:
        return run(result)
    finally:
        try:
            after()
        except Exception:
            result.addError(test, sys.exc_info())


# --------------------------------------------------------------------------- lock waits
_WHAT = "where the test's self.db and database_engine's connections run"
_FIX = (
    "give that code the test case's database_engine (its connections run in the sandbox), "
    "or use TransactionTestCase, whose commits are real."
)


def _watch_locks(database: Database, sandbox: Sandbox | AsyncSandbox) -> Watched | None:
    """Watch, while a test runs, for other connections' statements that wait on the
    locks of ``sandbox`` (see :meth:`~dbrewind.provision.Database.watch_locks`)."""
    return database.watch_locks(sandbox, _WHAT, _FIX)


def _unwatch_locks(
    test: unittest.TestCase, database: Database, watched: Watched | None
) -> SandboxError | None:
    """Stop watching: the error that fails ``test`` for the waits found (and cancelled)
    meanwhile, naming each; None when there were none."""
    found = database.unwatch_locks(watched, report=False)
    if not found:
        return None
    return SandboxError("\n".join(f"{test.id()}: {message}" for message in found))


def _explain_blocked(sandbox: Sandbox | AsyncSandbox | None, error: BaseException) -> None:
    """When the test's ``error`` is another connection's failure to get the write lock
    its sandbox holds (SQLite's one writer), add a note saying so (Python 3.11+)."""
    add_note: Any = getattr(error, "add_note", None)
    if sandbox is None or add_note is None or not sandbox.active or not sandbox.blocks(error):
        return
    add_note(
        "dbrewind: a connection outside the test's sandbox could not write: the sandbox "
        "holds the database's one write lock (it wrote, and keeps its transaction open "
        "until the test ends), and that connection gave up after its busy timeout. "
        f"Writes the sandbox has not committed block every other connection: {_FIX}"
    )
