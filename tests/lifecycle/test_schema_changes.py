"""Tests that change the schema, and runs after them: the next test starts at the baseline.

A migration down/up test drops a table and creates it again; a careless test
drops one for good, or creates one. The plugin rewinds what it can and makes
the database again from its template where it cannot, so every later test,
and the next run, sees the baseline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from helpers.runs import pytest_args, start
from helpers.suites import assert_at_baseline, write_suite

TESTS = """
import pytest
import sqlalchemy as sa
from schema import items, metadata, tags

SEEDS = ["seed-1", "seed-2"]


def names(conn):
    return [r.name for r in conn.execute(items.select().order_by(items.c.id))]


@pytest.mark.dbrewind(transactional=True)
def test_1_a_migration_down_and_up(db_engine):
    with db_engine.begin() as conn:
        tags.drop(conn)
        items.drop(conn)
        metadata.create_all(conn)
        conn.execute(items.insert().values(name="after the migration"))


def test_2_sees_the_baseline(transactional_db):
    assert names(transactional_db) == SEEDS
    transactional_db.execute(items.insert().values(name="tracked again"))
    transactional_db.commit()


def test_3_and_so_does_this_one(db):
    assert names(db) == SEEDS


@pytest.mark.dbrewind(transactional=True)
def test_4_drops_a_table_for_good(db_engine):
    with db_engine.begin() as conn:
        tags.drop(conn)


def test_5_has_it_back(transactional_db):
    assert transactional_db.execute(tags.select()).all() == []
    assert names(transactional_db) == SEEDS


@pytest.mark.dbrewind(transactional=True)
def test_6_creates_a_table(db_engine):
    with db_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")


def test_7_it_is_gone(db_engine):
    assert "scratch" not in sa.inspect(db_engine).get_table_names()
"""


def test_a_suite_that_changes_the_schema_passes_every_run(tmp_path: Path, suite_url: URL) -> None:
    project = tmp_path / "project"
    write_suite(project, tests=TESTS)
    for _ in range(2):
        code, out = start(project, pytest_args(suite_url)).finish()
        assert code == 0, out
        assert "7 passed" in out, out
        assert "test_4_drops_a_table_for_good: table(s) " in out, out
        assert "dbrewind made the database again from its template" in out, out
        assert_at_baseline(suite_url)


@pytest.mark.parametrize("seed", [11, 12])
def test_in_any_order(tmp_path: Path, suite_url: URL, seed: int) -> None:
    project = tmp_path / "project"
    write_suite(project, tests=TESTS)
    code, out = start(project, pytest_args(suite_url, seed=seed)).finish()
    assert code == 0, out
    assert "7 passed" in out, out
    assert_at_baseline(suite_url)
