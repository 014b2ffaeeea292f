"""``@pytest.mark.dbrewind(data=[...])`` with YAML files, good and bad, in whole runs.

In the sync and async rollback sandboxes and under ``transactional=True``; a
file the database refuses errors its test, naming the row and column, and
leaves nothing for the next test. On every backend.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from sqlalchemy.engine import URL

from helpers.runs import observe, pytest_args, start

__all__: list[str] = []

SCHEMA = """
import sqlalchemy as sa

metadata = sa.MetaData()
authors = sa.Table(
    "authors", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(60), nullable=False),
)
books = sa.Table(
    "books", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("authors.id"), nullable=False),
    sa.Column("title", sa.String(60), nullable=False),
)
"""

CONFTEST = """
import pytest
from sqlalchemy import select

import schema


@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.metadata.create_all


def contents(conn):
    return (
        sorted(tuple(r) for r in conn.execute(select(schema.authors))),
        sorted(tuple(r) for r in conn.execute(select(schema.books))),
    )


LOADED = ([(1, "Ann")], [(10, 1, "First"), (11, 1, "Second")])
"""

TESTS = """
import pytest

from conftest import LOADED, contents


@pytest.mark.dbrewind(data=["data/rows.yaml"])
def test_1_sync_sandbox(db):
    assert contents(db) == LOADED


@pytest.mark.asyncio
@pytest.mark.dbrewind(data=["data/rows.yaml"])
async def test_2_async_sandbox(async_db_session):
    assert await async_db_session.run_sync(lambda s: contents(s.connection())) == LOADED


@pytest.mark.dbrewind(data=["data/rows.yaml"], transactional=True)
def test_3_transactional(transactional_db):
    assert contents(transactional_db) == LOADED


def test_4_nothing_left(transactional_db):
    assert contents(transactional_db) == ([], [])


@pytest.mark.dbrewind(data=["data/bad.yaml"])
def test_5_bad_sync(db):
    pass


@pytest.mark.asyncio
@pytest.mark.dbrewind(data=["data/bad.yaml"])
async def test_6_bad_async(async_db_session):
    pass


@pytest.mark.dbrewind(data=["data/bad.yaml"], transactional=True)
def test_7_bad_transactional(transactional_db):
    pass


def test_8_nothing_left_after_the_errors(transactional_db):
    assert contents(transactional_db) == ([], [])
"""

ROWS = """
books:
  - {id: 10, author_id: 1, title: First}
  - {id: 11, author_id: 1, title: Second}
authors:
  - {id: 1, name: Ann}
"""

BAD = """
authors:
  - {id: 1, name: Ann}
books:
  - {id: 10, author_id: 1, title: First}
  - {id: 10, author_id: 1, title: Again}
"""


def test_marker_data_from_yaml_loads_and_a_refused_row_errors_its_test(
    tmp_path: Path, suite_url: URL, backend: str
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (project / "test_marker.py").write_text(textwrap.dedent(TESTS))
    (project / "data" / "rows.yaml").write_text(textwrap.dedent(ROWS))
    (project / "data" / "bad.yaml").write_text(textwrap.dedent(BAD))
    (project / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert "5 passed, 3 errors" in out, out
    located = "bad.yaml', row 1 (line 6) of table 'books', column 'id'"
    for name in ("test_5_bad_sync", "test_6_bad_async", "test_7_bad_transactional"):
        errors = [
            line for line in out.splitlines() if line.startswith(f"ERROR test_marker.py::{name}")
        ]
        assert errors, out
        # the short summary cuts its line to the terminal's width outside CI: the
        # error's own section holds the whole message
        section = out.split(f"ERROR at setup of {name} _", 1)[1].split(" ERROR at setup of ", 1)[0]
        assert located in section, out
    seen = observe(suite_url, ("authors", "books"))
    assert seen.rows == {"authors": [], "books": []}
    assert seen.at_rest, seen.tracking
