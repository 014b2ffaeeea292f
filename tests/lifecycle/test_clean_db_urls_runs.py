"""pytest-clean-database suites (a ``clean_db_urls`` fixture), run again and again.

The example project's shape: a session fixture creates the database, another
creates its tables and seeds them, ``clean_db_urls`` requires it; tests
commit through their own connections. The baseline is what the databases hold
when ``clean_db_urls`` is first set up, whichever test runs first; every
listed database is rewound after every test, even when another one fails.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from conftest import drop_database, make_database
from helpers.runs import observe, pytest_args, start

CONFTEST = """
import os

import pytest
import sqlalchemy as sa

URLS = os.environ["SUITE_DB_URLS"].split()

metadata = sa.MetaData()
todos = sa.Table(
    "todos", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(60), unique=True),
    sqlite_autoincrement=True,
)


def engine_for(url):
    return sa.create_engine(url)


@pytest.fixture(scope="session")
def test_database():
    yield  # the databases exist: made by the outer test


@pytest.fixture(scope="session")
def test_tables(test_database):
    for url in URLS:
        engine = engine_for(url)
        with engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)
            conn.execute(todos.insert().values(owner="seed"))
        engine.dispose()


@pytest.fixture(scope="session")
def clean_db_urls(test_tables):
    return list(URLS)


@pytest.fixture
def conn(test_tables):
    engine = engine_for(URLS[0])
    with engine.connect() as connection:
        yield connection
    engine.dispose()
"""

TESTS = """
import pytest
import sqlalchemy as sa

from conftest import URLS, engine_for, todos


def owners(conn):
    return sorted(r.owner for r in conn.execute(todos.select()))


@pytest.mark.parametrize("n", range(3))
def test_create_todo(conn, n):
    conn.execute(todos.insert().values(owner=f"owner-{n}"))
    conn.commit()
    assert owners(conn) == sorted(["seed", f"owner-{n}"])


def test_list_todos_sees_the_seed_only(conn):
    assert owners(conn) == ["seed"]


def test_every_database_is_written(test_tables):
    for url in URLS:
        engine = engine_for(url)
        with engine.begin() as c:
            c.execute(todos.delete())
        engine.dispose()
"""

MODULE_TESTS = """
import pytest

from conftest import URLS, engine_for, todos
from test_todos import owners


@pytest.fixture(scope="module")
def module_todo(test_tables):
    engine = engine_for(URLS[0])
    with engine.begin() as c:
        c.execute(todos.insert().values(owner="module"))
    engine.dispose()
    yield


def test_module_rows_are_kept_for_the_module(module_todo, conn):
    assert owners(conn) == ["module", "seed"]
    conn.execute(todos.delete())
    conn.commit()


def test_and_still_there(module_todo, conn):
    assert owners(conn) == ["module", "seed"]
"""

MIGRATION = """
from conftest import URLS, engine_for, metadata, todos


def test_1_a_migration_down_and_up():
    engine = engine_for(URLS[0])
    with engine.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
        conn.execute(todos.insert().values(owner="made by the migration"))
    engine.dispose()


def test_2_the_table_is_back_at_its_baseline_and_tracked():
    engine = engine_for(URLS[0])
    with engine.begin() as conn:
        assert [r.owner for r in conn.execute(todos.select())] == ["seed"]
        conn.execute(todos.insert().values(owner="tracked again"))
    engine.dispose()


def test_3_so_that_this_was_rewound_too():
    engine = engine_for(URLS[0])
    with engine.connect() as conn:
        assert [r.owner for r in conn.execute(todos.select())] == ["seed"]
    engine.dispose()
"""

LOCKING = """
import pytest
from conftest import URLS, engine_for, todos

held = []


def test_a_leaves_a_lock_on_the_first_database():
    for url in URLS:
        engine = engine_for(url)
        with engine.begin() as c:
            c.execute(todos.insert().values(owner="committed"))
        engine.dispose()
    engine = engine_for(URLS[0])
    conn = engine.connect()
    conn.execute(todos.update().where(todos.c.owner == "seed").values(owner="held"))
    held.append((engine, conn))  # never committed


def test_b_the_second_database_was_rewound_anyway():
    engine, conn = held.pop()
    conn.close()
    engine.dispose()
    engine = engine_for(URLS[1])
    with engine.connect() as c:
        assert sorted(r.owner for r in c.execute(todos.select())) == ["seed"]
    engine.dispose()


def test_c_and_the_first_one_now_too():
    engine = engine_for(URLS[0])
    with engine.connect() as c:
        assert sorted(r.owner for r in c.execute(todos.select())) == ["seed"]
    engine.dispose()
"""


def write(project: Path, tests: str, *more: str) -> None:
    project.mkdir(exist_ok=True)
    (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (project / "test_todos.py").write_text(textwrap.dedent(tests))
    for index, module in enumerate(more):
        (project / f"test_more_{index}.py").write_text(textwrap.dedent(module))
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\ndbrewind_lock_timeout = 1\n"
    )


def env_for(*urls: URL) -> dict[str, str]:
    return {"SUITE_DB_URLS": " ".join(u.render_as_string(hide_password=False) for u in urls)}


def assert_seed_only(url: URL) -> None:
    seen = observe(url, ["todos"])
    assert [row[1] for row in seen.rows["todos"]] == ["seed"], seen.rows
    assert seen.counters["todos"] == 2, seen.counters
    assert seen.at_rest, seen.tracking


@pytest.fixture
def two_urls(backend: str, tmp_path: Path, db_url: URL) -> Iterator[tuple[URL, URL]]:
    """Two test databases (the example project has a PostgreSQL and a MySQL one)."""
    other = make_database(backend, tmp_path)
    try:
        yield db_url, other
    finally:
        drop_database(backend, other)


@pytest.mark.parametrize("seed", [None, 3, 5])
def test_a_clean_db_urls_suite_passes_every_run_in_any_order(
    tmp_path: Path, two_urls: tuple[URL, URL], seed: int | None
) -> None:
    project = tmp_path / "project"
    write(project, TESTS, MODULE_TESTS)
    for _ in range(2):
        code, out = start(project, pytest_args(None, seed=seed), env=env_for(*two_urls)).finish()
        assert code == 0, out
        assert "7 passed" in out, out
        for url in two_urls:
            assert_seed_only(url)


def test_when_one_database_cannot_be_rewound_the_others_still_are(
    tmp_path: Path, two_urls: tuple[URL, URL]
) -> None:
    project = tmp_path / "project"
    write(project, LOCKING)
    code, out = start(project, pytest_args(None), env=env_for(*two_urls)).finish()
    assert code == 1, out
    assert "3 passed, 1 error" in out, out
    assert "dbrewind could not put" in out, out
    assert str(two_urls[0].database) in out, out
    for url in two_urls:
        assert_seed_only(url)


def test_a_table_dropped_and_created_again_by_a_test_is_tracked_and_rewound(
    tmp_path: Path, two_urls: tuple[URL, URL]
) -> None:
    project = tmp_path / "project"
    write(project, MIGRATION)
    for _ in range(2):
        code, out = start(project, pytest_args(None), env=env_for(*two_urls)).finish()
        assert code == 0, out
        assert "3 passed" in out, out
        for url in two_urls:
            assert_seed_only(url)
