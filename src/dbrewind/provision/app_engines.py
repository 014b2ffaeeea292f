"""The application's own engines, pointed at the test database for a run.

An application that does ``from app.core.db import engine`` made that engine
from its own settings: left alone, its connections reach the application's
database, outside every sandbox. :class:`AppEngine` takes such an engine (or
a sessionmaker bound to one, sync or async) and, for the run, gives it a pool
of connections to the test database instead — the same pool class, size,
events and dialect as the application configured, only the place it
connects to changes (and ``engine.url`` says so). Its original pool never
hands out a connection again until :meth:`AppEngine.restore`. Per test, the
plugin then routes the engine into the test's rollback sandbox
(:meth:`dbrewind.sandbox.Sandbox.route`), or leaves it on the test database
for real under the clean strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import Pool

from .._asyncio import is_async_engine
from .._backends import backend_named
from .._url import DatabaseURL
from ..dialects import get_dialect
from ..exceptions import ConfigurationError

__all__ = ["AppEngine"]

_ACCEPTS = (
    "a SQLAlchemy Engine or AsyncEngine, or a sessionmaker / async_sessionmaker / "
    "scoped_session bound to one"
)


def _engine_of(spec: str, obj: Any) -> Any:
    """The Engine or AsyncEngine ``obj`` is or is bound to."""
    if isinstance(obj, Engine) or is_async_engine(obj):
        return obj
    factory = getattr(obj, "session_factory", None)  # scoped_session, async_scoped_session
    if factory is not None and hasattr(factory, "kw"):
        return _engine_of(spec, factory)
    kw = getattr(obj, "kw", None)  # sessionmaker, async_sessionmaker
    if isinstance(kw, dict) and hasattr(obj, "class_"):
        bind = kw.get("bind")
        if bind is None:
            raise ConfigurationError(
                f"dbrewind_engines = {spec!r} is a sessionmaker without a bind; name the "
                "engine it is configured with instead (sessionmaker(bind=engine))."
            )
        return _engine_of(spec, bind)
    raise ConfigurationError(
        f"dbrewind_engines = {spec!r} is {type(obj).__name__}, not {_ACCEPTS}."
    )


@dataclass
class AppEngine:
    """One engine of the application's, as ``dbrewind_engines`` names it."""

    spec: str
    """Where it was found: ``package.module:attribute``."""
    public: Any
    """The engine as the application holds it: an Engine, or an AsyncEngine."""
    engine: Engine
    """The sync engine (an AsyncEngine's ``sync_engine``)."""
    is_async: bool
    """Whether the application uses it through an AsyncEngine."""
    _original: tuple[Pool, URL] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, spec: str, obj: Any) -> AppEngine:
        """The engine ``obj`` is or is bound to; a clear error for anything else."""
        public = _engine_of(spec, obj)
        is_async = is_async_engine(public)
        return cls(spec, public, public.sync_engine if is_async else public, is_async)

    def redirect(self, url: DatabaseURL) -> None:
        """Point the engine at ``url``'s database until :meth:`restore`."""
        if self._original is not None:
            return
        engine = self.engine
        backend = backend_named(engine.dialect.name)
        if backend != url.backend:
            raise ConfigurationError(
                f"dbrewind_engines = {self.spec!r} is a {engine.dialect.name} engine, but the "
                f"test database {url.display()} is {url.backend}: dbrewind can only point it "
                "at a test database of its own kind. Give dbrewind_url a URL of that kind."
            )
        if url.is_memory:
            raise ConfigurationError(
                f"dbrewind_engines = {self.spec!r}: the test database is an in-memory SQLite "
                "database, which another engine cannot reach. Use a file "
                "(dbrewind_url = sqlite:///test.db)."
            )
        target = url.url.set(drivername=engine.url.drivername)
        cargs, cparams = engine.dialect.create_connect_args(target)
        defaults = get_dialect(url.backend).connect_defaults(engine.dialect.driver)
        cparams = {**defaults, **cparams}
        if get_dialect(url.backend).databases_are_files:
            cparams.setdefault("check_same_thread", False)  # the app's threads, a live server
        connect = engine.dialect.connect
        original = engine.pool
        pool = original.recreate()  # the app's pool class, size, events and dialect
        pool._creator = _creator(connect, tuple(cargs), cparams)
        self._original = (original, engine.url)
        engine.pool = pool
        engine.url = target

    def restore(self) -> None:
        """Give the engine back its own pool and URL (the test database's pool closed)."""
        if self._original is None:
            return
        pool, url = self._original
        self._original = None
        redirected, self.engine.pool = self.engine.pool, pool
        self.engine.url = url
        redirected.dispose()


def _creator(connect: Callable[..., Any], cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
    def create() -> Any:
        return connect(*cargs, **cparams)

    return create
