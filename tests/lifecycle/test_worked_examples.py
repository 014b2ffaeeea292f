"""The README's worked examples of adopting dbrewind, run as their users would run them.

``examples/adopting/`` holds two applications in the shapes most projects have:
FastAPI + SQLModel + Alembic (sync), and async SQLAlchemy + Alembic on asyncpg,
aiomysql or aiosqlite. Each names its own engine in ``dbrewind_engines``, takes
its test database from its own settings object, migrates through its own
``env.py`` and keeps an expensive login per module. Each is copied to a new
folder and run three times on every database: in random order, under
``pytest-xdist``, in another random order with ``--dbrewind-verify``. Every run
passes, the application's own database is never created, and the test database
is at its baseline after each. The README's conftest diffs are checked against
the examples' files, so the docs show what runs.
"""

from __future__ import annotations

import difflib
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS
from helpers.runs import databases_named, drop_derived, observe, pytest_args, start

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "adopting"

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
ASYNC_DRIVERS["mysql"] = "mysql+aiomysql"
SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}

EXAMPLE_SHAPES = {
    # example folder: (its drivers, its tables, how many tests it has)
    "fastapi_sqlmodel": (SYNC_DRIVERS, ["user", "item"], 16),
    "async_sqlalchemy": (ASYNC_DRIVERS, ["user_account", "access_token", "pet"], 12),
}
RUN_LIMIT = 180.0
"""Seconds one run of an example may take (they take a few)."""


@pytest.fixture
def app_database(backend: str, tmp_path: Path) -> Iterator[URL]:
    """The application's own database, named as applications name theirs (no 'test' in it):
    never created; dbrewind works on '<name>_test'."""
    name = f"dbrewind_we_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'project' / 'app.db'}")
        return
    url = make_url(SERVER_URLS[backend]).set(database=name)
    try:
        yield url
    finally:
        drop_derived(backend, url)


def _copy(example: str, where: Path) -> Path:
    shutil.copytree(
        EXAMPLES / example,
        where,
        ignore=shutil.ignore_patterns("__pycache__", "*.db", "*.lock", ".pytest_cache"),
    )
    return where


def _test_url(app_url: URL, backend: str) -> URL:
    database = str(app_url.database)
    if backend == "sqlite":
        path = Path(database)
        return app_url.set(database=str(path.with_name(f"{path.stem}_test.db")))
    return app_url.set(database=f"{database}_test")


def _tables(url: URL) -> list[str]:
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("example", sorted(EXAMPLE_SHAPES))
def test_a_worked_example_passes_run_after_run_and_leaves_its_database_at_baseline(
    backend: str, tmp_path: Path, app_database: URL, example: str
) -> None:
    drivers, tables, count = EXAMPLE_SHAPES[example]
    project = _copy(example, tmp_path / "project")
    app_url = app_database.set(drivername=drivers[backend])
    env = {"APP_DATABASE_URL": app_url.render_as_string(hide_password=False)}
    test_url = _test_url(app_database, backend)
    strict = ("-W", "error::dbrewind.DbrewindWarning", "--dbrewind-strict")
    runs = [
        pytest_args(None, *strict, seed=1),
        pytest_args(None, *strict, "-n", "2", seed=2),
        pytest_args(None, *strict, "--dbrewind-verify", seed=3),
    ]
    baseline = None
    for args in runs:
        began = time.monotonic()
        code, out = start(project, args, env=env).finish(timeout=RUN_LIMIT + 60)
        took = time.monotonic() - began
        assert code == 0, out
        assert f"{count} passed" in out, out
        assert took < RUN_LIMIT, f"a run took {took:.0f} s:\n{out}"
        # the application's own database: never created, never migrated
        if backend == "sqlite":
            assert not Path(str(app_database.database)).exists(), out
        else:
            assert str(app_database.database) not in databases_named(
                backend, str(app_database.database)
            ), out
        # the test database (and each xdist worker's clone) at its baseline
        clones = [test_url]
        if "-n" in args:
            clones = [_worker_url(test_url, backend, n) for n in ("gw0", "gw1")]
        for url in clones:
            seen = observe(url, tables)
            assert seen.at_rest, (url, seen.tracking)
            if baseline is None:
                baseline = (seen.rows, seen.counters)
            assert (seen.rows, seen.counters) == baseline, (url, seen.rows, baseline)
    assert "alembic_version" in _tables(test_url)


def _worker_url(test_url: URL, backend: str, worker: str) -> URL:
    database = str(test_url.database)
    if backend == "sqlite":
        path = Path(database)
        return test_url.set(database=str(path.with_name(f"{path.stem}_{worker}.db")))
    return test_url.set(database=f"{database}_{worker}")


# ------------------------------------------------------------------ the docs

README = ROOT / "README.md"


def _readme_diff(example: str) -> str:
    """The diff block the README shows for ``example`` (the block after its path)."""
    text = README.read_text()
    marker = f"examples/adopting/{example}/tests/conftest.py"
    at = text.find(marker)
    assert at >= 0, f"README.md does not show {marker}"
    found = re.search(r"```diff\n(.*?)```", text[at:], re.DOTALL)
    assert found is not None, f"README.md has no diff after {marker}"
    return found.group(1)


def expected_diff(example: str) -> str:
    """The conftest diff of ``example``, as the README must show it."""
    tests = EXAMPLES / example / "tests"
    before = [
        line
        for line in (tests / "conftest.before.py").read_text().splitlines(keepends=True)
        if not line.startswith("# ")  # its own note on what was wrong
    ]
    after = (tests / "conftest.py").read_text().splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(
            before, after, "tests/conftest.py (before)", "tests/conftest.py (with dbrewind)", n=2
        )
    )


@pytest.mark.parametrize("example", sorted(EXAMPLE_SHAPES))
def test_the_readme_shows_each_examples_conftest_diff_as_it_is(example: str) -> None:
    expected = expected_diff(example)
    assert _readme_diff(example) == expected, (
        f"README.md's diff for {example} is not the examples' files; it should be:\n{expected}"
    )
