"""What the plugin keeps for one pytest run (one per xdist worker)."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from ..exceptions import ConfigurationError, DbrewindError
from .config import DatabaseConfig, explicitly_configured, resolve_databases
from .report import Stats

if TYPE_CHECKING:
    from ..provision import Database
    from ..provision.app_engines import AppEngine
    from ..provision.verify import Snapshot

__all__ = ["ESCAPED_NOTHING", "SANDBOX_KEY", "PluginState", "plugin_state"]

SANDBOX_KEY = pytest.StashKey[Any]()
"""The test's rollback sandbox, kept on its item (the failure report looks at it)."""
ESCAPED_NOTHING = pytest.StashKey[Any]()
"""The database whose sandbox saw, as it ended, that nothing escaped it (and no thread
of the test still ran): the safety net's check after the test is then not needed."""


class PluginState:
    """The run's settings, its databases and what isolating the tests cost."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.strict: bool = bool(config.getoption("dbrewind_strict", False))
        self.verify: bool = bool(config.getoption("dbrewind_verify", False))
        self.rebuild: bool = bool(config.getoption("dbrewind_rebuild", False))
        self.replace: bool = bool(
            config.getoption("dbrewind_replace", False) or config.getini("dbrewind_replace")
        )
        self.lock_timeout = _lock_timeout(config)
        self.lock_wait = _lock_wait(config)
        self.reset_sequences = _reset_sequences(config)
        # pytest-xdist gives each worker's config a ``workerinput``; the
        # environment variable would leak into pytest runs the tests start.
        workerinput = getattr(config, "workerinput", None) or {}
        self.worker: str | None = workerinput.get("workerid") or None
        self.explicit = explicitly_configured(config)
        """The user configured a database, so every test is guarded."""
        self.stats = Stats()
        self.session: pytest.Session | None = None
        self.databases: dict[str, Database] = {}
        """The plugin's own databases (``dbrewind_databases``), by alias."""
        self.compat: list[Database] | None = None
        """The ``clean_db_urls`` databases, once that fixture was set up."""
        self.compat_possible = False
        """Some conftest or test module defines a ``clean_db_urls`` fixture."""
        self.active: list[Database] = []
        """Every database acquired during this session, by any entry point."""
        self.engine_specs: list[str] = [
            str(line).strip() for line in config.getini("dbrewind_engines") if str(line).strip()
        ]
        """ini ``dbrewind_engines``: the application's engines, as import paths."""
        self.app_engines: list[AppEngine] = []
        """Those engines, loaded and pointed at the primary test database."""
        self.scoped_sessions: list[Any] = []
        """The open ``module_db_session`` / ``class_db_session`` sessions."""
        self.asks_default = False
        """A collected test asks for one of dbrewind's database fixtures (or its marker)."""
        self.scope_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        """Threads a module-, class- or session-scoped fixture started (a module's
        ``TestClient`` portal): they belong to that scope, not to the test whose setup
        made the fixture."""
        self.counters: dict[Any, int] = {}
        """The factories' counters every test starts from: where the wider-scoped
        fixtures set up so far left them (empty: every counter starts at 1)."""
        self.counter_layers: dict[int, dict[Any, int]] = {}
        """Per wider-scoped fixture (by ``id`` of its definition): the counters before
        it was set up, put back when it is torn down."""
        self.snapshots: dict[int, Snapshot] = {}
        """``--dbrewind-verify``: the reference contents of each database."""
        self._configs: dict[str, DatabaseConfig] | None = None
        self._session_classes: dict[bool, Any] = {}
        self._config_error: DbrewindError | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    def session_class(self, *, is_async: bool) -> Any:
        """ini ``dbrewind_session_class`` / ``dbrewind_async_session_class`` (e.g. SQLModel's
        ``sqlmodel:Session``, ``sqlmodel.ext.asyncio.session:AsyncSession``): the class of
        ``db_session`` / ``async_db_session``; SQLAlchemy's by default. Loaded once."""
        if is_async not in self._session_classes:
            name = "dbrewind_async_session_class" if is_async else "dbrewind_session_class"
            spec = str(self.config.getini(name) or "").strip()
            if is_async:
                from sqlalchemy.ext.asyncio import AsyncSession as default
            else:
                from sqlalchemy.orm import Session as default  # type: ignore[assignment]
            found: Any = default
            if spec:
                from .config import load_object

                found = load_object(spec, what=name, example="sqlmodel:Session", kind="class")
                if not (isinstance(found, type) and issubclass(found, default)):
                    raise ConfigurationError(
                        f"{name} = {spec!r} is {found!r}, not a subclass of "
                        f"{default.__module__}.{default.__name__}."
                    )
            self._session_classes[is_async] = found
        return self._session_classes[is_async]

    def configs(self) -> dict[str, DatabaseConfig]:
        """The configured databases by alias (parsed once; a bad URL raises every time)."""
        if self._config_error is not None:
            raise self._config_error
        if self._configs is None:
            try:
                self._configs = resolve_databases(self.config)
            except DbrewindError as exc:
                self._config_error = exc
                raise
        return self._configs

    # ---------------------------------------------------------- databases
    def acquired(self, database: Database) -> None:
        """Provision listener: a database was acquired (by any entry point) in this process."""
        if self.session is None or database in self.active:
            return
        self.active.append(database)
        # Released at the point of the session's teardown that matches when it was
        # acquired: after the fixtures set up later, before the ones set up earlier
        # (a user's fixture that created its tables, and drops them at the end).
        with contextlib.suppress(AssertionError):  # not inside a test's setup chain
            self.session.addfinalizer(database.release)
        self.stats.prepare_seconds += database.prepare_seconds
        if database.template is not None:
            if database.built_template:
                self.stats.templates_built += 1
            else:
                self.stats.templates_reused += 1
        for note in database.notes:
            self.stats.note(note)

    def new_reference(self, database: Database) -> None:
        """``--dbrewind-verify``: a scope's layer was kept or rewound, so what ``database``
        holds now is what the next tests must find after their rewinds."""
        if database.rewinder is not None and (self.verify or id(database) in self.snapshots):
            from ..provision.verify import Snapshot

            self.snapshots[id(database)] = Snapshot.capture(database.rewinder)

    def guarded(self) -> list[Database]:
        """The databases the per-test safety net rewinds: every active one that is tracked,
        unless a sandbox spanning several tests holds it (a unittest class's)."""
        return [db for db in self.active if db.safety_net and not db.released and not db.in_sandbox]


