"""The lock watch in the entry points besides the plugin's fixtures: the unittest classes
and the peewee / peewee-async sandboxes.

A test writes a row with a unique key in its rollback sandbox, then a plain
connection (not routed into the sandbox) inserts the same key: on PostgreSQL
and MariaDB that statement would wait for the end of the test while the test
waits for it. Each inner run must instead fail within seconds, naming both
sides and the fix, and the database must be at its baseline for the next run.
On SQLite the plain connection gives up after its busy timeout ("database is
locked").
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS, make_database, require_backend
from helpers.runs import drop_derived, observe, pytest_args, start

BOUND = 40
"""Seconds a whole failing inner run may take (it would otherwise hang)."""

SEED = [(1, "seed@example.com")]
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
"""The inner projects' pytest.ini."""


@pytest.fixture
def lw_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """A database name of this test's own, not made yet; dropped afterwards, with every
    database derived from it (the template of a unittest class's setup)."""
    require_backend(backend)
    name = f"dbrewind_lw_{uuid.uuid4().hex[:8]}_test"
    if backend == "sqlite":
        url = make_url(f"sqlite:///{tmp_path / (name + '.db')}")
    else:
        url = make_url(SERVER_URLS[backend]).set(database=name)
    try:
        yield url
    finally:
        drop_derived(backend, url)


@pytest.fixture
def lw_database(backend: str, tmp_path: Path, lw_url: URL) -> URL:
    """:func:`lw_url`'s database, made empty (a peewee suite creates its tables there)."""
    return make_database(backend, tmp_path, str(Path(str(lw_url.database)).stem))


def write(project: Path, files: dict[str, str]) -> Path:
    project.mkdir()
    for name, content in files.items():
        (project / name).write_text(textwrap.dedent(content))
    return project


def env_for(url: URL, **extra: str) -> dict[str, str]:
    return {"LW_URL": url.render_as_string(hide_password=False), **extra}


def run_pytest(project: Path, env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    code, out = start(project, pytest_args(None), env=env).finish(timeout=180)
    return code, out, time.monotonic() - started


def run_unittest(project: Path, env: dict[str, str]) -> tuple[int, str, float]:
    environment = dict(os.environ)
    environment.pop("PYTEST_XDIST_WORKER", None)
    environment.pop("PYTEST_ADDOPTS", None)
    environment.update(env)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_cases"],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
        check=False,
    )
    return proc.returncode, proc.stdout, time.monotonic() - started


def assert_failed_fast(backend: str, out: str, took: float, *, fix: str, blocked: int) -> None:
    """The run ended within :data:`BOUND` seconds, each of the ``blocked`` tests failing
    with the lock watch's message (SQLite: the busy timeout's error)."""
    assert took < BOUND, f"the run took {took:.0f} s\n{out}"
    if backend == "sqlite":
        # one writer at a time: the plain connection gives up after its busy timeout
        assert out.count("database is locked") >= blocked, out
        return
    assert out.count("dbrewind.exceptions.SandboxError: ") >= blocked, out
    assert out.count("dbrewind cancelled that statement") >= blocked, out
    assert "a connection outside the test's sandbox (session" in out, out
    assert "for a lock the sandbox (session" in out, out
    assert "running: \"INSERT INTO account (id, email) VALUES (3, 'same@example.com')\"" in out, out
    assert fix in out, out


def failures_section(out: str) -> str:
    """The run's output before its short summary (whose lines repeat each error in full
    when CI is set)."""
    return out.split("short test summary info")[0]


def assert_at_baseline(url: URL) -> None:
    found = observe(url, ["account"])
    assert found.at_rest, found
    assert found.rows["account"] == SEED, found


PLAIN_INSERT = """
def plain_insert():
    # a connection of its own, not the sandbox's engine: not routed into the sandbox
    plain = sa.create_engine(os.environ["LW_URL"])
    try:
        with plain.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO account (id, email) VALUES (3, 'same@example.com')"
            )
    finally:
        plain.dispose()
"""

# ------------------------------------------------------------------ unittest

