"""Load: concurrent writers and big writes

Whole pytest runs of an inner suite in which 8 threads or 8 asyncio tasks
write at once, inside one sandboxed test and inside one transactional test,
and tests that write 10,000 rows under each strategy. Each such test is
followed by one that checks it starts at the baseline, and after the run the
database is compared with its baseline: rows, counters and dbrewind's
tracking. The inner suite runs once per database; each test here reads the
outcome of its own pair of inner tests.
"""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS
from helpers.runs import Observation, drop_derived, observe, pytest_args, start

WORKERS = 8
COMMITS_PER_WORKER = 50
BIG = 10_000
SEEDS = ("seed-1", "seed-2", "seed-3")

SCHEMA = """
import sqlalchemy as sa

metadata = sa.MetaData()
rows = sa.Table(
    "load_rows", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("writer", sa.String(40), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("payload", sa.String(80)),
    sqlite_autoincrement=True,
)
SEEDS = {seeds!r}


def setup(conn):
    metadata.create_all(conn)
    conn.execute(rows.insert(), [{{"writer": s, "n": 0}} for s in SEEDS])
"""

CONFTEST = """
import json
import os

import pytest
import sqlalchemy as sa

import schema


@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup


def fact(test, **values):
    with open(os.environ["LOAD_FACTS"], "a") as out:
        out.write(json.dumps({{"test": test, **values}}) + "\\n")


def per_writer(conn_result):
    return {{writer: count for writer, count in conn_result}}


def assert_at_baseline(conn, test):
    found = sorted((r.writer, r.n) for r in conn.execute(sa.select(schema.rows)))
    fact(test, rows=len(found))
    assert found == sorted((s, 0) for s in schema.SEEDS), found[:10]


COUNTS = sa.select(schema.rows.c.writer, sa.func.count()).group_by(schema.rows.c.writer)
WORKERS = {workers}
COMMITS = {commits}
BIG = {big}
"""

