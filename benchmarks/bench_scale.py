"""The clean strategy at scale: 10, 100 and 500 tables, through real pytest runs, side by side.

Run::

    python benchmarks/bench_scale.py                          # all backends, 3 rounds
    python benchmarks/bench_scale.py --backends postgresql --tables 10,100 --rounds 5
    python benchmarks/bench_scale.py --quick --json /tmp/scale.json   # smoke run: 1 round
    python benchmarks/bench_scale.py --contenders dbrewind,"BEGIN; ROLLBACK"   # (and the floor)

**Schemas.** ``--tables`` sizes (10, 100, 500), each generated twice: with foreign
keys and without. Table ``t000`` is a hub; every fifth table (``t003``, ``t008``,
...) references it (fan-out) and heads a chain of five (``t004`` references
``t003``, ...); ``t001`` and ``t002`` reference each other (the cycle). The
variant without foreign keys has the same columns and no constraints.

**The suite.** ``--tests`` (200) tests, each committing 10 rows into 2 tables:
5 into a parent and 5 into its child, which reference them (one
``INSERT .. VALUES``, one ``INSERT .. SELECT``, one transaction). Test ``k``
writes the ``(37 k) mod edges``-th parent/child pair, so the tests spread over
the schema. Every test gets a SQLAlchemy ``Connection`` from a fixture ``conn``;
only what isolates the tests differs between the contenders:

* **dbrewind** -- ``conn`` is ``transactional_db`` (the clean strategy), with
  ini ``dbrewind_url`` naming a scratch database and ``dbrewind_setup`` the
  generated schema's ``metadata_setup``.
* **TRUNCATE all** -- what hand-written conftests do after each test:
  PostgreSQL one ``TRUNCATE t000, t001, ... RESTART IDENTITY CASCADE``;
  MariaDB ``SET FOREIGN_KEY_CHECKS=0`` and one ``TRUNCATE`` per table; SQLite
  ``DELETE`` from every table in one transaction.
* **pytest-clean-database** 1.0 from PyPI, in a virtualenv of its own
  (``--pcd-venv``, made on first use with the same SQLAlchemy and drivers as
  this one): its ``clean_db_urls`` fixture names the database; it truncates
  the tables its triggers flagged, one statement each. Its failures (MariaDB
  error 1701: ``TRUNCATE`` of a table a foreign key references) are results.
  PostgreSQL and MariaDB only.
* **seed-004 recipe** -- the hand-written fixture most projects copy: a
  connection, an outer ``BEGIN``, and ``conn`` is a
  ``Session(bind=connection, join_transaction_mode="create_savepoint")`` (the
  test's ``begin()`` is a ``SAVEPOINT`` .. ``RELEASE``), rolled back after the
  test. Nothing is committed, so it isolates only tests that use that one
  connection.
* **BEGIN; ROLLBACK** -- the floor of a sandbox: the fixture's connection in one
  transaction that the test's ``begin()`` joins (no savepoint), rolled back
  after the test.
* **database per test** -- a new database for every test, cloned from a
  template holding the schema, as pytest-postgresql and IntegreSQL do:
  PostgreSQL ``CREATE DATABASE .. TEMPLATE``; MariaDB ``CREATE DATABASE`` and
  the template's ``SHOW CREATE TABLE`` statements (read once a session) with
  foreign-key checks off; SQLite a copy of the template's file. The test
  connects to it (a new engine); after the test it is dropped.
* **no isolation** -- the same suite with nothing between the tests (the
  floor), in this virtualenv and (**no isolation, pcd venv**) in
  pytest-clean-database's, whose pytest and plugins differ: each contender's
  isolation cost is taken against the floor of its own virtualenv.

The isolating contenders' suites also hold a check test at the start of each
module (untimed) that the tables the previous module wrote are empty.

**Timing.** Each run is a ``python -m pytest -p bench_timing -p no:randomly``
subprocess; the plugin ``bench_timing`` (written beside the suite) times each
test's whole protocol (setup + call + teardown, all plugins' hooks included)
and writes the durations to JSON. A run's figure is the median over its tests
(the first test, which pays for the session fixtures, is left out; the mean is
in the JSON). A warm-up round runs every case with 12 tests (dbrewind builds its
template then; later runs are warm starts); from its figure each case gets
the number of tests a run of ``--budget`` seconds holds (at least 12, at most
``--tests``): TRUNCATE-all at 500 tables takes about a second a test, and its
figure is far above the noise. Then ``--rounds`` rounds; each round runs every
case once, schemas and contenders interleaved, the contenders' order rotated
from round to round (a ``TRUNCATE`` leaves I/O behind for whatever runs next).

**Isolation cost** = a contender's per-test figure minus its floor's, per
round (the floor run of the same round), then the median over rounds; the band
is the lowest and highest of the rounds. When dbrewind's cost is near the
floor, a ratio to it would blow up or turn negative, so dbrewind's cost is
never taken below the resolution (half the floor's own spread over the rounds,
at least 0.01 ms). A target is checked on the medians' ratio, and each target
line also gives its lower bound: the other contender's lowest round over
dbrewind's highest. Flatness is dbrewind's cost at the largest schema over the
smallest (medians; the band from the rounds' extremes). ``--from-json PATH``
prints the tables of an earlier run again, from its raw figures.

Databases are named ``dbrewind_bench_<hex>_<schema>_<role>_test`` (dbrewind's
template ``<name>_tmpl_<fp8>`` beside its clone; the per-test databases
``dbrewind_bench_<hex>_<schema>_c<pid>_<n>_test``); every database with the
run's prefix is dropped at the end, also after an error or Ctrl-C.

``--json PATH`` (``_common``'s) writes the raw figures of every round, the
targets and the machine; ``benchmarks/report.py`` reads them.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from _common import (
    SERVER_URLS,
    SINK,
    Check,
    base_parser,
    checks_table,
    drop_databases,
    fmt_ms,
    scratch_databases,
    selected_backends,
    subprocess_env,
)
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, create_engine
from sqlalchemy.engine import URL, Engine

__all__ = ["main"]

PCD_REQUIREMENT = "pytest-clean-database[psql,mysql]==1.0"
PCD_VENV = Path("/tmp/bench-venvs/pcd")
ROWS = 5
"""rows per table a test writes (two tables: 10 rows)"""
STRIDE = 37
PROBE_TESTS = 12
MIN_TESTS = 12
TARGET_TRUNCATE = {100: 50.0, 500: 200.0}
TARGET_PCD = 10.0
TARGET_FLAT = 1.5

FLOOR, DBREWIND, TRUNCATE, PCD_FLOOR, PCD = (
    "no isolation",
    "dbrewind",
    "TRUNCATE all",
    "no isolation, pcd venv",
    "pytest-clean-database",
)
RECIPE, ROLLBACK, CLONE = "seed-004 recipe", "BEGIN; ROLLBACK", "database per test"
FLOOR_OF = {
    DBREWIND: FLOOR,
    TRUNCATE: FLOOR,
    PCD: PCD_FLOOR,
    RECIPE: FLOOR,
    ROLLBACK: FLOOR,
    CLONE: FLOOR,
}
ISOLATING = (DBREWIND, TRUNCATE, PCD, RECIPE, ROLLBACK, CLONE)
CONTENDERS = (FLOOR, DBREWIND, TRUNCATE, RECIPE, ROLLBACK, CLONE, PCD_FLOOR, PCD)
SERVER_ONLY = (PCD_FLOOR, PCD)


# ------------------------------------------------------------------ the schema


def parent_of(i: int) -> int | None:
    """The table ``t<i>`` references: the hub, the chain's previous one, or the cycle."""
    if i == 0:
        return None
    if i in (1, 2):
        return 3 - i  # t001 <-> t002
    if (i - 3) % 5 == 0:
        return 0  # fan-out: every fifth table hangs off the hub
    return i - 1  # chains of five below it