UNITTEST_CASES = (
    """
import os
import unittest

import sqlalchemy as sa

import dbrewind.unittest as dbu

metadata = sa.MetaData()
account = sa.Table(
    "account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(80), nullable=False, unique=True),
)
PASSING = bool(os.environ.get("LW_PASS"))


def setup(conn):
    metadata.create_all(conn)
    conn.execute(account.insert().values(id=1, email="seed@example.com"))
"""
    + PLAIN_INSERT
    + """

class Accounts(dbu.TestCase):
    database_url = os.environ["LW_URL"]
    database_setup = setup

    def test_a_plain_connection_inserts_what_the_sandbox_holds(self):
        self.db.execute(account.insert().values(id=2, email="same@example.com"))
        if not PASSING:
            plain_insert()

    def test_b_only_the_seed_is_there(self):
        emails = self.db.execute(sa.select(account.c.email)).scalars().all()
        self.assertEqual(emails, ["seed@example.com"])


class AsyncAccounts(dbu.AsyncTestCase):
    database_url = os.environ["LW_URL"]
    database_setup = setup

    async def test_a_plain_connection_inserts_what_the_sandbox_holds(self):
        await self.db.execute(account.insert().values(id=2, email="same@example.com"))
        if not PASSING:
            plain_insert()  # blocks the event loop: only the lock watch's thread can help

    async def test_b_only_the_seed_is_there(self):
        emails = (await self.db.execute(sa.select(account.c.email))).scalars().all()
        self.assertEqual(emails, ["seed@example.com"])
"""
)

UNITTEST_FIX = "database_engine (its connections run in the sandbox), or use TransactionTestCase"
SQLITE_NOTE = "the sandbox holds the database's one write lock"


def unittest_project(where: Path) -> Path:
    return write(
        where,
        {
            "test_cases.py": UNITTEST_CASES,
            "pytest.ini": INI,
        },
    )


def test_unittest_cases_run_by_pytest_fail_instead_of_hanging(
    backend: str, tmp_path: Path, lw_url: URL
) -> None:
    project = unittest_project(tmp_path / "project")
    code, out, took = run_pytest(project, env_for(lw_url))
    assert code == 1, out
    # each blocked test fails (the plain connection's error) and, but on SQLite, errors
    # at teardown (dbrewind's message); the tests after them pass
    assert_failed_fast(backend, out, took, fix=UNITTEST_FIX, blocked=2)
    if backend == "sqlite":
        assert "2 failed, 2 passed in" in out, out
        if sys.version_info >= (3, 11):
            assert failures_section(out).count(SQLITE_NOTE) == 2, out
    else:
        assert "2 failed, 2 passed, 2 errors" in out, out
        for case in ("Accounts", "AsyncAccounts"):
            test = f"test_cases.{case}.test_a_plain_connection_inserts_what_the_sandbox_holds"
            assert f"{test}: a connection outside the test's sandbox" in out, out

    code, out, _ = run_pytest(project, env_for(lw_url, LW_PASS="1"))
    assert code == 0, out
    assert "4 passed" in out, out
    assert_at_baseline(lw_url)


def test_unittest_cases_run_by_unittest_fail_instead_of_hanging(
    backend: str, tmp_path: Path, lw_url: URL
) -> None:
    project = unittest_project(tmp_path / "project")
    code, out, took = run_unittest(project, env_for(lw_url))
    assert code == 1, out
    assert_failed_fast(backend, out, took, fix=UNITTEST_FIX, blocked=2)
    if backend == "sqlite":
        assert "FAILED (errors=2)" in out, out
        if sys.version_info >= (3, 11):
            assert failures_section(out).count(SQLITE_NOTE) == 2, out
    else:
        # the plain connection's error, and dbrewind's, for each blocked test
        assert "FAILED (errors=4)" in out, out
        assert out.count("SandboxError: test_cases.") == 2, out

    code, out, _ = run_unittest(project, env_for(lw_url, LW_PASS="1"))
    assert code == 0, out
    assert "Ran 4 tests" in out, out
    assert_at_baseline(lw_url)


# ------------------------------------------------------------------ peewee

PEEWEE_DATABASE = """
import os

import peewee
import pytest
from sqlalchemy.engine import make_url

from {module} import TransactionTestCase

url = make_url(os.environ["LW_URL"])
backend = url.get_backend_name()
params = dict(host=url.host, port=url.port, user=url.username, password=url.password or "")
"""

PEEWEE_MODEL = """

class Account({base}):
    id = peewee.IntegerField(primary_key=True)
    email = peewee.CharField(max_length=80, unique=True)

    class Meta:
        database = database


@pytest.fixture(scope="session", autouse=True)
def create_tables():
    database.drop_tables([Account], safe=True)
    database.create_tables([Account])
    Account.create(id=1, email="seed@example.com")
    yield
    database.close()
"""

PEEWEE_CONFTEST = (
    PEEWEE_DATABASE.format(module="dbrewind.peewee")
    + """
if backend == "sqlite":
    database = peewee.SqliteDatabase(url.database)
elif backend == "postgresql":
    database = peewee.PostgresqlDatabase(url.database, **params)
else:
    database = peewee.MySQLDatabase(url.database, **params)
"""
    + PEEWEE_MODEL.format(base="peewee.Model")
    + """

@pytest.fixture(autouse=True)
def in_transaction():
    with TransactionTestCase(database):
        yield
"""
)

