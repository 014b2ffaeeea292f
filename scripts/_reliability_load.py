"""The long load run of ``scripts/reliability.py``: N tests in one pytest session per database.

The generated suite is a mix like a real one, the same mix in every block of
20 tests (so the first 100 and the last 100 do the same work): sandboxed ORM
tests through ``db_session``, ``db`` tests with savepoints, async tests
through ``async_db_session``, ``transactional_db`` tests that commit, and
some of each strategy that write 500 rows. Every test first compares the
three tables with the baseline; a deviation is counted as a leak (and fails
the test). The inner conftest records, after each test's teardown, the time
of its setup, call and teardown, the process's RSS and the connections open
to the test database as the server counts them (PostgreSQL
``pg_stat_activity``, MariaDB ``information_schema.PROCESSLIST``; SQLite: the
process's open descriptors on the database file). After the run the database
is compared with its baseline from outside.
"""

from __future__ import annotations

import json
import statistics
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy.engine import URL, make_url  # noqa: E402

from conftest import SERVER_URLS, server_problem  # noqa: E402
from helpers.runs import drop_derived, observe, pytest_args, start  # noqa: E402

BLOCK = 20
"""Tests per block of the mix; the first and last 100 hold whole blocks."""
MANY = 500
"""Rows the big tests write."""
WINDOW = 100
"""The first and last tests compared."""

TIME_FACTOR = 1.5
TIME_SLACK_MS = 1.0
RSS_SLACK_MIB = 16.0
THRESHOLDS = (
    f"the per-test median time of the last {WINDOW} tests at most {TIME_FACTOR}x that of the "
    f"first {WINDOW} + {TIME_SLACK_MS:g} ms, or at most the highest median of any earlier "
    f"{WINDOW} (the other work on a shared machine moves it that much; time that grows with "
    f"the tests run is above every earlier window); their median RSS at most "
    f"{RSS_SLACK_MIB:g} MiB above the first {WINDOW}'s; the median of the connections open "
    f"after each of the last {WINDOW} tests no more than after the first {WINDOW} (a "
    "connection left open moves it; one caught closing, as an async test's NullPool "
    "connection can be, does not; the most seen is shown too), and none open once the "
    "session has ended"
)

TABLES = ("accounts", "orders", "events")

SCHEMA = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(60))
    balance: Mapped[int] = mapped_column(default=0)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    item: Mapped[str] = mapped_column(sa.String(60))
    qty: Mapped[int] = mapped_column(default=1)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(30))
    payload: Mapped[str] = mapped_column(sa.String(200), default="")


ACCOUNTS = [(i, f"account-{i}", 100 * i) for i in range(1, 6)]
ORDERS = [(1, 1, "book", 2), (2, 1, "pen", 10), (3, 4, "lamp", 1)]
BASELINE = {"accounts": ACCOUNTS, "orders": ORDERS, "events": []}


def setup(conn):
    Base.metadata.create_all(conn)
    conn.execute(sa.insert(Account), [dict(name=n, balance=b) for _, n, b in ACCOUNTS])
    conn.execute(
        sa.insert(Order), [dict(account_id=a, item=i, qty=q) for _, a, i, q in ORDERS]
    )