TESTS = """
import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import BIG, COMMITS, COUNTS, WORKERS, assert_at_baseline, fact, per_writer
from schema import rows


def expected(prefix):
    return {f"{prefix}-{w}": COMMITS for w in range(WORKERS)}


# SQLite runs one writer at a time and does not queue the others fairly: on a loaded
# machine one of 8 writers can wait past pysqlite's 5 s default busy timeout ("database
# is locked"). An application with concurrent writers sets a longer one, as here.
BUSY = "PRAGMA busy_timeout = 60000"


def threads_commit(engine, prefix):
    start = threading.Barrier(WORKERS)

    def work(w):
        start.wait()
        for n in range(COMMITS):
            with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql(BUSY)
                conn.execute(rows.insert().values(writer=f"{prefix}-{w}", n=n + 1))

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(work, range(WORKERS)))


async def tasks_commit(engine, prefix):
    async def work(w):
        for n in range(COMMITS):
            async with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    await conn.exec_driver_sql(BUSY)
                await conn.execute(rows.insert().values(writer=f"{prefix}-{w}", n=n + 1))

    await asyncio.gather(*(work(w) for w in range(WORKERS)))


def big_batch(prefix):
    return [{"writer": prefix, "n": n + 1, "payload": "x" * 60} for n in range(BIG)]


def test_sandbox_threads(db_session, db_engine):
    began = time.perf_counter()
    threads_commit(db_engine, "thread")
    seen = per_writer(db_session.execute(COUNTS))
    fact("sandbox_threads", rows=WORKERS * COMMITS, seconds=time.perf_counter() - began)
    assert {k: v for k, v in seen.items() if k.startswith("thread-")} == expected("thread")


def test_sandbox_threads__next(db):
    assert_at_baseline(db, "sandbox_threads__next")


@pytest.mark.asyncio
async def test_sandbox_tasks(async_db_session, async_db_engine):
    began = time.perf_counter()
    await tasks_commit(async_db_engine, "task")
    seen = per_writer(await async_db_session.execute(COUNTS))
    fact("sandbox_tasks", rows=WORKERS * COMMITS, seconds=time.perf_counter() - began)
    assert {k: v for k, v in seen.items() if k.startswith("task-")} == expected("task")


def test_sandbox_tasks__next(db):
    assert_at_baseline(db, "sandbox_tasks__next")


def test_transactional_threads(transactional_db):
    began = time.perf_counter()
    threads_commit(transactional_db.engine, "thread")
    seen = per_writer(transactional_db.execute(COUNTS))
    fact("transactional_threads", rows=WORKERS * COMMITS, seconds=time.perf_counter() - began)
    assert {k: v for k, v in seen.items() if k.startswith("thread-")} == expected("thread")


def test_transactional_threads__next(db):
    assert_at_baseline(db, "transactional_threads__next")


@pytest.mark.asyncio
@pytest.mark.dbrewind(transactional=True)
async def test_transactional_tasks(async_db_session, async_db_engine):
    began = time.perf_counter()
    await tasks_commit(async_db_engine, "task")
    seen = per_writer(await async_db_session.execute(COUNTS))
    fact("transactional_tasks", rows=WORKERS * COMMITS, seconds=time.perf_counter() - began)
    assert {k: v for k, v in seen.items() if k.startswith("task-")} == expected("task")


def test_transactional_tasks__next(db):
    assert_at_baseline(db, "transactional_tasks__next")


def test_sandbox_big(db_session):
    began = time.perf_counter()
    db_session.execute(rows.insert(), big_batch("big"))
    db_session.commit()
    seen = per_writer(db_session.execute(COUNTS))
    fact("sandbox_big", rows=BIG, seconds=time.perf_counter() - began)
    assert seen["big"] == BIG


def test_sandbox_big__next(db):
    assert_at_baseline(db, "sandbox_big__next")


def test_transactional_big(transactional_db):
    began = time.perf_counter()
    transactional_db.execute(rows.insert(), big_batch("big"))
    transactional_db.commit()
    with Session(transactional_db.engine) as other:  # another connection sees the commit
        seen = per_writer(other.execute(COUNTS))
    fact("transactional_big", rows=BIG, seconds=time.perf_counter() - began)
    assert seen["big"] == BIG


def test_transactional_big__next(db):
    assert_at_baseline(db, "transactional_big__next")
"""

OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) \S*?::(\w+)(?: - (.*))?")


@dataclass
class InnerRun:
    """One inner run of the load suite on one database, and what it left behind."""

    code: int
    output: str
    outcomes: dict[str, tuple[str, str]]
    """Each inner test's outcome and, when it failed, pytest's one-line reason."""
    facts: dict[str, dict[str, Any]]
    after: Observation

    def check(self, scenario: str, backend: str) -> str:
        """Assert the scenario's test and the test after it passed; say what it did."""
        for name in (scenario, f"{scenario}__next"):
            outcome, why = self.outcomes.get(f"test_{name}", ("not run", ""))
            assert outcome == "PASSED", f"inner test_{name} {outcome}: {why}\n{self.output}"
        assert self.facts[f"{scenario}__next"]["rows"] == len(SEEDS)
        assert_observed_baseline(self.after, backend)
        done = self.facts[scenario]
        return f"{done['rows']:,} rows in {done['seconds']:.2f} s, then at the baseline"


def assert_observed_baseline(seen: Observation, backend: str) -> None:
    """Rows, counters (not on MySQL, whose sandbox leaves AUTO_INCREMENT where it got to,
    as documented) and tracking as the setup left them."""
    assert sorted((r[1], r[2]) for r in seen.rows["load_rows"]) == sorted((s, 0) for s in SEEDS)
    if backend != "mysql":
        assert seen.counters["load_rows"] == len(SEEDS) + 1, seen.counters
    assert seen.at_rest, seen.tracking


