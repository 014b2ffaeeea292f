"""The pytest plugin's configuration: database URLs, the setup callable, marker options.

Importing this module imports nothing heavy: URLs are parsed (with SQLAlchemy)
only when a database is configured or asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._backends import Backend, backend_named
from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from .._url import DatabaseURL

__all__ = [
    "ALIASED",
    "DB_FIXTURES",
    "ENV_URL",
    "MARK",
    "PRIMARY",
    "ROLLBACK_FIXTURES",
    "TRANSACTIONAL_FIXTURES",
    "DatabaseConfig",
    "DbrewindMark",
    "baseline_data",
    "cache_dir",
    "check_configuration",
    "default_url",
    "derive_test_url",
    "explicitly_configured",
    "load_callable",
    "load_object",
    "mark_for",
    "resolve_databases",
]

MARK = pytest.StashKey["Any"]()
"""An item's merged ``dbrewind`` mark, None, or the ConfigurationError parsing it raised."""

ALIASED = (
    "db",
    "db_session",
    "async_db_session",
    "transactional_db",
    "db_assert",
    "db_url",
    "db_engine",
    "async_db_engine",
)
"""Fixtures that also answer to ``dbrewind_<name>`` (for a project whose own ``db`` or
``db_session`` fixture shadows dbrewind's)."""

DB_FIXTURES = frozenset(
    {
        *ALIASED,
        *(f"dbrewind_{name}" for name in ALIASED),
        "dbrewind_databases",
        "module_db_session",
        "class_db_session",
        "module_async_db_session",
        "class_async_db_session",
    }
)
"""A test asking for one of these uses the plugin's database."""
ROLLBACK_FIXTURES = frozenset(
    {
        name
        for base in ("db", "db_session", "async_db_session", "db_assert")
        for name in (base, f"dbrewind_{base}")
    }
)
"""These run the test in the rollback sandbox (unless it is marked transactional)."""

TRANSACTIONAL_FIXTURES = frozenset({"transactional_db", "dbrewind_transactional_db"})
"""These run the test under the clean strategy: real commits, rewound after."""

PRIMARY = "default"
"""Alias of the primary database: the one behind ``db``, ``db_engine``, ``db_session``."""

ENV_URL = "DBREWIND_URL"
"""The environment variable naming the primary database."""


@dataclass(frozen=True)
class DatabaseConfig:
    """One database the plugin manages, as configured (before any preparation)."""

    alias: str
    configured: DatabaseURL
    """The URL as the user gave it."""
    test: DatabaseURL
    """The test database dbrewind works on (``configured``, or ``<name>_test`` derived from it)."""
    source: str
    """Where the URL came from: ``--dbrewind-url``, ``DBREWIND_URL``, ini, or the default."""

    @property
    def derived(self) -> bool:
        """True when the configured URL names an application database and a test one is derived."""
        return self.test.database != self.configured.database

    @property
    def backend(self) -> Backend:
        return self.test.backend

    def header(self) -> str:
        """One line for the run's header."""
        alias = "" if self.alias == PRIMARY else f"[{self.alias}] "
        line = f"{alias}{self.test.display()} (from {self.source})"
        if self.derived:
            line += (
                f"; {self.configured.database!r} is not a test database, so dbrewind works "
                f"on {self.test.database!r}, created on demand"
            )
        return line


def cache_dir(config: pytest.Config) -> Path:
    """``<rootdir>/.dbrewind``: where the default SQLite database lives.

    Falls back to a directory under the system temp dir when the rootdir is
    not writable.
    """
    path = config.rootpath / ".dbrewind"
    try:
        path.mkdir(exist_ok=True)
        gitignore = path / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# created by dbrewind\n*\n")
        return path
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"dbrewind-{os.getuid()}" / config.rootpath.name
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def derive_test_url(url: DatabaseURL) -> DatabaseURL:
    """``url`` when its database name says test; else the same server with ``<name>_test``.

    SQLite files keep their directory and suffix: ``app.db`` becomes ``app_test.db``.
    """
    if url.name_says_test():
        return url
    from ..dialects import get_dialect

    dialect = get_dialect(url.backend)
    return dialect.sibling(url, f"{dialect.base_name(url)}_test")


def _primary_url(config: pytest.Config) -> tuple[str, str] | None:
    option = config.getoption("dbrewind_url", None)
    if option is not None:
        if not str(option).strip():
            raise ConfigurationError(
                "--dbrewind-url was given an empty URL (an unset variable in the command "
                "line?). Give one such as --dbrewind-url=postgresql://postgres@127.0.0.1/"
                "app_test, or leave the option out to use DBREWIND_URL, ini dbrewind_url or "
                "the default SQLite file."
            )
        return str(option), "--dbrewind-url"
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return env, ENV_URL
    ini = str(config.getini("dbrewind_url") or "").strip()
    if ini:
        return ini, "ini dbrewind_url"
    return None


