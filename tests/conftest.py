"""Shared fixtures: real SQLite, PostgreSQL and MariaDB/MySQL databases.

Server URLs come from ``DBREWIND_TEST_POSTGRESQL_URL`` and
``DBREWIND_TEST_MYSQL_URL`` (defaults: the local servers). A test that needs a
server that is down is skipped locally; under CI (``CI=true``) the run fails
instead, so PostgreSQL and MariaDB tests can never silently not run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url

ALL_BACKENDS = ("sqlite", "postgresql", "mysql")
BACKENDS = tuple(
    name
    for name in os.environ.get("DBREWIND_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",")
    if name.strip() in ALL_BACKENDS
)
"""The backends the ``backend`` fixture runs each test on: all three, or those named in
``DBREWIND_TEST_BACKENDS`` (``postgresql``, ``sqlite,mysql``) to work on one database."""

SERVER_URLS = {
    "postgresql": os.environ.get(
        "DBREWIND_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mysql": os.environ.get("DBREWIND_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/"),
}

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_reachable: dict[str, str | None] = {}


def server_problem(backend: str) -> str | None:
    """None when the backend's server answers, else why not (cached per run)."""
    if backend == "sqlite":
        return None
    if backend not in _reachable:
        engine = create_engine(SERVER_URLS[backend])
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            _reachable[backend] = None
        except Exception as exc:
            _reachable[backend] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            engine.dispose()
    return _reachable[backend]


def require_backend(backend: str) -> None:
    """Skip (locally) or fail (under CI) when the backend's server is unreachable."""
    problem = server_problem(backend)
    if problem is None:
        return
    where = make_url(SERVER_URLS[backend]).render_as_string(hide_password=True)
    message = f"{backend} server at {where} is unreachable ({problem})"
    if IN_CI:
        pytest.fail(f"{message}; under CI every backend must run, none may be skipped.")
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run only the backends a test's ``backends`` marker names."""
    for item in items:
        marker = item.get_closest_marker("backends")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        backend = callspec.params.get("backend")
        if backend is not None and backend not in marker.args:
            item.add_marker(pytest.mark.skip(reason=f"not applicable to {backend}"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI, refuse to start when a database server is down or a backend is left out."""
    if not IN_CI:
        return
    if set(BACKENDS) != set(ALL_BACKENDS):
        raise pytest.UsageError(
            f"CI=true but DBREWIND_TEST_BACKENDS leaves out {set(ALL_BACKENDS) - set(BACKENDS)}: "
            "CI runs every backend."
        )
    down = {b: p for b in ("postgresql", "mysql") if (p := server_problem(b)) is not None}
    if down:
        detail = "; ".join(f"{b}: {p}" for b, p in down.items())
        raise pytest.UsageError(
            f"CI=true but these database servers are unreachable: {detail}. "
            "Start them (see .ci/run) — CI never skips database tests."
        )


@pytest.fixture(params=[pytest.param(b, id=b) for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that asks for it runs once per backend: sqlite, postgresql, mysql."""
    name: str = request.param
    require_backend(name)
    return name


def _unique_name() -> str:
    return f"dbrewind_{uuid.uuid4().hex[:10]}_test"


def _server_engine(backend: str) -> Engine:
    return create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")


def make_database(backend: str, tmp_path: Path, name: str | None = None) -> URL:
    """Create an empty database for one test and return its URL (sync driver)."""
    name = name or _unique_name()
    if backend == "sqlite":
        return make_url(f"sqlite:///{tmp_path / (name + '.db')}")
    engine = _server_engine(backend)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return make_url(SERVER_URLS[backend]).set(database=name)


def drop_database(backend: str, url: URL) -> None:
    """Drop a database made by :func:`make_database` (SQLite files go with tmp_path)."""
    if backend == "sqlite":
        return
    engine = _server_engine(backend)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {url.database} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {url.database}"))
    finally:
        engine.dispose()


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """A fresh, empty database on ``backend`` for this test, dropped afterwards."""
    url = make_database(backend, tmp_path)
    try:
        yield url
    finally:
        # with what the lifecycle derived from it: templates, clones
        from helpers.runs import drop_derived

        drop_derived(backend, url)


@pytest.fixture
def engine(db_url: URL) -> Iterator[Engine]:
    """A plain sync engine on :func:`db_url`, disposed afterwards."""
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def suite_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """A test database name nobody uses yet; the plugin creates it. Dropped after, with
    every database derived from it (templates, clones)."""
    require_backend(backend)
    name = f"dbrewind_{uuid.uuid4().hex[:8]}_test"
    if backend == "sqlite":
        folder = tmp_path / "dbs"
        folder.mkdir()
        url = make_url(f"sqlite:///{folder / (name + '.db')}")
    else:
        url = make_url(SERVER_URLS[backend]).set(database=name)
    try:
        yield url
    finally:
        from helpers.runs import drop_derived

        drop_derived(backend, url)
