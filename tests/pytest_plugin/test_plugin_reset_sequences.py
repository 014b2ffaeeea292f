"""ini ``dbrewind_reset_sequences`` and ``@pytest.mark.dbrewind(reset_sequences=...)``,
through whole pytest runs of an inner suite on every backend.

The inner suite's tests each commit one row and record the id it got; the outer test
checks the ids against what each setting promises (``auto``: ids restart after every
test on PostgreSQL and SQLite, continue on MariaDB/MySQL; ``always``: restart;
``never``: continue; the marker's True / False win over the setting for its test),
and that every run leaves the database at its baseline, rows and counters.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS
from helpers.runs import observe, pytest_args, start

for _url in (*SERVER_URLS.values(), "sqlite://"):
    make_url(_url).get_dialect().import_dbapi()

SCHEMA = """
import sqlalchemy as sa

metadata = sa.MetaData()
items = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(60), nullable=False),
    sqlite_autoincrement=True,
)


def setup(conn):
    metadata.create_all(conn)
    conn.execute(items.insert(), [{"name": "seed-1"}, {"name": "seed-2"}])
"""

CONFTEST = """
import pytest
import schema

@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup
"""

TESTS = """
import json
import os

import pytest
import sqlalchemy as sa
from schema import items


def commit_one(conn, test):
    rows = conn.execute(sa.select(items.c.name).order_by(items.c.id)).scalars().all()
    assert rows == ["seed-1", "seed-2"]  # every test starts at the baseline's rows
    new = conn.execute(items.insert().values(name=test)).inserted_primary_key[0]
    conn.commit()
    path = os.environ["IDS_FILE"]
    ids = json.load(open(path)) if os.path.exists(path) else {}
    ids[test] = new
    json.dump(ids, open(path, "w"))


def test_a(transactional_db):
    commit_one(transactional_db, "a")


def test_b(transactional_db):
    commit_one(transactional_db, "b")


@pytest.mark.dbrewind(reset_sequences=True)
def test_c_asks_for_baseline_ids(transactional_db):
    commit_one(transactional_db, "c")


def test_d(transactional_db):
    commit_one(transactional_db, "d")


@pytest.mark.dbrewind(reset_sequences=False)
def test_e_leaves_its_ids_moved(transactional_db):
    commit_one(transactional_db, "e")


def test_f(transactional_db):
    commit_one(transactional_db, "f")
"""

NEXT = 3
"""The id the baseline hands out next (two seed rows)."""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    where = tmp_path / "project"
    where.mkdir()
    (where / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "test_ids.py").write_text(textwrap.dedent(TESTS))
    return where


def _run(project: Path, url: URL, setting: str | None, ids: Path) -> tuple[int, str]:
    ini = "[pytest]\n"
    if setting is not None:
        ini += f"dbrewind_reset_sequences = {setting}\n"
    (project / "pytest.ini").write_text(ini)
    return start(project, pytest_args(url), env={"IDS_FILE": str(ids)}).finish()


def expected(setting: str, backend: str) -> dict[str, int]:
    """The ids the inner tests get: a test without the marker restarts them after itself
    when the setting resets counters on this backend."""
    restarts = setting == "always" or (setting == "auto" and backend != "mysql")
    step = 0 if restarts else 1
    ids = {"a": NEXT, "b": NEXT + step}
    ids["c"] = NEXT  # the marker: counters back before the test, and after it
    ids["d"] = NEXT
    ids["e"] = NEXT + step
    ids["f"] = ids["e"] + 1  # e's rewind left its counter moved
    return ids


@pytest.mark.parametrize("setting", ["auto", "always", "never"])
def test_each_setting_gives_the_ids_it_promises_and_leaves_the_baseline(
    backend: str, suite_url: URL, project: Path, tmp_path: Path, setting: str
) -> None:
    ids_file = tmp_path / f"ids-{setting}.json"
    code, out = _run(project, suite_url, None if setting == "auto" else setting, ids_file)
    assert code == 0, out
    assert "6 passed" in out, out
    ids = json.loads(ids_file.read_text())
    assert ids == expected(setting, backend), out
    if backend == "mysql" and setting == "auto":
        assert ids["b"] == ids["a"] + 1  # ids continue after a rewind on MariaDB/MySQL
    seen = observe(suite_url, ["order"])
    assert [row[1] for row in seen.rows["order"]] == ["seed-1", "seed-2"]
    assert seen.counters["order"] == NEXT  # the run's end puts counters back too
    assert seen.at_rest, seen.tracking


@pytest.fixture
def bad_value_project(tmp_path: Path) -> Path:
    where = tmp_path / "bad"
    where.mkdir()
    (where / "test_x.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.dbrewind(reset_sequences="yes")
            def test_marked(transactional_db):
                pass
            """
        )
    )
    return where


def test_a_bad_ini_value_is_a_usage_error_naming_the_option_and_its_values(
    tmp_path: Path,
) -> None:
    where = tmp_path / "ini"
    where.mkdir()
    (where / "test_x.py").write_text("def test_nothing():\n    pass\n")
    (where / "pytest.ini").write_text("[pytest]\ndbrewind_reset_sequences = sometimes\n")
    code, out = start(where, pytest_args(None)).finish()
    assert code == pytest.ExitCode.USAGE_ERROR, out
    assert "dbrewind_reset_sequences = 'sometimes'" in out, out
    for value in ("auto", "always", "never"):
        assert value in out, out


def test_a_bad_marker_value_errors_the_test_naming_the_option(
    bad_value_project: Path, tmp_path: Path
) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'bad_test.db'}")
    code, out = start(bad_value_project, pytest_args(url)).finish()
    assert code == pytest.ExitCode.TESTS_FAILED, out
    assert "@pytest.mark.dbrewind(reset_sequences=...) must be True, False or None" in out, out
    assert "'yes'" in out, out
