"""Rows a module-, class- or session-scoped fixture commits belong to that scope.

Kept for every test in the scope, whatever the order; rewound when the
fixture is torn down; never seen by the tests of another module. Each suite
runs in several random orders, on every backend, and the database is at its
baseline after each run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from helpers.runs import pytest_args, start
from helpers.suites import assert_at_baseline, write_suite

COMMON = """
import pytest
import sqlalchemy as sa
from schema import items, tags

SEEDS = ["seed-1", "seed-2"]


def names(conn):
    return [r.name for r in conn.execute(items.select().order_by(items.c.id))]


def ids_are_exact(conn):
    # MySQL/MariaDB: a rolled-back insert uses up its AUTO_INCREMENT value
    return conn.dialect.name != "mysql"
"""

MODULE_A = (
    COMMON
    + """

@pytest.fixture(scope="module")
def module_rows(db_engine):
    with db_engine.begin() as conn:
        conn.execute(items.insert(), [{"name": "module-a"}])
        conn.execute(tags.insert(), [{"label": "module-a"}])
    yield  # no cleanup: dbrewind rewinds what the module committed when it ends


def test_a_sandboxed_test_sees_the_module_rows(module_rows, db):
    assert names(db) == SEEDS + ["module-a"]
    db.execute(items.insert().values(name="rolled back"))
    db.execute(items.delete().where(items.c.name == "module-a"))


def test_a_committing_test_sees_them_and_its_own_rows_go(module_rows, transactional_db):
    assert names(transactional_db) == SEEDS + ["module-a"]
    new = transactional_db.execute(items.insert().values(name="mine")).inserted_primary_key[0]
    transactional_db.execute(tags.delete())
    transactional_db.commit()
    if ids_are_exact(transactional_db):
        assert new == 4


def test_the_module_rows_outlive_every_other_test(module_rows, transactional_db):
    assert names(transactional_db) == SEEDS + ["module-a"]
    assert [r.label for r in transactional_db.execute(tags.select())] == ["module-a"]


@pytest.fixture(scope="class")
def class_rows(db_engine):
    with db_engine.begin() as conn:
        conn.execute(items.insert().values(name="class"))
    yield


class TestClassScope:
    def test_class_and_module_rows_both_show(self, module_rows, class_rows, db):
        assert names(db) == SEEDS + ["module-a", "class"]

    def test_a_commit_inside_the_class(self, module_rows, class_rows, transactional_db):
        transactional_db.execute(items.update().values(name="overwritten"))
        transactional_db.commit()


def test_no_module_rows_without_asking_either_none_or_all(db):
    assert names(db) in (SEEDS, SEEDS + ["module-a"])
"""
)

MODULE_B = (
    COMMON
    + """

def test_another_module_never_sees_module_a_rows(db):
    assert "module-a" not in names(db)
    assert names(db)[:2] == SEEDS


def test_a_commit_here_is_rewound_to_the_plain_baseline(transactional_db):
    transactional_db.execute(items.insert().values(name="b"))
    transactional_db.commit()


@pytest.fixture(scope="module")
def more_rows(db_engine):
    with db_engine.begin() as conn:
        conn.execute(items.insert().values(name="module-b"))
    yield


def test_module_b_rows(more_rows, db):
    assert names(db) == SEEDS + ["module-b"]
"""
)

SESSION_SUITE = (
    COMMON
    + """

@pytest.fixture(scope="session")
def admin(db_engine):
    with db_engine.begin() as conn:
        conn.execute(items.insert().values(name="admin"))
    yield
    with db_engine.begin() as conn:  # a teardown that cleans up after itself
        conn.execute(items.delete().where(items.c.name == "admin"))


def test_1_before_the_session_fixture(transactional_db):
    assert names(transactional_db) == SEEDS


def test_2_asks_for_it(admin, db):
    assert names(db) == SEEDS + ["admin"]


def test_3_commits_with_it(admin, transactional_db):
    transactional_db.execute(items.delete().where(items.c.name == "admin"))
    transactional_db.commit()


def test_4_it_is_back(admin, db):
    assert names(db) == SEEDS + ["admin"]
"""
)


def write_scoped_suite(where: Path) -> None:
    write_suite(where, tests="")
    (where / "test_app.py").unlink()
    (where / "test_module_a.py").write_text(textwrap.dedent(MODULE_A))
    (where / "test_module_b.py").write_text(textwrap.dedent(MODULE_B))


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_scoped_rows_are_kept_for_their_scope_in_any_order(
    tmp_path: Path, suite_url: URL, seed: int | None
) -> None:
    project = tmp_path / "project"
    write_scoped_suite(project)
    code, out = start(project, pytest_args(suite_url, seed=seed)).finish()
    assert code == 0, out
    assert "9 passed" in out, out
    assert "DbrewindLeakWarning" not in out, out
    assert_at_baseline(suite_url)


def test_scoped_rows_under_xdist(tmp_path: Path, suite_url: URL) -> None:
    project = tmp_path / "project"
    write_scoped_suite(project)
    code, out = start(project, pytest_args(suite_url, "-n", "2", seed=4)).finish()
    assert code == 0, out
    assert "9 passed" in out, out


def test_a_session_fixture_set_up_mid_run_is_kept_until_the_end(
    tmp_path: Path, suite_url: URL
) -> None:
    project = tmp_path / "project"
    write_suite(project, tests=SESSION_SUITE)
    for _ in range(2):
        code, out = start(project, pytest_args(suite_url)).finish()
        assert code == 0, out
        assert "4 passed" in out, out
        assert_at_baseline(suite_url)
