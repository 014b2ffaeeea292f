"""``dbrewind.unittest`` classes across runs: templates, warm starts and xdist naming too.

The same lifecycle as the plugin's: the class's ``database_setup`` runs once
into a template, the tests run on a clone of it (one per xdist worker, another
when a concurrent run holds it), and a second run reuses both.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from sqlalchemy.engine import URL

from helpers.runs import pytest_args, start
from helpers.suites import SCHEMA, assert_at_baseline, sibling

CASES = """
import os
import time
import unittest

import sqlalchemy as sa

import dbrewind.unittest as dbu
from schema import items, setup

URL = os.environ["SUITE_DB_URL"]
SEEDS = ["seed-1", "seed-2"]
calls = []


def counted(conn):
    calls.append(os.getpid())
    setup(conn)


def names(conn):
    return [r.name for r in conn.execute(items.select().order_by(items.c.id))]


class Rollback(dbu.TestCase):
    database_url = URL
    database_setup = counted

    @classmethod
    def setUpTestData(cls):
        cls.db_class.execute(items.insert().values(name="class data"))

    def test_a_writes(self):
        self.db.execute(items.delete())
        with self.database_engine.begin() as conn:
            conn.execute(items.insert().values(name="committed in the sandbox"))

    def test_b_sees_the_class_data(self):
        self.assertEqual(names(self.db), SEEDS + ["class data"])


class Commits(dbu.TransactionTestCase):
    database_url = URL
    database_setup = counted

    def test_a_commits(self):
        self.db.execute(items.insert().values(name="real"))
        self.db.commit()
        time.sleep(float(os.environ.get("SUITE_PAUSE", "0")))

    def test_b_sees_the_baseline(self):
        self.assertEqual(names(self.db), SEEDS)
        self.assertIn(self.database_engine.url.database, os.environ["SUITE_EXPECT"].split())


class SetupRanOnce(unittest.TestCase):
    def test_setup_runs_at_most_once_per_process(self):
        self.assertLessEqual(len(calls), 1)
        if os.environ.get("SUITE_WARM"):
            self.assertEqual(calls, [])  # the template and the clone were reused
"""


def write(project: Path) -> None:
    project.mkdir()
    (project / "schema.py").write_text(textwrap.dedent(SCHEMA.format(version=1)))
    (project / "test_cases.py").write_text(textwrap.dedent(CASES))
    (project / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_unittest_cases_get_templates_warm_starts_and_worker_clones(
    tmp_path: Path, suite_url: URL
) -> None:
    project = tmp_path / "project"
    write(project)
    url = suite_url.render_as_string(hide_password=False)
    stem = Path(str(suite_url.database)).stem
    plain = {"SUITE_DB_URL": url, "SUITE_EXPECT": str(suite_url.database)}

    code, out = start(project, pytest_args(None), env=plain).finish()
    assert code == 0, out
    assert "5 passed" in out, out
    assert_at_baseline(suite_url)

    code, out = start(project, pytest_args(None), env={**plain, "SUITE_WARM": "1"}).finish()
    assert code == 0, out
    assert_at_baseline(suite_url)

    workers = [str(sibling(suite_url, f"{stem}_gw{i}").database) for i in (0, 1)]
    env = {"SUITE_DB_URL": url, "SUITE_EXPECT": " ".join(workers)}
    code, out = start(project, pytest_args(None, "-n", "2"), env=env).finish()
    assert code == 0, out
    assert "5 passed" in out, out
    for worker in workers:
        assert_at_baseline(sibling(suite_url, Path(worker).stem))


def test_two_unittest_runs_at_once_each_get_a_database(tmp_path: Path, suite_url: URL) -> None:
    project = tmp_path / "project"
    write(project)
    url = suite_url.render_as_string(hide_password=False)
    stem = Path(str(suite_url.database)).stem
    names = [str(suite_url.database), str(sibling(suite_url, f"{stem}_r1").database)]
    env = {"SUITE_DB_URL": url, "SUITE_EXPECT": " ".join(names), "SUITE_PAUSE": "1"}
    runs = [start(project, pytest_args(None), env=env) for _ in range(2)]
    for run in runs:
        code, out = run.finish()
        assert code == 0, out
        assert "5 passed" in out, out
    for name in names:
        assert_at_baseline(sibling(suite_url, Path(name).stem))
