"""``@pytest.mark.dbrewind(data=[...], transactional=True)``: the data is committed before
the test, after the counters are put back, and a load that fails is rewound at once.

Whole runs of an inner suite, on every backend.
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
"""

CONFTEST = """
import pytest
from sqlalchemy import inspect, select

import schema


@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.metadata.create_all


def rows(conn):
    return [tuple(r) for r in conn.execute(select(schema.authors).order_by(schema.authors.c.id))]


def add(conn, name):
    conn.execute(schema.authors.insert().values(name=name))
    conn.commit()
    return conn.execute(
        select(schema.authors.c.id).where(schema.authors.c.name == name)
    ).scalar_one()


def tables(conn):
    return sorted(inspect(conn).get_table_names())
"""


def _project(tmp_path: Path, tests: str, files: dict[str, str]) -> Path:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (project / "test_inner.py").write_text(textwrap.dedent(tests))
    for name, content in files.items():
        (project / "data" / name).write_text(textwrap.dedent(content))
    return project


RESET_TESTS = """
import pytest

from conftest import add, rows


@pytest.mark.dbrewind(transactional=True, reset_sequences=False)
def test_1_moves_the_counter(transactional_db):
    for name in ("a", "b", "c", "d", "e"):
        add(transactional_db, name)


@pytest.mark.dbrewind(data=["data/rows.yaml"], transactional=True, reset_sequences=True)
def test_2_loaded_rows_survive_the_counter_reset(transactional_db):
    assert rows(transactional_db) == [(1, "Ann"), (2, "Ben")]
    assert add(transactional_db, "Cy") == 3
"""

ROWS = """
authors:
  - {id: 1, name: Ann}
  - {id: 2, name: Ben}
"""


def test_marker_data_is_loaded_after_the_counters_are_reset(tmp_path: Path, suite_url: URL) -> None:
    project = _project(tmp_path, RESET_TESTS, {"rows.yaml": ROWS})
    code, out = start(project, pytest_args(suite_url)).finish()
    assert code == 0, out
    assert "2 passed" in out, out
    seen = observe(suite_url, ("authors",))
    assert seen.rows == {"authors": []}
    assert seen.at_rest, seen.tracking


FAILED_LOAD_TESTS = """
import pytest

from conftest import rows, tables


@pytest.mark.dbrewind(data=["data/bad.sql"], transactional=True)
def test_1_bad_sql(transactional_db):
    pass


def test_2_nothing_left(transactional_db):
    assert rows(transactional_db) == []
    assert "scratch" not in tables(transactional_db)
"""

# on MySQL the CREATE TABLE commits the INSERT before it; the third statement fails
BAD_SQL = """
INSERT INTO authors (id, name) VALUES (7, 'Early');
CREATE TABLE scratch (id INTEGER PRIMARY KEY);
INSERT INTO no_such_table_here (id) VALUES (1);
"""


def test_a_failed_marker_load_is_rewound_and_reported_without_a_traceback(
    tmp_path: Path, suite_url: URL
) -> None:
    project = _project(tmp_path, FAILED_LOAD_TESTS, {"bad.sql": BAD_SQL})
    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert "1 passed, 1 error" in out, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR test_inner.py::")]
    assert len(errors) == 1, out
    assert "test_1_bad_sql" in errors[0], out
    assert "dbrewind: SQL file" in errors[0], out
    assert "bad.sql', statement at line 4" in out, out
    assert "no_such_table_here" in out, out
    assert "DataLoadError" not in out, out  # pytrace=False: the message, not a traceback
    assert "_dbrewind_guard" not in out, out
    seen = observe(suite_url, ("authors",))
    assert seen.rows == {"authors": []}
    assert seen.at_rest, seen.tracking