PEEWEE_TESTS_HEADER = (
    """
import os

import sqlalchemy as sa

from conftest import Account

PASSING = bool(os.environ.get("LW_PASS"))
"""
    + PLAIN_INSERT
)

PEEWEE_TESTS = (
    PEEWEE_TESTS_HEADER
    + """

def test_a_plain_connection_inserts_what_the_sandbox_holds():
    Account.create(id=2, email="same@example.com")
    if not PASSING:
        plain_insert()


def test_b_only_the_seed_is_there():
    assert [a.email for a in Account.select()] == ["seed@example.com"]
"""
)

PEEWEE_FIX = "run that query through the sandboxed peewee database on the test's own thread"


def fails_then_passes(backend: str, project: Path, url: URL, fix: str, **env: str) -> None:
    """The peewee suite's blocked test fails within the bound, the sandbox's block erroring
    at teardown with the lock watch's message (SQLite: the driver's error only); then
    the suite passes, and the database is at its baseline."""
    code, out, took = run_pytest(project, env_for(url, **env))
    assert code == 1, out
    assert_failed_fast(backend, out, took, fix=fix, blocked=1)
    if backend == "sqlite":
        assert "1 failed, 1 passed in" in out, out
    else:
        assert "1 failed, 1 passed, 1 error" in out, out
        assert "ERROR at teardown of test_a_plain_connection_inserts" in out, out

    code, out, _ = run_pytest(project, env_for(url, LW_PASS="1", **env))
    assert code == 0, out
    assert "2 passed" in out, out
    assert_at_baseline(url)


def test_the_peewee_sandbox_fails_instead_of_hanging(
    backend: str, tmp_path: Path, lw_database: URL
) -> None:
    project = write(
        tmp_path / "project",
        {"conftest.py": PEEWEE_CONFTEST, "test_models.py": PEEWEE_TESTS, "pytest.ini": INI},
    )
    fails_then_passes(backend, project, lw_database, PEEWEE_FIX)


PEEWEE_ASYNC_CONFTEST = (
    PEEWEE_DATABASE.format(module="dbrewind.peewee_async")
    + """
import peewee_async

if backend == "postgresql" and os.environ.get("LW_AIOPG"):
    database = peewee_async.PostgresqlDatabase(  # aiopg
        url.database, **params, pool_params={"minsize": 1, "maxsize": 4}
    )
elif backend == "postgresql":
    database = peewee_async.Psycopg3Database(
        url.database, **params, pool_params={"min_size": 1, "max_size": 4}
    )
else:
    database = peewee_async.MySQLDatabase(
        url.database, **params, pool_params={"minsize": 1, "maxsize": 4}
    )
database.set_allow_sync(True)
"""
    + PEEWEE_MODEL.format(base="peewee_async.AioModel")
    + """

@pytest.fixture(autouse=True)
async def aio_pool():
    await database.aio_connect()
    yield
    await database.aio_close()


@pytest.fixture(autouse=True)
async def in_transaction(aio_pool):
    async with TransactionTestCase(database):
        yield
"""
)

PEEWEE_ASYNC_TESTS = (
    PEEWEE_TESTS_HEADER
    + """

async def test_a_plain_connection_inserts_what_the_sandbox_holds():
    await Account.aio_create(id=2, email="same@example.com")
    if not PASSING:
        plain_insert()  # blocks the event loop: only the lock watch's thread can help


async def test_b_only_the_seed_is_there():
    assert [a.email for a in await Account.select().aio_execute()] == ["seed@example.com"]
"""
)

PEEWEE_ASYNC_FIX = "run that query through the database's aio_ methods inside the sandbox"


@pytest.mark.backends("postgresql", "mysql")
def test_the_peewee_async_sandbox_fails_instead_of_hanging(
    backend: str, tmp_path: Path, lw_database: URL
) -> None:
    _peewee_async_fails_then_passes(backend, tmp_path, lw_database)


@pytest.mark.backends("postgresql")
def test_the_peewee_async_sandbox_on_aiopg_fails_instead_of_hanging(
    backend: str, tmp_path: Path, lw_database: URL
) -> None:
    """peewee-async's PostgresqlDatabase (aiopg, whose session id is a coroutine's)."""
    _peewee_async_fails_then_passes(backend, tmp_path, lw_database, LW_AIOPG="1")


def _peewee_async_fails_then_passes(
    backend: str, tmp_path: Path, lw_database: URL, **env: str
) -> None:
    project = write(
        tmp_path / "project",
        {
            "conftest.py": PEEWEE_ASYNC_CONFTEST,
            "test_models.py": PEEWEE_ASYNC_TESTS,
            "pytest.ini": INI + "asyncio_mode = auto\n",
        },
    )
    fails_then_passes(backend, project, lw_database, PEEWEE_ASYNC_FIX, **env)