class LoadRuns:
    """The inner suite run at most once per database in this process, on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: dict[str, InnerRun] = {}
        self.urls: dict[str, URL] = {}

    def get(self, backend: str) -> InnerRun:
        if backend not in self.runs:
            self.runs[backend] = self._run(backend)
        return self.runs[backend]

    def _run(self, backend: str) -> InnerRun:
        project = self.root / backend
        project.mkdir()
        (project / "schema.py").write_text(textwrap.dedent(SCHEMA.format(seeds=SEEDS)))
        (project / "conftest.py").write_text(
            textwrap.dedent(CONFTEST.format(workers=WORKERS, commits=COMMITS_PER_WORKER, big=BIG))
        )
        (project / "test_load_inner.py").write_text(textwrap.dedent(TESTS))
        (project / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        )
        name = f"dbrewind_load_{uuid.uuid4().hex[:8]}_test"
        if backend == "sqlite":
            url = make_url(f"sqlite:///{project / (name + '.db')}")
        else:
            url = make_url(SERVER_URLS[backend]).set(database=name)
        self.urls[backend] = url
        facts_file = project / "facts.jsonl"
        code, out = start(
            project,
            pytest_args(url, "-p", "no:xdist", "-W", "error"),
            env={"LOAD_FACTS": str(facts_file)},
        ).finish()
        outcomes: dict[str, tuple[str, str]] = {}
        for m in filter(None, map(OUTCOME.match, out.splitlines())):
            if outcomes.get(m.group(2), ("PASSED",))[0] == "PASSED":  # the worst one stays
                outcomes[m.group(2)] = (m.group(1), m.group(3) or "")
        facts: dict[str, dict[str, Any]] = {}
        if facts_file.exists():
            for line in facts_file.read_text().splitlines():
                record = json.loads(line)
                facts[record.pop("test")] = record
        return InnerRun(code, out, outcomes, facts, observe(url, ("load_rows",)))

    def close(self) -> None:
        for backend, url in self.urls.items():
            drop_derived(backend, url)


@pytest.fixture(scope="module")
def load_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadRuns]:
    runs = LoadRuns(tmp_path_factory.mktemp("load"))
    try:
        yield runs
    finally:
        runs.close()


def test_threads_write_at_once_in_a_sandboxed_test(
    load_runs: LoadRuns, backend: str, record_property: Any
) -> None:
    """8 threads committing at once through the app's engine inside one sandboxed test"""
    record_property("result", load_runs.get(backend).check("sandbox_threads", backend))


def test_tasks_write_at_once_in_a_sandboxed_test(
    load_runs: LoadRuns, backend: str, record_property: Any
) -> None:
    """8 asyncio tasks committing at once through the async engine inside one sandboxed test"""
    record_property("result", load_runs.get(backend).check("sandbox_tasks", backend))


def test_threads_commit_at_once_in_a_transactional_test(
    load_runs: LoadRuns, backend: str, record_property: Any
) -> None:
    """8 threads committing at once, each on its own connection, in one transactional_db test"""
    record_property("result", load_runs.get(backend).check("transactional_threads", backend))


def test_tasks_commit_at_once_in_a_transactional_test(
    load_runs: LoadRuns, backend: str, record_property: Any
) -> None:
    """8 asyncio tasks committing at once, each on its own connection, in one transactional test"""
    record_property("result", load_runs.get(backend).check("transactional_tasks", backend))


def test_ten_thousand_rows_in_one_sandboxed_test(
    load_runs: LoadRuns, backend: str, record_property: Any
) -> None:
    """10,000 rows written in one sandboxed test"""
    record_property("result", load_runs.get(backend).check("sandbox_big", backend))


def test_ten_thousand_rows_committed_in_one_transactional_test(
    load_runs: LoadRuns, backend: str, record_property: Any
) -> None:
    """10,000 rows committed in one transactional_db test"""
    record_property("result", load_runs.get(backend).check("transactional_big", backend))
