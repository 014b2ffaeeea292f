"""The inner suite most lifecycle tests run: a schema set up by dbrewind, and its checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

from sqlalchemy.engine import URL

from .runs import observe, pytest_args, start

__all__ = [
    "CONFTEST",
    "SCHEMA",
    "TABLES",
    "TESTS",
    "assert_at_baseline",
    "run_suite",
    "sibling",
    "write_suite",
]

SCHEMA = """
import sqlalchemy as sa

VERSION = {version}

metadata = sa.MetaData()
items = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(60), nullable=False),
    *([sa.Column("note", sa.String(60), server_default="-")] if VERSION > 1 else []),
    sqlite_autoincrement=True,
)
tags = sa.Table(
    "user tags", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("label", sa.String(60), nullable=False),
    sqlite_autoincrement=True,
)


def setup(conn):
    metadata.create_all(conn)
    conn.execute(items.insert(), [{{"name": "seed-1"}}, {{"name": "seed-2"}}])
"""

CONFTEST = """
import pytest
import schema

@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup
"""

TESTS = """
import os
import pathlib
import time

import pytest
import sqlalchemy as sa
from schema import items, tags

SEEDS = ["seed-1", "seed-2"]


def names(conn):
    return [r.name for r in conn.execute(items.select().order_by(items.c.id))]


@pytest.mark.parametrize("n", range(3))
def test_commits_are_rewound_and_ids_restart(transactional_db, n):
    assert names(transactional_db) == SEEDS
    new = transactional_db.execute(items.insert().values(name=f"t{n}")).inserted_primary_key[0]
    transactional_db.execute(tags.insert().values(label=f"t{n}"))
    transactional_db.execute(items.update().where(items.c.id == 1).values(name="changed"))
    transactional_db.commit()
    if transactional_db.dialect.name != "mysql":  # there, a rolled-back insert uses up an id
        assert new == 3
    pause = os.environ.get("SUITE_PAUSE")
    if pause:
        time.sleep(float(pause))


def test_the_sandbox_rolls_back(db_session):
    db_session.execute(items.insert().values(name="sandboxed"))
    db_session.commit()
    assert len(names(db_session)) == 3


def test_commits_then_waits_for_the_other_run(transactional_db):
    transactional_db.execute(items.insert().values(name="mid-test"))
    transactional_db.commit()
    checkpoint = os.environ.get("SUITE_CHECKPOINT")
    if checkpoint:
        pathlib.Path(checkpoint + ".reached").write_text("")
        for _ in range(1200):
            if pathlib.Path(checkpoint + ".go").exists():
                break
            time.sleep(0.05)
    assert names(transactional_db) == SEEDS + ["mid-test"]


def test_the_sandbox_sees_the_baseline(db):
    assert names(db) == SEEDS
"""

TABLES = ("order", "user tags")


def write_suite(where: Path, *, version: int = 1, tests: str = TESTS) -> None:
    where.mkdir(parents=True, exist_ok=True)
    (where / "schema.py").write_text(textwrap.dedent(SCHEMA.format(version=version)))
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "test_app.py").write_text(textwrap.dedent(tests))
    (where / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def run_suite(where: Path, url: URL, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the suite to the end; return its output after checking it passed."""
    code, out = start(where, pytest_args(url, *args), env=env).finish()
    assert code == 0, out
    assert " failed" not in out, out
    assert " error" not in out, out
    return out


def assert_at_baseline(url: URL, *, version: int = 1) -> None:
    seen = observe(url, TABLES)
    names = [row[1] for row in seen.rows["order"]]
    assert names == ["seed-1", "seed-2"], seen.rows
    assert seen.rows["user tags"] == []
    assert seen.counters["order"] == 3, seen.counters
    assert seen.counters["user tags"] == 1, seen.counters
    assert seen.at_rest, seen.tracking
    if version > 1:
        assert all(row[2] == "-" for row in seen.rows["order"])


def sibling(url: URL, name: str) -> URL:
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return url.set(database=str(path.with_name(name + path.suffix)))
    return url.set(database=name)