def build_schema(n_tables: int, with_fks: bool) -> MetaData:
    metadata = MetaData()
    for i in range(n_tables):
        parent = parent_of(i)
        if parent is not None and with_fks:
            fk = ForeignKey(f"t{parent:03d}.id", name=f"fk_t{i:03d}_parent", use_alter=i == 2)
            parent_id = Column("parent_id", Integer, fk, nullable=True)
        else:
            parent_id = Column("parent_id", Integer, nullable=True)
        Table(
            f"t{i:03d}",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            parent_id,
            Column("name", String(40), nullable=False),
            Column("n", Integer, nullable=False),
        )
    return metadata


SCHEMA_SOURCE = inspect.getsource(parent_of) + "\n\n" + inspect.getsource(build_schema)
"""Read once, at import: the inner suites' schema module stays right while this file is
edited during a run."""


def edges(n_tables: int) -> list[tuple[str, str]]:
    """Every (parent, child) pair of the schema."""
    pairs = []
    for i in range(1, n_tables):
        parent = parent_of(i)
        assert parent is not None
        pairs.append((f"t{parent:03d}", f"t{i:03d}"))
    return pairs


def written_pairs(n_tables: int, n_tests: int) -> list[tuple[str, str]]:
    """The pair test ``k`` writes, for each ``k``."""
    pairs = edges(n_tables)
    return [pairs[(STRIDE * k) % len(pairs)] for k in range(n_tests)]