"""

CONFTEST = '''
import json
import os
import time

import psutil
import pytest
import sqlalchemy as sa

import schema

PROCESS = psutil.Process()
RECORDS = []
WRITTEN = {}
LEAKS = []
_current = {}
_monitor = {}


@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup


def rows_of(conn):
    found = {}
    for name, table in schema.Base.metadata.tables.items():
        found[name] = sorted(tuple(r) for r in conn.execute(sa.select(table)))
    return found


def check_baseline(conn, nodeid):
    """The tables as the setup left them; anything else is a leak from an earlier test."""
    found = rows_of(conn)
    expected = {k: sorted(v) for k, v in schema.BASELINE.items()}
    if found != expected:
        LEAKS.append(nodeid)
        diff = {k: found[k][:5] for k in found if found[k] != expected[k]}
        raise AssertionError(f"leak: the test did not start at the baseline: {diff}")


def wrote(nodeid, rows):
    WRITTEN[nodeid] = WRITTEN.get(nodeid, 0) + rows


@pytest.fixture(scope="session", autouse=True)
def _load_monitor(db_url):
    url = sa.engine.make_url(db_url)
    _monitor["backend"] = url.get_backend_name()
    _monitor["database"] = url.database
    if _monitor["backend"] != "sqlite":
        server = os.environ["LOAD_SERVER_URL"]
        _monitor["engine"] = sa.create_engine(server, poolclass=sa.pool.StaticPool)
    yield
    if "engine" in _monitor:
        _monitor["engine"].dispose()


def sessions():
    """What holds the test database open: one line per connection (SQLite: descriptor)."""
    backend = _monitor.get("backend")
    if backend == "sqlite":
        path = os.path.realpath(_monitor["database"])
        return [f"fd {f.fd}" for f in PROCESS.open_files() if f.path == path]
    if backend is None:
        return None
    with _monitor["engine"].connect() as conn:
        if backend == "postgresql":
            query = (
                "SELECT concat_ws(' ', pid, state, left(query, 60)) FROM pg_stat_activity "
                "WHERE datname = :db"
            )
        else:
            query = (
                "SELECT CONCAT_WS(' ', ID, COMMAND, STATE, LEFT(INFO, 60)) "
                "FROM information_schema.PROCESSLIST WHERE DB = :db"
            )
        return sorted(str(r[0]) for r in conn.execute(sa.text(query), {"db": _monitor["database"]}))


def pytest_runtest_logreport(report):
    entry = _current.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "passed"})
    entry["seconds"] += report.duration
    entry[report.when] = report.duration
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
    if report.when == "teardown":
        del _current[report.nodeid]
        held = sessions()
        count = None if held is None else len(held)
        changed = bool(RECORDS) and RECORDS[-1]["connections"] != count
        RECORDS.append(
            {
                "nodeid": report.nodeid,
                **entry,
                "rss": PROCESS.memory_info().rss,
                "connections": count,
                "sessions": held if changed else None,
                "rows": WRITTEN.pop(report.nodeid, 0),
                "leak": report.nodeid in LEAKS,
            }
        )


def pytest_sessionfinish(session):
    with open(os.environ["LOAD_RECORD"], "w") as out:
        json.dump({"tests": RECORDS, "leaks": LEAKS}, out)
'''

# One block of the mix: (name, code). ``{many}`` is MANY.
KINDS: list[tuple[str, str]] = [
    (
        "sandbox_orm",
        """
def test_{n}_sandbox_orm(db_session, request):
    check_baseline(db_session, request.node.nodeid)
    account = Account(name="new-{n}", balance={n})
    db_session.add(account)
    db_session.flush()
    db_session.add_all([Order(account_id=account.id, item="x", qty=q) for q in (1, 2)])
    db_session.get(Account, 2).balance += 1
    db_session.commit()
    wrote(request.node.nodeid, 4)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Order)) == 5
""",
    ),
    (
        "sandbox_savepoint",
        """
def test_{n}_sandbox_savepoint(db, request):
    check_baseline(db, request.node.nodeid)
    db.execute(sa.insert(Event).values(kind="kept", payload="{n}"))
    with db.begin_nested() as inner:
        db.execute(sa.delete(Order))
        inner.rollback()
    db.execute(sa.update(Account).where(Account.id == 3).values(balance=0))
    wrote(request.node.nodeid, 2)
    assert db.scalar(sa.select(sa.func.count()).select_from(Order)) == 3
""",
    ),
    (
        "transactional",
        """
def test_{n}_transactional(transactional_db, request):
    check_baseline(transactional_db, request.node.nodeid)
    transactional_db.execute(sa.insert(Event), [dict(kind="t", payload="{n}")] * 2)
    transactional_db.execute(sa.update(Account).where(Account.id == 1).values(balance=-1))
    transactional_db.execute(sa.delete(Order).where(Order.id == 2))
    transactional_db.commit()
    wrote(request.node.nodeid, 4)
    assert transactional_db.scalar(sa.select(sa.func.count()).select_from(Event)) == 2
""",
    ),
    (
        "async_sandbox",
        """