def _parse_ini_lines(lines: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        alias, sep, url = line.partition("=")
        alias, url = alias.strip(), url.strip()
        if not sep or not alias or not url or not alias.isidentifier():
            raise ConfigurationError(
                f"Bad dbrewind_databases line {line!r}: expected 'alias = url', e.g. "
                "'reports = postgresql://postgres@127.0.0.1/reports_test'."
            )
        if alias in found or alias == PRIMARY:
            raise ConfigurationError(
                f"dbrewind_databases names {alias!r} twice (or uses the reserved alias "
                f"{PRIMARY!r}, which is dbrewind_url's). Give every database its own alias."
            )
        found[alias] = url
    return found


def default_url(config: pytest.Config, *, create: bool = True) -> str:
    """The database used when none is configured: a SQLite file ``<rootdir>/.dbrewind/test.db``.

    (Under the system temp dir when the rootdir is not writable.) With
    ``create=False`` nothing is made on disk: for the run's header, in a
    project that may never use a database.
    """
    folder = cache_dir(config) if create else config.rootpath / ".dbrewind"
    return f"sqlite:///{folder / 'test.db'}"


def explicitly_configured(config: pytest.Config) -> bool:
    """Whether the user configured a database (then every test is guarded)."""
    return bool(
        config.getoption("dbrewind_url", None) is not None
        or os.environ.get(ENV_URL, "").strip()
        or str(config.getini("dbrewind_url") or "").strip()
        or config.getini("dbrewind_databases")
        or config.getini("dbrewind_engines")
    )


def resolve_databases(config: pytest.Config) -> dict[str, DatabaseConfig]:
    """Every database the plugin manages, by alias; :data:`PRIMARY` first.

    The primary URL comes from ``--dbrewind-url``, then ``DBREWIND_URL``, then
    ini ``dbrewind_url``, else a SQLite file in ``<rootdir>/.dbrewind``.
    More come from the ini ``dbrewind_databases`` lines (``alias = url``).
    """
    primary = _primary_url(config)
    text, source = primary if primary is not None else (default_url(config), "default")
    out: dict[str, DatabaseConfig] = {}
    url = _parse(text, source)
    out[PRIMARY] = DatabaseConfig(PRIMARY, url, derive_test_url(url), source)
    for alias, extra in _parse_ini_lines(config.getini("dbrewind_databases")).items():
        parsed = _parse(extra, f"ini dbrewind_databases, {alias}")
        out[alias] = DatabaseConfig(
            alias, parsed, derive_test_url(parsed), "ini dbrewind_databases"
        )
    _check_distinct(out)
    return out


_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
"""``package.module:attribute.path``: where an application keeps its database URL."""


def _from_settings(text: str, source: str) -> str:
    """A URL given as ``app.core.config:settings.SQLALCHEMY_DATABASE_URI``: that value (called
    when callable; a pydantic DSN or SQLAlchemy URL as text)."""
    value = load_object(text, what=source, example="app.core.config:settings.DATABASE_URL")
    if callable(value):
        value = value()
    if hasattr(value, "render_as_string"):
        return str(value.render_as_string(hide_password=False))
    return str(value)


def _parse(text: str, source: str) -> DatabaseURL:
    """``parse_url``, with a bad URL's error saying where it was configured."""
    from .._url import parse_url

    if _SPEC.match(text.strip()):
        text = _from_settings(text.strip(), source)
    try:
        return parse_url(text)
    except ConfigurationError as exc:
        said = str(exc).rstrip(".")
        raise type(exc)(f"{said} (the URL comes from {source}).") from exc.__cause__


def check_configuration(config: pytest.Config) -> None:
    """At configure time: a configured database URL that cannot work stops the run at once.

    A malformed URL, an unsupported database, an unknown or missing driver (or
    no sync driver installed at all), a server URL with no database: a
    :class:`pytest.UsageError` (one ``ERROR:`` line, exit status 4, no test
    run). A server that cannot be reached or refuses the credentials shows
    later, as a one-line error at each test that needs the database
    (connecting costs time a run may not need to spend).
    """
    if not explicitly_configured(config):
        return
    from .state import plugin_state

    try:
        for db in plugin_state(config).configs().values():
            db.test.sync_url()  # dbrewind's own work needs a sync driver
    except ConfigurationError as exc:
        raise pytest.UsageError(f"dbrewind: {exc}") from None


def _check_distinct(databases: Mapping[str, DatabaseConfig]) -> None:
    from .._url import show_url

    seen: dict[str, str] = {}
    for alias, db in databases.items():
        key = show_url(db.test.url.set(drivername=db.backend))
        if key in seen:
            raise ConfigurationError(
                f"dbrewind databases {seen[key]!r} and {alias!r} both resolve to {key}; "
                "each must be its own database, or they would rewind each other."
            )
        seen[key] = alias


def load_callable(spec: str, *, what: str = "dbrewind_setup") -> Callable[..., Any]:
    """Import ``package.module:callable`` (a dotted attribute path after the colon)."""
    obj = load_object(spec, what=what, example="myapp.testing:create_schema", kind="callable")
    if not callable(obj):
        raise ConfigurationError(f"{what} = {spec!r} is not callable: {obj!r}.")
    return obj  # type: ignore[no-any-return]


def load_object(spec: str, *, what: str, example: str, kind: str = "attribute") -> Any:
    """Import ``package.module:attribute`` (a dotted attribute path after the colon)."""
    module_name, sep, attr_path = spec.strip().partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigurationError(
            f"{what} = {spec!r} is not of the form 'package.module:{kind}', e.g. {example!r}."
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{what} = {spec!r}: cannot import module {module_name!r} ({exc}). "
            "Check the name and that it is importable from the test run (pythonpath)."
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigurationError(
                f"{what} = {spec!r}: {module_name!r} has no attribute {attr_path!r}."
            ) from exc
    return obj


def baseline_data(config: pytest.Config, alias: str) -> list[Any]:
    """The setup step of ini ``dbrewind_data`` for database ``alias``: none, or one
    :class:`~dbrewind.data.DataSetup` loading the files (relative to the rootdir) into
    the primary database's baseline after its schema setup."""
    paths = [line.strip() for line in config.getini("dbrewind_data") if line.strip()]
    if not paths or alias != PRIMARY:
        return []
    from ..data import data_setup

    return [data_setup(*paths, base_dir=config.rootpath)]


# ---------------------------------------------------------------- the marker


@dataclass(frozen=True)
class DbrewindMark:
    """Options of ``@pytest.mark.dbrewind(...)``, merged from the closest marks outwards.

    ``transactional``: real commits, cleaned after the test (the ``clean``
    strategy) rather than the rollback sandbox. ``data``: files loaded into
    the test's database before it runs (:func:`dbrewind.data.load_data`).
    ``backends``: run only on these backends (skip elsewhere).
    ``verify``: check the baseline after this test (as ``--dbrewind-verify``).
    ``strict``: a write outside the sandbox fails this test (as
    ``--dbrewind-strict``). ``reset_sequences``: True, the test starts with
    every sequence / ``AUTO_INCREMENT`` counter at its baseline value and its
    rewind puts them back; False, its rewind leaves them where the test left
    them; None, as ini ``dbrewind_reset_sequences`` says (see the README).
    """

    transactional: bool = False
    data: tuple[str, ...] = ()
    backends: tuple[Backend, ...] = ()
    verify: bool | None = None
    strict: bool | None = None
    reset_sequences: bool | None = None


def _as_names(value: Any, option: str, where: str) -> tuple[str, ...]:
    if isinstance(value, (str, os.PathLike)):
        return (os.fspath(value),)
    try:
        items = tuple(value)
    except TypeError:
        raise ConfigurationError(
            f"{where}: @pytest.mark.dbrewind({option}=...) takes a name or a list of names, "
            f"got {value!r}."
        ) from None
    out = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ConfigurationError(
                f"{where}: @pytest.mark.dbrewind({option}=...) takes names, got {item!r}."
            )
        out.append(os.fspath(item))
    return tuple(out)


def _parse_one(mark: pytest.Mark, where: str) -> dict[str, Any]:
    if mark.args:
        raise ConfigurationError(
            f"{where}: @pytest.mark.dbrewind takes keyword options only "
            f"(e.g. transactional=True), got positional {mark.args!r}."
        )
    known = {f.name for f in dataclasses.fields(DbrewindMark)}
    unknown = sorted(set(mark.kwargs) - known)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown @pytest.mark.dbrewind option(s) {', '.join(unknown)}; "
            f"known options are {', '.join(sorted(known))}."
        )
    out: dict[str, Any] = {}
    for key, value in mark.kwargs.items():
        if key in ("transactional",):
            if not isinstance(value, bool):
                raise ConfigurationError(
                    f"{where}: @pytest.mark.dbrewind({key}=...) must be True or False, "
                    f"got {value!r}."
                )
            out[key] = value
        elif key in ("verify", "strict", "reset_sequences"):
            if value is not None and not isinstance(value, bool):
                raise ConfigurationError(
                    f"{where}: @pytest.mark.dbrewind({key}=...) must be True, False or None, "
                    f"got {value!r}."
                )
            out[key] = value
        elif key == "data":
            out[key] = _as_names(value, key, where)
        elif key == "backends":
            names = _as_names(value, key, where)
            backends: list[Backend] = []
            for name in names:
                backend = backend_named(name)
                if backend is None:
                    raise ConfigurationError(
                        f"{where}: @pytest.mark.dbrewind(backends=...) names unknown backend "
                        f"{name!r}; use sqlite, postgresql or mysql (mariadb)."
                    )
                backends.append(backend)
            out[key] = tuple(backends)
    return out


def mark_for(item: pytest.Item) -> DbrewindMark | None:
    """The item's merged ``dbrewind`` marks (closest wins per option), or None without any.

    Marks on the function override class marks, which override module marks;
    options a closer mark leaves out keep the outer value.
    """
    marks = list(item.iter_markers("dbrewind"))  # closest first
    if not marks:
        return None
    merged: dict[str, Any] = {}
    for mark in reversed(marks):
        merged.update(_parse_one(mark, item.nodeid))
    return DbrewindMark(**merged)