def truncate_all_statements(backend: str, tables: list[str]) -> list[str]:
    """What a hand-written conftest runs after each test to empty ``tables``."""
    if backend == "postgresql":
        return [f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"]
    if backend == "mysql":
        return [
            "SET FOREIGN_KEY_CHECKS = 0",
            *(f"TRUNCATE TABLE {t}" for t in tables),
            "SET FOREIGN_KEY_CHECKS = 1",
        ]
    return ["BEGIN", *(f"DELETE FROM {t}" for t in tables), "COMMIT"]


@dataclass(frozen=True)
class Schema:
    tables: int
    fks: bool

    @property
    def key(self) -> str:
        return f"{'fk' if self.fks else 'nofk'}{self.tables}"

    @property
    def label(self) -> str:
        return f"{self.tables}, {'FK' if self.fks else 'no FK'}"


# --------------------------------------------------------------- the inner suites

TIMING_PLUGIN = '''
"""Times each test's whole protocol; writes the figures to $BENCH_SCALE_OUT as JSON."""

import json
import os
import time

import pytest

_records = {}
_order = []


def pytest_collection_modifyitems(config, items):
    limit = int(os.environ.get("BENCH_SCALE_LIMIT") or 0)
    if limit:
        written = [i for i in items if "test_write" in i.nodeid][:limit]
        last = items.index(written[-1])
        items[:] = items[: last + 1]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.perf_counter_ns()
    yield
    record = _records.setdefault(item.nodeid, {"outcome": "passed", "error": ""})
    record["ms"] = (time.perf_counter_ns() - started) / 1e6
    _order.append(item.nodeid)


def pytest_runtest_logreport(report):
    record = _records.setdefault(report.nodeid, {"outcome": "passed", "error": ""})
    record[report.when] = report.duration * 1000
    if report.failed and record["outcome"] == "passed":
        record["outcome"] = "failed" if report.when == "call" else "error"
        lines = [ln for ln in report.longreprtext.splitlines() if ln.startswith("E ")]
        record["error"] = (lines[-1] if lines else report.longreprtext[-300:])[:300]


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_SCALE_OUT"], "w") as f:
        json.dump([dict(_records[n], nodeid=n) for n in _order], f)
'''

CONFTEST_PLAIN = """
import pytest
from sqlalchemy import create_engine

URL = {url!r}


@pytest.fixture(scope="session")
def engine():
    engine = create_engine(URL)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(engine):
    with engine.connect() as conn:
        yield conn
"""

SQLITE_SAVEPOINTS = """
from sqlalchemy import event

if engine_url.startswith("sqlite"):  # SQLAlchemy's documented pysqlite workaround

    @event.listens_for(Engine, "connect")
    def _no_implicit_begin(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(Engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")
"""

CONFTEST_RECIPE = """
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

engine_url = {url!r}
{sqlite}

@pytest.fixture(scope="session")
def engine():
    engine = create_engine(engine_url)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(engine):
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        yield session
        session.close()
        outer.rollback()
"""

CONFTEST_ROLLBACK = """
import contextlib

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

engine_url = {url!r}
{sqlite}

@pytest.fixture(scope="session")
def engine():
    engine = create_engine(engine_url)
    yield engine
    engine.dispose()


class Joined:  # the fixture's connection: the test's begin() joins its one transaction
    def __init__(self, connection):
        self.execute = connection.execute

    def begin(self):
        return contextlib.nullcontext()


@pytest.fixture
def conn(engine):
    with engine.connect() as connection:
        outer = connection.begin()
        yield Joined(connection)
        outer.rollback()
"""

CONFTEST_CLONE = """
import itertools
import os
import shutil

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

BACKEND = {backend!r}
SERVER_URL = {server!r}
TEMPLATE_URL = make_url({url!r})
TEMPLATE = TEMPLATE_URL.database
PREFIX = {prefix!r} + f"c{{os.getpid()}}_"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def server():
    if BACKEND == "sqlite":
        yield None, []
        return
    engine = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    statements = []
    if BACKEND == "mysql":
        with engine.connect() as c:
            names = c.exec_driver_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (TEMPLATE,),
            ).scalars()
            for name in sorted(names):
                row = c.exec_driver_sql(f"SHOW CREATE TABLE `{{TEMPLATE}}`.`{{name}}`").one()
                statements.append(row[1])
    with engine.connect() as c:
        yield c, statements
    engine.dispose()


@pytest.fixture
def conn(server):
    admin, statements = server
    name = f"{{PREFIX}}{{next(_numbers)}}_test"
    if BACKEND == "sqlite":
        folder = os.path.dirname(TEMPLATE)
        path = os.path.join(folder, name + ".db")
        shutil.copyfile(TEMPLATE, path)
        url = TEMPLATE_URL.set(database=path)
    elif BACKEND == "postgresql":
        admin.exec_driver_sql(f'CREATE DATABASE "{{name}}" TEMPLATE "{{TEMPLATE}}"')
        url = TEMPLATE_URL.set(database=name)
    else:
        admin.exec_driver_sql(f"CREATE DATABASE `{{name}}`")
        url = TEMPLATE_URL.set(database=name)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            if statements:
                connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
                for statement in statements:
                    connection.exec_driver_sql(statement)
                connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
                connection.commit()
            yield connection
    finally:
        engine.dispose()
        if BACKEND == "sqlite":
            os.remove(path)
        elif BACKEND == "postgresql":
            admin.exec_driver_sql(f'DROP DATABASE "{{name}}"')
        else:
            admin.exec_driver_sql(f"DROP DATABASE `{{name}}`")
"""

CONFTEST_TRUNCATE = """
@pytest.fixture(autouse=True)
def _truncate_all(engine):
    yield
    with engine.connect() as conn:
        for statement in {statements!r}:
            conn.exec_driver_sql(statement)
        conn.commit()
"""

CONFTEST_PCD = """

@pytest.fixture(scope="session")
def clean_db_urls():
    return [{dsn!r}]
"""

CONFTEST_DBREWIND = """
import pytest


@pytest.fixture
def conn(transactional_db):
    return transactional_db
"""

SCHEMA_MODULE = '''
"""The generated schema: {label} tables."""

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table

from dbrewind.setup import metadata_setup

{source}

create_schema = metadata_setup(build_schema({tables}, {fks}))
'''

TEST_MODULE = """
import pytest
from sqlalchemy import text

WRITES = {writes!r}


@pytest.mark.parametrize("k", range({start}, {stop}))
def test_write(conn, k):
    parent_sql, child_sql = WRITES[k - {start}]
    with conn.begin():
        conn.execute(text(parent_sql))
        conn.execute(text(child_sql))
"""

CHECK_TEST = """

def test_check_previous_module_left_nothing(conn):
    with conn.begin():
        counts = {{
            t: conn.execute(text(f"SELECT COUNT(*) FROM {{t}}")).scalar_one() for t in {tables!r}
        }}
    left = {{t: c for t, c in counts.items() if c}}
    assert not left, f"rows the previous module's tests wrote are still there: {{left}}"
"""

PER_MODULE = 20


def write_suite(
    folder: Path,
    contender: str,
    backend: str,
    schema: Schema,
    url: URL,
    pcd_dsn: str,
    n_tests: int,
    prefix: str = "",
) -> None:
    folder.mkdir(parents=True)
    shown = url.render_as_string(hide_password=False)
    (folder / "bench_timing.py").write_text(TIMING_PLUGIN.lstrip())
    ini = "[pytest]\n"
    if contender == DBREWIND:
        ini += f"dbrewind_url = {shown}\ndbrewind_setup = bench_schema:create_schema\n"
        source = SCHEMA_SOURCE
        (folder / "bench_schema.py").write_text(
            SCHEMA_MODULE.format(
                label=schema.label, source=source, tables=schema.tables, fks=schema.fks
            ).lstrip()
        )
        conftest = CONFTEST_DBREWIND
    elif contender in (RECIPE, ROLLBACK):
        template = CONFTEST_RECIPE if contender == RECIPE else CONFTEST_ROLLBACK
        sqlite = SQLITE_SAVEPOINTS if backend == "sqlite" else ""
        conftest = template.format(url=shown, sqlite=sqlite)
    elif contender == CLONE:
        server = SERVER_URLS.get(backend, "")
        conftest = CONFTEST_CLONE.format(
            backend=backend, server=server, url=shown, prefix=f"{prefix}{schema.key}_"
        )
    else:
        conftest = CONFTEST_PLAIN.format(url=shown)
        if contender == TRUNCATE:
            names = [f"t{i:03d}" for i in range(schema.tables)]
            conftest += CONFTEST_TRUNCATE.format(statements=truncate_all_statements(backend, names))
        elif contender == PCD:
            conftest += CONFTEST_PCD.format(dsn=pcd_dsn)
    (folder / "pytest.ini").write_text(ini)
    (folder / "conftest.py").write_text(conftest.lstrip())
    pairs = written_pairs(schema.tables, n_tests)
    values = ", ".join(f"('k{{k}}', {j})" for j in range(ROWS))
    for module, start in enumerate(range(0, n_tests, PER_MODULE)):
        stop = min(start + PER_MODULE, n_tests)
        writes = [
            (
                f"INSERT INTO {p} (name, n) VALUES {values.format(k=k)}",
                f"INSERT INTO {c} (parent_id, name, n) SELECT id, name, n FROM {p} "
                f"WHERE name = 'k{k}'",
            )
            for k, (p, c) in enumerate(pairs[start:stop], start)
        ]
        body = TEST_MODULE.format(writes=writes, start=start, stop=stop).lstrip()
        if contender in ISOLATING and start:
            previous = sorted({t for pair in pairs[start - PER_MODULE : start] for t in pair})
            body += CHECK_TEST.format(tables=previous)
        (folder / f"test_m{module:03d}.py").write_text(body)


# ------------------------------------------------------------------- running it


@dataclass
class Run:
    round: int
    tests: int
    median_ms: float
    mean_ms: float
    errors: int
    error: str
    exit_code: int
    wall_s: float
    preparing_ms: float | None = None
    items: int = 0
    """tests run, the check tests included"""
    phases_ms: dict[str, float] = field(default_factory=dict)
    """the median test's setup, call and teardown as pytest reports them"""


@dataclass
class Case:
    schema: Schema
    contender: str
    folder: Path
    python: str
    pythonpath: str
    limit: int = 0
    runs: list[Run] = field(default_factory=list)

    def fig(self, attr: str = "median_ms") -> float:
        return statistics.median(float(getattr(r, attr)) for r in self.runs)

    @property
    def errors(self) -> int:
        return max((r.errors for r in self.runs), default=0)

    @property
    def error(self) -> str:
        return next((r.error for r in self.runs if r.error), "")


class RunFailed(Exception):
    """An inner run produced no figures (not a test failure: pytest itself broke)."""


def run_case(case: Case, limit: int, round_no: int) -> Run:
    out = case.folder / "timing.json"
    out.unlink(missing_ok=True)
    env = subprocess_env(
        PYTHONPATH=case.pythonpath, BENCH_SCALE_OUT=str(out), BENCH_SCALE_LIMIT=str(limit)
    )
    command = [case.python, "-m", "pytest", "-p", "bench_timing", "-p", "no:randomly", "-q"]
    command += ["--tb=short", "-p", "no:cacheprovider"]
    if case.contender == PCD_FLOOR:
        command += ["-p", "no:clean-db"]  # its autouse fixtures need a clean_db_urls
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=case.folder, env=env, capture_output=True, text=True, timeout=1800
    )
    wall = time.perf_counter() - started
    output = done.stdout + done.stderr
    if not out.exists():
        raise RunFailed(
            f"{case.contender} on {case.schema.label}: no timings (exit {done.returncode}):\n"
            + output[-4000:]
        )
    records = json.loads(out.read_text())
    written = [r for r in records if "::test_write[" in r["nodeid"]]
    times = [r["ms"] for r in written[1:]] or [r["ms"] for r in written]
    if not times:
        raise RunFailed(f"{case.contender} on {case.schema.label}: no test ran:\n{output[-4000:]}")
    bad = [r for r in records if r["outcome"] != "passed"]
    preparing = None
    marker = ", preparing "
    if marker in output:
        preparing = float(output.split(marker, 1)[1].split(" ", 1)[0])
    return Run(
        round_no,
        len(written),
        statistics.median(times),
        statistics.fmean(times),
        len(bad),
        bad[0]["error"] if bad else "",
        done.returncode,
        wall,
        preparing,
        len(records),
        {
            phase: statistics.median(r.get(phase, 0.0) for r in written[1:] or written)
            for phase in ("setup", "call", "teardown")
        },
    )