_STATE = pytest.StashKey[PluginState]()


def plugin_state(config: pytest.Config) -> PluginState:
    """The run's :class:`PluginState` (made in ``pytest_configure``)."""
    return config.stash[_STATE]


def find_state(config: pytest.Config) -> PluginState | None:
    """The run's :class:`PluginState`, or None when ``pytest_configure`` did not get to it."""
    return config.stash.get(_STATE, None)


def install_state(config: pytest.Config) -> PluginState:
    state = PluginState(config)
    config.stash[_STATE] = state
    return state


def _seconds(config: pytest.Config, name: str, default: float, what: str) -> float | None:
    """ini ``name``: seconds (``default`` when unset), or ``none`` for no limit."""
    raw = str(config.getini(name) or "").strip()
    if not raw:
        return default
    if raw.lower() == "none":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise pytest.UsageError(
            f"{name} = {raw!r}: give the seconds {what} (a number above 0, default "
            f"{default:g}), or 'none' for no limit."
        )
    return seconds


def _reset_sequences(config: pytest.Config) -> str:
    """ini ``dbrewind_reset_sequences``: ``auto`` (default), ``always`` or ``never``."""
    raw = str(config.getini("dbrewind_reset_sequences") or "").strip()
    if not raw:
        return "auto"
    if raw.lower() in ("auto", "always", "never"):
        return raw.lower()
    raise pytest.UsageError(
        f"dbrewind_reset_sequences = {raw!r}: give auto (the default: always on PostgreSQL "
        "and SQLite, on MySQL/MariaDB only for tests marked "
        "@pytest.mark.dbrewind(reset_sequences=True)), always or never."
    )


def _lock_timeout(config: pytest.Config) -> float | None:
    """ini ``dbrewind_lock_timeout``: seconds (default 10), or ``none`` for no limit."""
    return _seconds(
        config, "dbrewind_lock_timeout", 10.0, "a rewind may wait for a lock another session holds"
    )


def _lock_wait(config: pytest.Config) -> float | None:
    """ini ``dbrewind_lock_wait``: seconds (default 3), or ``none`` never to look."""
    return _seconds(
        config,
        "dbrewind_lock_wait",
        3.0,  # dbrewind.provision.lockwatch.DEFAULT_LIMIT, not imported before it is used
        "another connection may wait on a lock a test's sandbox holds",
    )
