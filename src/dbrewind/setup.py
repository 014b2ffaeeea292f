"""Ready-made schema setups for ``dbrewind_setup``: SQLAlchemy metadata, Alembic, SQL files.

Each helper returns a callable that receives a SQLAlchemy
:class:`~sqlalchemy.engine.Connection` (inside a transaction committed after
it) and knows its own fingerprint, so the prepared template is rebuilt exactly
when the models, migrations or SQL files change::

    # conftest.py
    import pytest
    from dbrewind.setup import metadata_setup
    from myapp.models import Base

    @pytest.fixture(scope="session")
    def dbrewind_setup():
        return metadata_setup(Base.metadata)

or in the ini file: ``dbrewind_setup = myapp.testing:setup`` where
``setup = alembic_setup("alembic.ini")``. Baseline data after the schema:
``chain(metadata_setup(Base.metadata), data_setup("data/users.yaml"))`` (see
:func:`dbrewind.data.data_setup`; the ini ``dbrewind_data`` does the same).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, make_url

from ._sql import SqlSplitError, split
from ._url import parse_url, show_url
from .data import DataSetup, data_setup
from .dialects._syntax import PORTABLE, syntax_for
from .exceptions import ConfigurationError, SetupError
from .provision.fingerprint import fingerprint, metadata_fingerprint
from .provision.target import identity

__all__ = [
    "AlembicSetup",
    "DataSetup",
    "MetadataSetup",
    "SQLFilesSetup",
    "SetupChain",
    "alembic_setup",
    "chain",
    "data_setup",
    "metadata_setup",
    "split_sql",
    "sql_files_setup",
]


class MetadataSetup:
    """Creates every table of a SQLAlchemy :class:`~sqlalchemy.MetaData` (``create_all``)."""

    def __init__(self, metadata: MetaData) -> None:
        self.metadata = metadata

    def __call__(self, conn: Connection) -> None:
        self.metadata.create_all(conn)

    def dbrewind_fingerprint(self) -> str:
        """Digest of the DDL the metadata renders for SQLite (stable across backends)."""
        return "metadata:" + metadata_fingerprint(self.metadata)

    def __repr__(self) -> str:
        return f"metadata_setup({len(self.metadata.tables)} tables)"


def metadata_setup(metadata: MetaData | Any) -> MetadataSetup:
    """A setup that runs ``metadata.create_all``; accepts a MetaData or a declarative base."""
    found = metadata if isinstance(metadata, MetaData) else getattr(metadata, "metadata", None)
    if not isinstance(found, MetaData):
        raise ConfigurationError(
            f"metadata_setup() needs a sqlalchemy MetaData or a declarative base with "
            f".metadata, got {metadata!r}. Pass e.g. Base.metadata."
        )
    return MetadataSetup(found)


class AlembicSetup:
    """Upgrades the database to ``revision`` (default ``head``) with Alembic.

    The connection is handed to ``env.py`` as ``config.attributes["connection"]``
    (Alembic's documented recipe for sharing a connection); ``sqlalchemy.url``
    is also set to the test database, for an ``env.py`` that builds its own
    engine.
    """

    def __init__(self, config: str | os.PathLike[str] | Any, revision: str = "head") -> None:
        self.config = config
        self.revision = revision

    def _config(self) -> Any:
        try:
            from alembic.config import Config
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "alembic_setup() needs Alembic. Install it with: pip install 'dbrewind[alembic]'"
            ) from exc
        if isinstance(self.config, (str, os.PathLike)):
            path = Path(self.config)
            if not path.is_file():
                raise ConfigurationError(
                    f"Alembic config file {str(path)!r} not found. Give alembic_setup() the "
                    "path of your alembic.ini (relative to the directory pytest runs in)."
                )
            return Config(str(path))
        return self.config

    def _script_location(self) -> Path | None:
        cfg = self._config()
        location = cfg.get_main_option("script_location")
        if not location:
            return None
        location = location.replace("%(here)s", str(Path(cfg.config_file_name or ".").parent))
        path = Path(location)
        if not path.is_absolute() and cfg.config_file_name:
            candidate = Path(cfg.config_file_name).parent / path
            if candidate.exists():
                path = candidate
        return path

    def __call__(self, conn: Connection) -> None:
        from alembic import command

        cfg = self._config()
        cfg.attributes["connection"] = conn
        cfg.set_main_option(
            "sqlalchemy.url",
            conn.engine.url.render_as_string(hide_password=False).replace("%", "%%"),
        )
        with _only_on(conn, self) as options:
            command.upgrade(cfg, self.revision)
        self._check_upgraded(conn, cfg, options)

    def env_py(self) -> Path | None:
        """The ``env.py`` Alembic runs for this config, when it can be found."""
        location = self._script_location()
        return None if location is None else (location / "env.py").absolute()

    def _check_upgraded(self, conn: Connection, cfg: Any, options: dict[str, Any]) -> None:
        """The version table on ``conn`` is at the revision asked for: the migrations
        landed in this database, not in one ``env.py`` chose for itself."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(cfg)
        try:
            wanted = {rev.revision for rev in script.get_revisions(self.revision) if rev}
        except Exception:  # a relative revision ("+1"): only the current one can say
            wanted = None
        if not wanted and wanted is not None:
            return  # no migrations at all: nothing to find
        opts = {k: options[k] for k in ("version_table", "version_table_schema") if k in options}
        current = set(MigrationContext.configure(conn, opts=opts).get_current_heads())
        if current and (wanted is None or current == wanted):
            return
        found = ", ".join(sorted(current)) or "no alembic_version row"
        raise SetupError(
            f"{self!r} ran, but the test database {show_url(conn.engine.url)} is not at "
            f"{self.revision!r} afterwards ({found}): the migrations went somewhere "
            f"else.\n{_env_py_advice(self.env_py())}"
        )

    def dbrewind_fingerprint(self) -> str:
        """Digest of the migration scripts (the whole script location) and the revision."""
        location = self._script_location()
        paths = [location] if location is not None and location.exists() else []
        return f"alembic:{self.revision}:" + fingerprint([], paths=paths)

    def __repr__(self) -> str:
        return f"alembic_setup({self.config!r}, revision={self.revision!r})"


@contextlib.contextmanager
def _only_on(conn: Connection, setup: AlembicSetup) -> Iterator[dict[str, Any]]:
    """While Alembic runs ``env.py``: refuse (before any migration runs) a
    ``context.configure()`` given a connection or URL of another database, such as
    the application's own from its settings. Yields the options ``env.py`` passed."""
    from alembic.runtime.environment import EnvironmentContext

    options: dict[str, Any] = {}
    original = EnvironmentContext.configure
    ours = identity(parse_url(conn.engine.url))

    def configure(self: Any, connection: Any = None, url: Any = None, **kw: Any) -> None:
        options.update(kw)
        if connection is not None and connection is not conn:
            chosen = connection.engine.url
        elif connection is None and url is not None:
            chosen = make_url(url) if isinstance(url, str) else url
        else:
            chosen = None
        if chosen is not None and identity(parse_url(chosen)) != ours:
            raise SetupError(
                f"{setup!r}: env.py configured Alembic with its own connection to "
                f"{show_url(chosen)}, not the test database {show_url(conn.engine.url)} "
                "dbrewind passed it; nothing was migrated, and that database was not "
                f"touched.\n{_env_py_advice(setup.env_py())}"
            )
        original(self, connection=connection, url=url, **kw)

    EnvironmentContext.configure = configure  # type: ignore[method-assign,assignment]
    try:
        yield options
    finally:
        EnvironmentContext.configure = original  # type: ignore[method-assign]


def _env_py_advice(env_py: Path | None) -> str:
    where = str(env_py) if env_py is not None else "your migrations' env.py"
    return (
        f"Make {where} use the connection dbrewind hands it in "
        'config.attributes["connection"] when there is one:\n\n'
        "    def run_migrations_online() -> None:\n"
        '        connection = config.attributes.get("connection")\n'
        "        if connection is not None:\n"
        "            context.configure(connection=connection, target_metadata=target_metadata)\n"
        "            with context.begin_transaction():\n"
        "                context.run_migrations()\n"
        "            return\n"
        "        ...  # the code that was there, unchanged\n\n"
        "(for an async env.py, call do_run_migrations(connection) there instead of "
        "asyncio.run(...))."
    )


def alembic_setup(
    config: str | os.PathLike[str] | Any = "alembic.ini", revision: str = "head"
) -> AlembicSetup:
    """A setup running ``alembic upgrade <revision>``; ``config``: a path or an Alembic Config."""
    return AlembicSetup(config, revision)


class SQLFilesSetup:
    """Runs the statements of SQL files in order, split by the connection's database's rules.

    See :func:`split_sql` for what is understood; a file that cannot be split
    raises :class:`~dbrewind.exceptions.ConfigurationError` naming it and the line.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            if not path.is_file():
                raise ConfigurationError(
                    f"SQL file {str(path)!r} not found. Give sql_files_setup() existing paths "
                    "(relative to the directory pytest runs in)."
                )

    def __call__(self, conn: Connection) -> None:
        syntax = syntax_for(conn.dialect.name)
        for path in self.paths:
            try:
                statements = split(path.read_text(encoding="utf-8"), syntax)
            except SqlSplitError as exc:
                raise ConfigurationError(
                    f"Cannot split SQL file {str(path)!r}: {exc}. Close it, or check the "
                    "quoting of the statement that starts there."
                ) from exc
            for statement in statements:
                conn.exec_driver_sql(_escape_percent(conn, statement.text))

    def dbrewind_fingerprint(self) -> str:
        """Digest of the files' names and contents."""
        digest = hashlib.sha256()
        for path in self.paths:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return "sql:" + digest.hexdigest()

    def __repr__(self) -> str:
        return f"sql_files_setup({', '.join(str(p) for p in self.paths)})"


def sql_files_setup(*paths: str | os.PathLike[str]) -> SQLFilesSetup:
    """A setup that executes each SQL file's statements, file by file."""
    return SQLFilesSetup(paths)


class SetupChain:
    """Several setups run one after another (e.g. migrations, then reference data)."""

    def __init__(self, steps: Sequence[Callable[[Connection], object]]) -> None:
        self.steps = list(steps)

    def __call__(self, conn: Connection) -> None:
        for step in self.steps:
            step(conn)

    def dbrewind_fingerprint(self) -> str:
        """The fingerprints of the steps, in order."""
        return "chain:" + fingerprint(self.steps)


def chain(*steps: Callable[[Connection], object]) -> SetupChain:
    """One setup made of several, run in order."""
    return SetupChain(steps)


def _escape_percent(conn: Connection, statement: str) -> str:
    # drivers with the format/pyformat paramstyle read '%' as a placeholder
    if conn.dialect.paramstyle in ("format", "pyformat"):
        return statement.replace("%", "%%")
    return statement


def split_sql(script: str, backend: str | None = None) -> list[str]:
    """Split a SQL script into its statements, as :func:`sql_files_setup` runs them.

    With ``backend`` (``sqlite``, ``postgresql`` or ``mysql``) the script is
    read by that database's rules, the same as a ``.sql`` test-data file (see
    :mod:`dbrewind.data`): semicolons inside quotes, comments, PostgreSQL
    dollar-quoted bodies and SQLite trigger bodies do not split, and a MySQL
    ``DELIMITER //`` line changes the terminator for trigger and routine
    bodies. Without it, quotes (``'..'``, ``".."``, backticks), dollar quoting,
    comments (``--``, ``/* */``) and ``DELIMITER`` lines are all understood.
    Comment-only pieces are dropped.

    :raises ValueError: a string, quoted identifier, comment or dollar-quoted
        body is never closed; the message names the line it opened on.
    """
    syntax = PORTABLE if backend is None else syntax_for(backend)
    return [statement.text for statement in split(script, syntax)]