def pcd_python(venv: Path) -> str:
    """pytest-clean-database 1.0 in a virtualenv of its own, with this one's SQLAlchemy
    and drivers (the suite's code is the same in both); made or completed when needed."""
    python = venv / "bin" / "python"
    wanted = {"pytest-clean-database": "1.0.0"} | {
        name: importlib_metadata.version(name)
        for name in ("SQLAlchemy", "psycopg", "psycopg-binary", "PyMySQL")
    }
    probe = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try:\n"
        "        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    )
    if python.exists():
        found = subprocess.run(
            [str(python), "-c", probe, *wanted], capture_output=True, text=True, check=False
        )
        if found.returncode == 0 and json.loads(found.stdout) == wanted:
            return str(python)
    else:
        print(f"making {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = [PCD_REQUIREMENT] + [
        f"{n}=={v}" for n, v in wanted.items() if n != "pytest-clean-database"
    ]
    print(f"installing {' '.join(pins)} into {venv} ...", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    return str(python)


def pcd_dsn(url: URL) -> str:
    """The DSN pytest-clean-database parses (its MySQL parser needs a port and a password)."""
    if url.get_backend_name() == "postgresql":
        password = f":{url.password}" if url.password else ""
        return f"postgresql://{url.username}{password}@{url.host}:{url.port or 5432}/{url.database}"
    return (
        f"mysql://{url.username}:{url.password or ''}@{url.host}:{url.port or 3306}/{url.database}"
    )


def drop_all(backend: str, prefix: str) -> None:
    """Drop every database of the run; a failure is said, not raised over the results."""
    try:
        drop_databases(backend, prefix)
    except Exception as exc:  # e.g. MariaDB 1010: a stray file in the database's directory
        print(f"  {backend}: could not drop every {prefix}* database: {exc}", file=sys.stderr)


def reset_plain(engine: Engine, backend: str, tables: list[str]) -> None:
    """Empty the tables a run of the floor may have written (untimed)."""
    with engine.connect() as conn:
        for statement in truncate_all_statements(backend, tables):
            if statement not in ("BEGIN", "COMMIT"):
                conn.exec_driver_sql(statement)
        conn.commit()


def reset_pcd(engine: Engine, backend: str, all_tables: list[str], written: list[str]) -> None:
    """Take out what pytest-clean-database's session set-up made (it makes them anew in
    every session, and fails when they exist), and empty the written tables."""
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql("DROP TABLE IF EXISTS public.__dirty_tables")
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS public.mark_dirty() CASCADE")
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS public.clean_tables()")
        else:
            for t in all_tables:
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS mark_dirty_{t}")
            conn.exec_driver_sql("DROP PROCEDURE IF EXISTS mark_dirty")
            conn.exec_driver_sql("DROP PROCEDURE IF EXISTS clean_tables")
            conn.exec_driver_sql("DROP TABLE IF EXISTS __dirty_tables")
        conn.commit()
    reset_plain(engine, backend, written)


# ------------------------------------------------------------------- the figures


@dataclass
class Cost:
    median: float
    low: float
    high: float


def cost_of(case: Case, floor: Case) -> Cost | None:
    floors = {r.round: r.median_ms for r in floor.runs}
    diffs = [r.median_ms - floors[r.round] for r in case.runs if r.round in floors]
    if not diffs:
        return None
    return Cost(statistics.median(diffs), min(diffs), max(diffs))


def resolution(floor: Case) -> float:
    values = [r.median_ms for r in floor.runs]
    return max((max(values) - min(values)) / 2 if values else 0.0, 0.01)


def ratio_lower_bound(other: Cost, ours: Cost, eps: float) -> float:
    return other.low / max(ours.high, eps)


def fmt_ratio(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def fmt_cost(cost: Cost | None) -> str:
    if cost is None:
        return "-"
    return f"{fmt_ms(cost.median)} [{fmt_ms(cost.low)}, {fmt_ms(cost.high)}]"


@dataclass
class BackendResult:
    backend: str
    cases: dict[tuple[str, str], Case]
    schemas: list[Schema]
    contenders: list[str]


def report(result: BackendResult) -> tuple[str, list[Check], dict[str, Any]]:
    backend, cases = result.backend, result.cases
    lines = [
        f"### {backend}",
        "",
        "| tables | contender | tests a run | per-test ms | isolation cost ms [band] "
        "| x dbrewind's cost | lower bound | errors |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    checks: list[Check] = []
    raw: dict[str, Any] = {"schemas": []}
    ours_cost: dict[Schema, Cost] = {}
    failures: list[str] = []
    for schema in result.schemas:
        floor = cases[(schema.key, FLOOR)]
        eps = resolution(floor)
        mine = cases.get((schema.key, DBREWIND))
        ours = cost_of(mine, floor) if mine else None
        if ours is not None:
            ours_cost[schema] = ours
        entry: dict[str, Any] = {
            "tables": schema.tables,
            "fks": schema.fks,
            "resolution_ms": eps,
            "cases": {},
        }
        for contender in result.contenders:
            case = cases[(schema.key, contender)]
            cost = (
                cost_of(case, cases[(schema.key, FLOOR_OF[contender])])
                if (contender in FLOOR_OF)
                else None
            )
            point = bound = ""
            if cost is not None and ours is not None and contender != DBREWIND:
                point = fmt_ratio(cost.median / max(ours.median, eps))
                bound = fmt_ratio(ratio_lower_bound(cost, ours, eps))
            errors = "0"
            if case.errors:
                shown = case.error[:110].replace("|", "/")
                errors = f"{case.errors} of {case.runs[-1].items} tests failed: `{shown}`"
            lines.append(
                f"| {schema.label} | {contender} | {case.runs[-1].tests} | {fmt_ms(case.fig())} "
                f"| {fmt_cost(cost)} | {point} | {bound} | {errors} |"
            )
            entry["cases"][contender] = {
                "tests_per_run": case.runs[-1].tests,
                "per_test_ms": case.fig(),
                "per_test_mean_ms": case.fig("mean_ms"),
                "isolation_cost_ms": None if cost is None else cost.__dict__,
                "errors": case.errors,
                "error": case.error,
                "runs": [r.__dict__ for r in case.runs],
            }
            # the targets against TRUNCATE and pytest-clean-database are the servers'
            targeted = backend != "sqlite" and contender in (TRUNCATE, PCD)
            if targeted and ours is not None and cost is not None:
                limit = TARGET_PCD if contender == PCD else TARGET_TRUNCATE.get(schema.tables)
                if contender == PCD and case.errors:
                    entry["cases"][contender]["target"] = "not checked: it fails on this schema"
                    failures.append(f"{backend}, {schema.label}: {case.error}")
                elif limit is not None:
                    low = ratio_lower_bound(cost, ours, eps)
                    what = f"{contender} / dbrewind, {schema.label} (lower bound {low:.1f}x)"
                    value = cost.median / max(ours.median, eps)
                    checks.append(Check(backend, what, value, ">=", limit, "x"))
        raw["schemas"].append(entry)
    sizes = sorted({s.tables for s in result.schemas})
    for fks in (True, False):
        small, large = Schema(sizes[0], fks), Schema(sizes[-1], fks)
        if len(sizes) > 1 and small in ours_cost and large in ours_cost:
            a, b = ours_cost[small], ours_cost[large]
            eps = resolution(cases[(small.key, FLOOR)])
            value = b.median / max(a.median, eps)
            checks.append(
                Check(
                    backend,
                    f"dbrewind's cost, {sizes[-1]} / {sizes[0]} tables, "
                    f"{'FK' if fks else 'no FK'} (band {b.low / max(a.high, eps):.2f}"
                    f"-{b.high / max(a.low, eps):.2f})",
                    value,
                    "<=",
                    TARGET_FLAT,
                    "x",
                )
            )
    prepared = [
        f"{s.label}: {fmt_ms(statistics.median(p))} ms"
        for s in result.schemas
        if (
            p := [
                r.preparing_ms
                for r in (cases[(s.key, DBREWIND)].runs if (s.key, DBREWIND) in cases else [])
                if r.preparing_ms is not None
            ]
        )
    ]
    lines += [
        "",
        "per-test ms: median over the rounds of each run's median test (setup + call + "
        "teardown). isolation cost: minus the floor of the same round and virtualenv, "
        "median [lowest, highest] over the rounds. x dbrewind's cost: the medians' ratio; "
        "lower bound: the contender's lowest round over dbrewind's highest (at least "
        "the resolution, half the floor's spread). dbrewind's session preparing (warm "
        f"start): {'; '.join(prepared) or '-'}.",
    ]
    if failures:
        lines += ["", "pytest-clean-database fails (no target checked there):", ""]
        lines += [f"- {f}" for f in failures]
    return "\n".join(lines), checks, raw


def results_from_json(raw: dict[str, Any]) -> list[BackendResult]:
    """The measurements a ``--json`` file holds, to render its tables again."""
    results = []
    for backend, figures in raw["backends"].items():
        cases: dict[tuple[str, str], Case] = {}
        schemas: list[Schema] = []
        contenders: list[str] = []
        for entry in figures["schemas"]:
            schema = Schema(entry["tables"], entry["fks"])
            schemas.append(schema)
            for contender, fig in entry["cases"].items():
                if contender not in contenders:
                    contenders.append(contender)
                runs = [Run(**r) for r in fig["runs"]]
                cases[(schema.key, contender)] = Case(
                    schema, contender, Path(), "", "", fig["tests_per_run"], runs
                )
        results.append(BackendResult(backend, cases, schemas, contenders))
    return results


# ---------------------------------------------------------------------- the run


def run_backend(
    backend: str,
    schemas: list[Schema],
    n_tests: int,
    rounds: int,
    budget: float,
    pcd_venv: Path,
    tmp: Path,
    src: Path | None,
    chosen: tuple[str, ...] = CONTENDERS,
) -> BackendResult:
    wanted = {FLOOR, *chosen} | ({PCD_FLOOR} if PCD in chosen else set())
    contenders = [
        c for c in CONTENDERS if c in wanted and (backend != "sqlite" or c not in SERVER_ONLY)
    ]
    pcd = pcd_python(pcd_venv) if PCD in contenders else ""
    roles = [f"{s.key}_{role}" for s in schemas for role in ("plain", "pcd", "rw", "tpl")]
    with ExitStack() as stack:
        urls = stack.enter_context(scratch_databases(backend, roles))
        first = Path(str(urls[roles[0]].database)).name
        prefix = first[: first.index(roles[0])]
        if backend != "sqlite":
            stack.callback(drop_all, backend, prefix)  # dbrewind's templates too
        engines: dict[str, Engine] = {}

        def dispose() -> None:
            for engine in engines.values():
                engine.dispose()

        stack.callback(dispose)
        cases: dict[tuple[str, str], Case] = {}
        written: dict[Schema, list[str]] = {}
        for schema in schemas:
            metadata = build_schema(schema.tables, schema.fks)
            for role in ("plain", "pcd"):
                engines[f"{schema.key}_{role}"] = engine = create_engine(
                    urls[f"{schema.key}_{role}"]
                )
                metadata.create_all(engine)
            template = create_engine(urls[f"{schema.key}_tpl"])  # no one else connects to it
            metadata.create_all(template)
            template.dispose()
            written[schema] = sorted(
                {t for pair in written_pairs(schema.tables, n_tests) for t in pair}
            )
            for contender in contenders:
                role = {DBREWIND: "rw", PCD: "pcd", CLONE: "tpl"}.get(contender, "plain")
                folder = (
                    tmp / backend / f"{schema.key}_{contender.replace(' ', '_').replace(',', '')}"
                )
                url = urls[f"{schema.key}_{role}"]
                dsn = pcd_dsn(url) if contender == PCD else ""
                write_suite(folder, contender, backend, schema, url, dsn, n_tests, prefix)
                python = pcd if contender in (PCD, PCD_FLOOR) else sys.executable
                path = os.pathsep.join([*([str(src)] if src else []), str(folder)])
                cases[(schema.key, contender)] = Case(schema, contender, folder, python, path)
        all_tables = {s: [f"t{i:03d}" for i in range(s.tables)] for s in schemas}

        def run(case: Case, limit: int, round_no: int) -> Run:
            engine = engines[f"{case.schema.key}_{'pcd' if case.contender == PCD else 'plain'}"]
            if case.contender == PCD:
                reset_pcd(engine, backend, all_tables[case.schema], written[case.schema])
            elif case.contender not in (DBREWIND, CLONE):
                reset_plain(engine, backend, written[case.schema])
            return run_case(case, limit, round_no)

        for case in cases.values():  # warm-up: templates built, caches filled; calibrate
            probe = run(case, PROBE_TESTS, 0)
            per_run = budget * 1000 / max(probe.median_ms, 0.01)
            case.limit = max(MIN_TESTS, min(n_tests, int(per_run)))
            print(
                f"  {backend} warm-up {case.schema.label:>12} {case.contender:<22} "
                f"{fmt_ms(probe.median_ms):>8} ms a test -> {case.limit} tests a run"
                + (f"; {probe.errors} failed: {probe.error[:90]}" if probe.errors else ""),
                file=sys.stderr,
            )
        for r in range(1, rounds + 1):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for schema in schemas:
                for contender in order:
                    case = cases[(schema.key, contender)]
                    done = run(case, case.limit, r)
                    case.runs.append(done)
                    print(
                        f"  {backend} round {r} {schema.label:>12} {contender:<22} "
                        f"{fmt_ms(done.median_ms):>8} ms a test ({done.tests} tests, "
                        f"{done.wall_s:.1f} s)"
                        + (f", {done.errors} failed" if done.errors else ""),
                        file=sys.stderr,
                    )
        return BackendResult(backend, cases, schemas, contenders)


REPO = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def dbrewind_source(ref: str | None, tmp: Path) -> tuple[Path | None, str]:
    """Where the inner runs import dbrewind from, and what that is. With ``ref``, a
    snapshot of that commit's ``src/`` (other work in a shared tree cannot move
    under the figures); without, the installed package (the working tree)."""
    if ref is None:
        changed = git("status", "--porcelain", "--", "src")
        head = git("rev-parse", "--short", "HEAD")
        what = f"the working tree at {head}" + (
            " with uncommitted changes in src/" if changed else ""
        )
        return None, what
    commit = git("rev-parse", "--short", f"{ref}^{{commit}}")
    if not commit:
        raise SystemExit(f"--dbrewind-ref {ref}: no such commit")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "src"], cwd=REPO, capture_output=True, check=True
    )
    dest = tmp / "dbrewind-src"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src", f"commit {commit} (a snapshot of its src/)"


def reset_sequences_note(src: Path | None) -> str:
    if src is None:
        from dbrewind.pytest_plugin import hooks

        source = inspect.getsource(hooks)
    else:
        source = (src / "dbrewind" / "pytest_plugin" / "hooks.py").read_text()
    if "dbrewind_reset_sequences" in source:
        return (
            "dbrewind_reset_sequences at its default, auto: on MySQL/MariaDB the rewind "
            "does not put AUTO_INCREMENT counters back"
        )
    return (
        "no dbrewind_reset_sequences setting yet: every rewind puts the AUTO_INCREMENT "
        "counters that moved back (MySQL/MariaDB: ALTER TABLE)"
    )


def print_report(raw: dict[str, Any], reports: list[str], checks: list[Check]) -> None:
    print(f"## The clean strategy at scale ({raw['tests']} tests, {raw['rounds']} rounds)\n")
    print(f"dbrewind: {raw['dbrewind']}; {raw['reset_sequences']}.\n")
    print("\n\n".join(reports))
    print("\n### Targets\n")
    print(checks_table(checks))
    print(
        f"\nTook {raw['seconds'] / 60:.1f} min ({raw['date']}); load average "
        f"{raw['load_average_start']:.2f} at the start, {raw['load_average_end']:.2f} at the "
        f"end ({raw['cpus']} CPUs, shared)."
    )


def render_json(path: Path) -> int:
    """``--from-json``: the tables of an earlier run, from its raw figures."""
    raw = json.loads(path.read_text())
    raw = raw.get("data", {}).get("scale", raw)  # a --json of _common's sink, or an older one
    reports: list[str] = []
    checks: list[Check] = []
    for result in results_from_json(raw):
        text_, found, _figures = report(result)
        reports.append(text_)
        checks += found
    print_report(raw, reports, checks)
    return 0 if all(c.passed for c in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], default_rounds=3)
    parser.add_argument("--tables", default="10,100,500", help="schema sizes (10,100,500)")
    parser.add_argument("--tests", type=int, default=200, help="tests in the suite (200)")
    parser.add_argument(
        "--budget",
        type=float,
        default=5.0,
        help="seconds of tests a slow contender's run may take (5); at least 12 tests run",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(c for c in CONTENDERS if c not in (FLOOR, PCD_FLOOR)),
        help="comma-separated, from "
        + ", ".join(c for c in CONTENDERS if c not in (FLOOR, PCD_FLOOR))
        + " (default: all; no isolation always runs, it is every cost's floor)",
    )
    parser.add_argument(
        "--dbrewind-ref",
        help="measure this commit's dbrewind (a snapshot of its src/), e.g. HEAD; "
        "default: the installed one (the working tree)",
    )
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: print the tables of an earlier --json"
    )
    parser.add_argument("--pcd-venv", type=Path, default=PCD_VENV, help=f"({PCD_VENV})")
    args = parser.parse_args(argv)
    if args.from_json:
        return render_json(args.from_json)
    chosen = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    # a TERM (a timeout, a kill) still drops the scratch databases: the finally blocks run
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rounds, n_tests, budget = args.rounds, args.tests, args.budget
    if args.quick:
        rounds, n_tests, budget = 1, 60, 2.0
    sizes = sorted({int(t) for t in args.tables.split(",") if t.strip()})
    if rounds < 1 or n_tests < MIN_TESTS or not sizes or sizes[0] < 3:
        raise SystemExit(f"need --rounds >= 1, --tests >= {MIN_TESTS}, --tables >= 3")
    schemas = [Schema(n, fks) for n in sizes for fks in (True, False)]
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="dbrewind_bench_scale_"))
    src, source = dbrewind_source(args.dbrewind_ref, tmp)
    note = reset_sequences_note(src)
    print(
        f"{os.cpu_count()} CPUs; {n_tests} tests; {rounds} rounds; dbrewind: {source}; {note}",
        file=sys.stderr,
    )
    reports: list[str] = []
    checks: list[Check] = []
    raw: dict[str, Any] = {
        "benchmark": "bench_scale",
        "dbrewind": source,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "rounds": rounds,
        "tests": n_tests,
        "budget_s": budget,
        "reset_sequences": note,
        "load_average_start": os.getloadavg()[0],
        "backends": {},
    }
    try:
        for backend in selected_backends(args.backends):
            print(f"measuring {backend} ...", file=sys.stderr)
            t0 = time.perf_counter()
            try:
                result = run_backend(
                    backend, schemas, n_tests, rounds, budget, args.pcd_venv, tmp, src, chosen
                )
            except RunFailed as exc:
                print(exc, file=sys.stderr)
                reports.append(f"### {backend}\n\nan inner run broke; its output is above (stderr)")
                checks.append(Check(backend, "an inner run broke, not measured", 0, ">=", 1, ""))
                continue
            text_, found, figures = report(result)
            figures["seconds"] = time.perf_counter() - t0
            reports.append(text_)
            checks += found
            raw["backends"][backend] = figures
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    raw["seconds"] = elapsed
    raw["load_average_end"] = os.getloadavg()[0]
    raw["checks"] = [dict(c.__dict__, passed=c.passed) for c in checks]
    print_report(raw, reports, checks)
    SINK.data("scale", raw)
    for backend, figures in raw["backends"].items():
        for entry in figures["schemas"]:
            for contender, fig in entry["cases"].items():
                about = {"contender": contender, "tables": entry["tables"], "fks": entry["fks"]}
                SINK.figure(backend, "per-test ms", fig["per_test_ms"], "ms", **about)
                cost = fig["isolation_cost_ms"]
                SINK.figure(
                    backend,
                    "isolation cost ms",
                    None if cost is None else cost["median"],
                    "ms",
                    **about,
                    errors=fig["errors"],
                )
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