@pytest.mark.asyncio
async def test_{n}_async_sandbox(async_db_session, request):
    await async_db_session.run_sync(
        lambda s: check_baseline(s.connection(), request.node.nodeid)
    )
    async_db_session.add_all([Event(kind="async", payload="{n}"), Account(name="a{n}")])
    await async_db_session.commit()
    wrote(request.node.nodeid, 2)
    total = await async_db_session.scalar(sa.select(sa.func.count()).select_from(Account))
    assert total == 6
""",
    ),
    (
        "transactional_many",
        """
def test_{n}_transactional_many(transactional_db, request):
    check_baseline(transactional_db, request.node.nodeid)
    transactional_db.execute(
        sa.insert(Event), [dict(kind="bulk", payload="p" * 100) for _ in range({many})]
    )
    transactional_db.commit()
    wrote(request.node.nodeid, {many})
    assert transactional_db.scalar(sa.select(sa.func.count()).select_from(Event)) == {many}
""",
    ),
    (
        "sandbox_many",
        """
def test_{n}_sandbox_many(db_session, request):
    check_baseline(db_session, request.node.nodeid)
    db_session.add_all([Event(kind="bulk", payload="q" * 100) for _ in range({many})])
    db_session.commit()
    wrote(request.node.nodeid, {many})
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Event)) == {many}
""",
    ),
]

# Which kind each test of a block of BLOCK is: mostly sandboxed, as in a real suite.
MIX = (
    ["sandbox_orm"] * 8
    + ["sandbox_savepoint"] * 3
    + ["async_sandbox"] * 2
    + ["transactional"] * 5
    + ["transactional_many", "sandbox_many"]
)
assert len(MIX) == BLOCK

HEADER = """
import pytest
import sqlalchemy as sa

from conftest import check_baseline, wrote
from schema import Account, Event, Order
"""


def write_suite(where: Path, tests: int) -> None:
    """The load suite of ``tests`` tests in ``where``: blocks of the mix, 10 blocks a file."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    code = dict(KINDS)
    per_file = BLOCK * 10
    for first in range(0, tests, per_file):
        body = [HEADER]
        for n in range(first, min(first + per_file, tests)):
            body.append(code[MIX[n % BLOCK]].format(n=n, many=MANY))
        (where / f"test_load_{first // per_file:03d}.py").write_text("\n".join(body))


@dataclass
class LoadResult:
    """What one database's load run did."""

    backend: str
    tests: int = 0
    passed: int = 0
    failed: int = 0
    rows: int = 0
    leaks: int = 0
    leak_notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    windows: list[dict[str, float | None]] = field(default_factory=list)
    """The measures of each run of WINDOW tests in turn; the last is the last WINDOW tests."""
    median_ms: float = 0.0
    p95_ms: float = 0.0
    growth: dict[str, bool] = field(default_factory=dict)
    left_open: int | None = None
    """Connections open to the test database after the session's teardown (must be 0)."""
    error: str | None = None

    @property
    def first(self) -> dict[str, float | None]:
        return self.windows[0] if self.windows else {}

    @property
    def last(self) -> dict[str, float | None]:
        return self.windows[-1] if self.windows else {}

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.failed == 0
            and self.leaks == 0
            and self.tests > 0
            and all(self.growth.values())
        )


def _url(backend: str, where: Path) -> URL:
    name = f"dbrewind_loadrun_{uuid.uuid4().hex[:8]}_test"  # tests/reliability's: dbrewind_load_
    if backend == "sqlite":
        return make_url(f"sqlite:///{where / (name + '.db')}")
    return make_url(SERVER_URLS[backend]).set(database=name)


def _window(records: list[dict[str, Any]]) -> dict[str, float | None]:
    connections = [r["connections"] for r in records if r["connections"] is not None]
    return {
        "median_ms": statistics.median(r["seconds"] for r in records) * 1000,
        "rss_mib": statistics.median(r["rss"] for r in records) / 2**20,
        "connections_max": max(connections) if connections else None,
        "connections_median": statistics.median(connections) if connections else None,
    }


def _baseline_problems(backend: str, url: URL) -> list[str]:
    """How the database after the run differs from its baseline (rows, counters, tracking)."""
    seen = observe(url, TABLES)
    expected: dict[str, list[tuple[Any, ...]]] = {
        "accounts": [(i, f"account-{i}", 100 * i) for i in range(1, 6)],
        "orders": [(1, 1, "book", 2), (2, 1, "pen", 10), (3, 4, "lamp", 1)],
        "events": [],
    }
    problems = [
        f"{table}: {len(seen.rows[table])} rows differ from the baseline's {len(rows)}"
        for table, rows in expected.items()
        if seen.rows[table] != sorted(rows)
    ]
    if backend != "mysql":  # MySQL's sandbox leaves AUTO_INCREMENT where it got to (README)
        for table, rows in expected.items():
            if seen.counters[table] != len(rows) + 1:
                problems.append(f"{table}: next id {seen.counters[table]}, not {len(rows) + 1}")
    if not seen.at_rest:
        problems.append(f"tracking not at rest: {seen.tracking}")
    return problems


def run(backend: str, tests: int, where: Path) -> LoadResult:
    """Run the load suite of ``tests`` tests on ``backend`` in one session, and measure it."""
    result = LoadResult(backend)
    problem = server_problem(backend)
    if problem is not None:
        result.error = f"server unreachable: {problem}"
        return result
    project = where / backend
    write_suite(project, tests)
    url = _url(backend, project)
    record = project / "record.json"
    env = {"LOAD_RECORD": str(record)}
    if backend != "sqlite":
        env["LOAD_SERVER_URL"] = SERVER_URLS[backend]
    began = time.perf_counter()
    try:
        proc = start(project, pytest_args(url, "-p", "no:xdist", "-W", "error"), env=env)
        code, out = proc.finish(timeout=3600)
        result.seconds = time.perf_counter() - began
        (project / "output.txt").write_text(out)
        if not record.exists():
            result.error = f"the run recorded nothing (exit {code}):\n{out[-3000:]}"
            return result
        data = json.loads(record.read_text())
        records: list[dict[str, Any]] = data["tests"]
        result.tests = len(records)
        result.passed = sum(r["outcome"] == "passed" for r in records)
        result.failed = sum(r["outcome"] != "passed" for r in records)
        result.rows = sum(r["rows"] for r in records)
        result.leaks = len(data["leaks"])
        result.leak_notes = [f"test started away from the baseline: {n}" for n in data["leaks"]]
        if code != 0 and result.failed == 0:
            result.error = f"pytest exited {code}:\n{out[-3000:]}"
        if result.failed:
            failures = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
            result.error = f"{result.failed} tests failed: " + "; ".join(failures[:5])
        after = _baseline_problems(backend, url)
        if after:
            result.leaks += 1
            result.leak_notes.append("the database after the run: " + "; ".join(after))
        if len(records) >= 2 * WINDOW:
            seconds = sorted(r["seconds"] for r in records)
            result.median_ms = statistics.median(seconds) * 1000
            result.p95_ms = seconds[int(0.95 * (len(seconds) - 1))] * 1000
            starts = range(0, len(records) - WINDOW, WINDOW)
            result.windows = [_window(records[i : i + WINDOW]) for i in starts]
            result.windows.append(_window(records[-WINDOW:]))
            result.growth = _growth(result.windows)
            result.left_open = records[-1]["connections"]  # its teardown ended the session
            if result.left_open:
                result.growth["released"] = False
        else:
            result.error = result.error or f"{len(records)} tests: fewer than {2 * WINDOW}"
    finally:
        drop_derived(backend, url)
    return result


def _growth(windows: list[dict[str, float | None]]) -> dict[str, bool]:
    """For each measure, True when the last tests are within noise of the first (THRESHOLDS)."""

    def num(window: dict[str, float | None], key: str) -> float:
        value = window[key]
        return 0.0 if value is None else float(value)

    first, last, earlier = windows[0], windows[-1], windows[:-1]
    time_limit = max(
        num(first, "median_ms") * TIME_FACTOR + TIME_SLACK_MS,
        max(num(w, "median_ms") for w in earlier),
    )
    return {
        "time": num(last, "median_ms") <= time_limit,
        "memory": num(last, "rss_mib") <= num(first, "rss_mib") + RSS_SLACK_MIB,
        "connections": num(last, "connections_median") <= num(first, "connections_median"),
    }
