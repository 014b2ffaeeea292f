"""Connections that die: killed sessions, a restarted server, a statement timeout.

Each test runs an inner suite as a user would (whole pytest runs) on a
database made for it. The inner tests commit rows, then kill connections by
their server-side ids (PostgreSQL ``pg_terminate_backend``, MariaDB ``KILL``)
between two tests or during one, or a private server is restarted; the test
after each fault checks that it starts from the baseline, the run's summary
must say what dbrewind did, and after the run the database is compared with
its baseline (rows, counters, tracking). A lock wait the rewind exceeds is in
the test faults' module (a transaction left open); the Rewinder's own test of
it is in ``tests/clean/test_rewinder.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, make_url

from conftest import SERVER_URLS
from helpers import servers
from helpers.runs import Run, drop_derived, pytest_args, start, wait_for_file
from helpers.suites import SCHEMA, assert_at_baseline

RecordProperty = Callable[[str, object], None]

FAULTS = '''
"""Killing the sessions of a test database, by their server-side ids."""
import os
import time

import sqlalchemy as sa

ADMIN_URL = os.environ["FAULT_ADMIN_URL"]
_admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def sessions(name):
    """Server-side ids of the sessions connected to the database ``name``."""
    with _admin.connect() as conn:
        if conn.dialect.name == "postgresql":
            sql = (
                "SELECT pid FROM pg_stat_activity WHERE datname = %(n)s "
                "AND pid <> pg_backend_pid()"
            )
        else:
            sql = (
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %(n)s "
                "AND ID <> CONNECTION_ID()"
            )
        return {row[0] for row in conn.exec_driver_sql(sql, {"n": name})}


def kill_ids(name, ids):
    """Kill the sessions ``ids`` of the database ``name``; wait until the server ended them."""
    with _admin.connect() as conn:
        for pid in ids:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)}, 10000)")
            else:
                try:
                    conn.exec_driver_sql(f"KILL CONNECTION {int(pid)}")
                except sa.exc.OperationalError:  # it ended meanwhile
                    pass
    for _ in range(400):  # KILL returns before the session is gone
        if not (sessions(name) & ids):
            return len(ids)
        time.sleep(0.025)
    raise AssertionError(f"sessions {ids} of {name} still there after the kill")


def own_id(database):
    """The server-side id of dbrewind's own connection to ``database``."""
    with database.rewinder.connection() as conn:
        if conn.dialect.name == "postgresql":
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        return conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()


def kill(database, who):
    """Kill ``who`` ("own": dbrewind's connection, "app": every other, "all") of the
    test database ``database`` (the plugin's). Returns how many."""
    name = database.url.database
    mine = own_id(database)
    found = sessions(name)
    return kill_ids(name, {"own": {mine}, "app": found - {mine}, "all": found}[who] & found)
'''

CONFTEST = '''
import pytest

import schema
from faults import kill


@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup


@pytest.fixture(autouse=True)
def kill_after(request, dbrewind_databases):
    """``@pytest.mark.kill_after("own"|"app"|"all")``: kill those connections after the
    test's own fixtures are torn down (its connections back in their pool), before
    dbrewind's rewind."""
    yield
    marker = request.node.get_closest_marker("kill_after")
    if marker is not None:
        killed = kill(dbrewind_databases["default"], marker.args[0])
        assert killed >= 1, "nothing to kill: the scenario did not happen"
'''

TESTS = """
import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from faults import kill
from schema import items, tags

SEEDS = ["seed-1", "seed-2"]


def names(conn):
    return [r.name for r in conn.execute(items.select().order_by(items.c.id))]


def commit_rows(conn, label):
    conn.execute(items.insert().values(name=label))
    conn.execute(tags.insert().values(label=label))
    conn.commit()


def at_baseline(conn):
    assert names(conn) == SEEDS
    assert conn.execute(sa.select(sa.func.count()).select_from(tags)).scalar() == 0


# -- dbrewind's own connection
@pytest.mark.kill_after("own")
def test_own_between(transactional_db):
    commit_rows(transactional_db, "own-between")


def test_own_between_next(transactional_db):
    at_baseline(transactional_db)


def test_own_during(transactional_db, dbrewind_databases):
    commit_rows(transactional_db, "own-during-1")
    assert kill(dbrewind_databases["default"], "own") == 1
    commit_rows(transactional_db, "own-during-2")  # the test's own connection lives on


def test_own_during_next(transactional_db):
    at_baseline(transactional_db)


# -- the application's pooled connections (db_engine / transactional_db's engine)
@pytest.mark.kill_after("app")
def test_app_between(transactional_db, db_engine):
    commit_rows(transactional_db, "app-between")
    with db_engine.connect() as other:  # a second pooled connection
        assert len(names(other)) == 3


def test_app_between_next(transactional_db, db_engine):
    at_baseline(transactional_db)
    with db_engine.connect() as other:
        at_baseline(other)


@pytest.mark.kill_after("app")
def test_app_between_sandbox(db_session):
    db_session.execute(items.insert().values(name="sandboxed"))
    db_session.commit()


def test_app_between_sandbox_next(db_session, db_engine):
    at_baseline(db_session)
    db_session.execute(items.insert().values(name="sandboxed"))
    db_session.commit()
    with db_engine.connect() as routed:  # routed into the same sandbox
        assert len(names(routed)) == 3


# -- all of them
@pytest.mark.kill_after("all")
def test_all_between(transactional_db):
    commit_rows(transactional_db, "all-between")


def test_all_between_next(db):
    at_baseline(db)


def test_all_during(transactional_db, dbrewind_databases):
    commit_rows(transactional_db, "all-during")
    assert kill(dbrewind_databases["default"], "all") >= 2
    with pytest.raises(exc.DBAPIError) as caught:  # the test's own connection died too
        names(transactional_db)
    assert caught.value.connection_invalidated


def test_all_during_next(transactional_db):
    at_baseline(transactional_db)


def test_all_during_sandbox(db, dbrewind_databases):
    db.execute(items.insert().values(name="sandboxed"))
    assert kill(dbrewind_databases["default"], "all") >= 2
    with pytest.raises(exc.DBAPIError):
        names(db)


def test_all_during_sandbox_next(db):
    at_baseline(db)


# -- a statement timeout inside a test
def _slow(conn):
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = '50ms'")
        conn.exec_driver_sql("SELECT pg_sleep(5)")
    else:
        conn.exec_driver_sql("SET STATEMENT max_statement_time = 0.05 FOR SELECT SLEEP(5)")


def test_timeout(transactional_db):
    commit_rows(transactional_db, "timeout")
    with pytest.raises(exc.OperationalError) as caught:
        _slow(transactional_db)
    assert not caught.value.connection_invalidated
    transactional_db.rollback()
    assert len(names(transactional_db)) == 3


def test_timeout_next(transactional_db):
    at_baseline(transactional_db)


def test_timeout_sandbox(db_session):
    db_session.execute(items.insert().values(name="before"))
    db_session.commit()
    with pytest.raises(exc.OperationalError):
        _slow(db_session.connection())
    db_session.rollback()
    assert names(db_session) == SEEDS + ["before"]


def test_timeout_sandbox_next(db_session):
    at_baseline(db_session)
"""

ASYNC_TESTS = """
import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from schema import items, tags

SEEDS = ["seed-1", "seed-2"]


async def names(session):
    return list((await session.execute(sa.select(items.c.name).order_by(items.c.id))).scalars())


@pytest.mark.asyncio
@pytest.mark.dbrewind(transactional=True)
@pytest.mark.kill_after("all")
async def test_async_all_between(async_db_session):
    await async_db_session.execute(items.insert().values(name="async"))
    await async_db_session.execute(tags.insert().values(label="async"))
    await async_db_session.commit()


@pytest.mark.asyncio
async def test_async_all_between_next(async_db_session):
    assert await names(async_db_session) == SEEDS
    await async_db_session.execute(items.insert().values(name="sandboxed"))
    assert len(await names(async_db_session)) == 3


@pytest.mark.asyncio
async def test_async_all_during_sandbox(async_db_session, dbrewind_databases):
    from faults import kill

    await async_db_session.execute(items.insert().values(name="sandboxed"))
    assert kill(dbrewind_databases["default"], "all") >= 2
    with pytest.raises(exc.DBAPIError):
        await names(async_db_session)


@pytest.mark.asyncio
async def test_async_all_during_sandbox_next(async_db_session):
    assert await names(async_db_session) == SEEDS
"""

RESTART_TESTS = '''
import os
import pathlib
import time

from test_kills import at_baseline, commit_rows
from schema import items


def checkpoint(n):
    """Tell the outer test this point is reached; wait until it restarted the server."""
    base = os.environ["FAULT_CHECKPOINT"] + f"-{n}"
    pathlib.Path(base + ".reached").write_text("")
    for _ in range(1200):
        if pathlib.Path(base + ".go").exists():
            return
        time.sleep(0.05)
    raise AssertionError("the outer test never said go")


def test_restart(transactional_db):
    commit_rows(transactional_db, "restart")
    checkpoint(1)


def test_restart_next(transactional_db):
    at_baseline(transactional_db)


def test_restart_sandbox(db_session):
    db_session.execute(items.insert().values(name="sandboxed"))
    db_session.commit()
    checkpoint(2)


def test_restart_sandbox_next(db_session, db_engine):
    at_baseline(db_session)
    with db_engine.connect() as other:
        at_baseline(other)
'''

PEEWEE_CONFTEST = """
import os

import peewee
import peewee_async
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from dbrewind import peewee as sync_sandbox
from dbrewind import peewee_async as async_sandbox
from faults import kill_ids, sessions

url = make_url(os.environ["SUITE_DB_URL"])
params = dict(host=url.host, port=url.port, user=url.username, password=url.password or "")
if url.get_backend_name() == "postgresql":
    database = peewee.PostgresqlDatabase(url.database, **params)
    aio_database = peewee_async.Psycopg3Database(
        url.database, **params, pool_params={"min_size": 1, "max_size": 4}
    )
else:
    database = peewee.MySQLDatabase(url.database, **params)
    aio_database = peewee_async.MySQLDatabase(
        url.database, **params, pool_params={"minsize": 1, "maxsize": 4}
    )


class Author(peewee.Model):
    name = peewee.CharField(max_length=100, unique=True)

    class Meta:
        database = database


class AioAuthor(peewee_async.AioModel):
    name = peewee.CharField(max_length=100, unique=True)

    class Meta:
        database = aio_database
        table_name = "author"


def kill_all():
    assert kill_ids(url.database, sessions(url.database)) >= 1


@pytest.fixture(scope="session", autouse=True)
def create_tables():
    database.drop_tables([Author], safe=True)
    database.create_tables([Author])
    Author.create(name="baseline")
    yield  # the connection stays open: every sandbox below reuses it


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def aio_pool():  # kept across tests: its pooled connections may die between them
    await aio_database.aio_connect()
    yield
    await aio_database.aio_close()


@pytest.fixture
def sandbox(request):
    with sync_sandbox.TransactionTestCase(database):
        yield
    if request.node.get_closest_marker("kill_after"):
        kill_all()


@pytest_asyncio.fixture(loop_scope="session")
async def aio_sandbox(request, aio_pool):
    async with async_sandbox.TransactionTestCase(aio_database):
        yield
    if request.node.get_closest_marker("kill_after"):
        kill_all()
"""

PEEWEE_TESTS = """
import threading

import pytest

from conftest import AioAuthor, Author, kill_all

on_one_loop = pytest.mark.asyncio(loop_scope="session")  # the pool outlives each test


def escape(name):  # another thread: its own connection, a real commit
    thread = threading.Thread(target=lambda: Author.create(name=name))
    thread.start()
    thread.join()


@pytest.mark.kill_after
def test_peewee_between(sandbox):
    Author.create(name="sandboxed")
    escape("escaped-between")


def test_peewee_between_next(sandbox):
    assert [a.name for a in Author.select()] == ["baseline"]


def test_peewee_during(sandbox):
    Author.create(name="sandboxed")
    escape("escaped-during")
    kill_all()  # the sandbox's own connection too: the test writes no more


def test_peewee_during_next(sandbox):
    assert [a.name for a in Author.select()] == ["baseline"]


@on_one_loop
@pytest.mark.kill_after
async def test_peewee_async_between(aio_sandbox):
    await AioAuthor.aio_create(name="sandboxed")
    escape("escaped-async")


@on_one_loop
async def test_peewee_async_between_next(aio_sandbox):
    assert [a.name for a in await AioAuthor.select().aio_execute()] == ["baseline"]


@on_one_loop
async def test_peewee_async_during(aio_sandbox):
    await AioAuthor.aio_create(name="sandboxed")
    kill_all()


@on_one_loop
async def test_peewee_async_during_next(aio_sandbox):
    assert [a.name for a in await AioAuthor.select().aio_execute()] == ["baseline"]
"""

INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
markers =
    kill_after(who): kill connections after the test
"""


def write_project(where: Path, tests: dict[str, str]) -> None:
    where.mkdir(parents=True, exist_ok=True)
    (where / "schema.py").write_text(textwrap.dedent(SCHEMA.format(version=1)))
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "faults.py").write_text(textwrap.dedent(FAULTS))
    (where / "pytest.ini").write_text(INI)
    for name, body in tests.items():
        (where / name).write_text(textwrap.dedent(body))


@dataclass
class InnerRun:
    code: int
    out: str
    outcomes: dict[str, str]
    """Each inner test's outcome by name: passed, failed, error, skipped."""


def run_inner(
    where: Path,
    url: URL,
    admin: URL | str,
    *args: str,
    between: Callable[[Run], None] | None = None,
    env: dict[str, str] | None = None,
) -> InnerRun:
    """Run the inner suite to its end (``between``: what to do while it runs)."""
    report = where / "report.xml"
    if isinstance(admin, URL):
        admin = admin.render_as_string(hide_password=False)
    run = start(
        where,
        pytest_args(url, f"--junitxml={report}", *args),
        env={"FAULT_ADMIN_URL": admin, **(env or {})},
    )
    if between is not None:
        try:
            between(run)
        except BaseException:
            run.kill()
            raise
    code, out = run.finish()
    outcomes: dict[str, str] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            name = case.get("name", "")
            outcomes[name] = "failed" if "failure" in kinds else kinds[0] if kinds else "passed"
            if "error" in kinds:
                outcomes[name] = "error"
    return InnerRun(code, out, outcomes)


@dataclass
class Shared:
    url: URL
    run: InnerRun
    baseline: str | None
    """Why the database is not at its baseline after the run, or None."""

    def expect(self, *names: str) -> None:
        """The inner tests ``names`` passed, and the database is at its baseline."""
        got = {name: self.run.outcomes.get(name, "not run") for name in names}
        assert all(v == "passed" for v in got.values()), f"{got}\n{self.run.out}"
        assert self.baseline is None, f"{self.baseline}\n{self.run.out}"

    def notes(self) -> list[str]:
        return [line for line in self.run.out.splitlines() if line.startswith("note: ")]

    def reconnect(self, test: str | None) -> str | None:
        """What the run's summary said dbrewind's lost connection said after ``test`` (an
        inner test's name; None: anywhere), or None when it reported no reconnect there."""
        where = r"(?:after \S+: )?" if test is None else rf"after \S+::{test}: "
        pattern = re.compile(
            rf"note: {where}dbrewind's own connection .* was lost \((.*)\); it reconnected"
        )
        for note in self.notes():
            found = pattern.match(note)
            if found:
                return found[1]
        return None

    def reconnected(self, *tests: str | None) -> str:
        """Assert the run reported dbrewind's reconnect after each of ``tests``; what it said."""
        said = {test: self.reconnect(test) for test in tests}
        assert all(said.values()), f"no reconnect reported after {said}\n{self.run.out}"
        return "; ".join(sorted({str(v) for v in said.values()}))


def _session_dir(factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this session shares (else the session's own)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture
def kills(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Shared:
    """One inner run per backend of every kill scenario, shared by the tests reading it
    (by every xdist worker too: the first to come runs it, the others read its results).
    Its database is compared with the baseline and dropped right after the run."""
    shared = _session_dir(tmp_path_factory) / f"connection-kills-{backend}"
    shared.mkdir(exist_ok=True)
    results = shared / "results.json"
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not results.exists():
            url = make_url(SERVER_URLS[backend]).set(
                database=f"dbrewind_{uuid.uuid4().hex[:8]}_test"
            )
            try:
                write_project(
                    shared / "project", {"test_kills.py": TESTS, "test_async_kills.py": ASYNC_TESTS}
                )
                run = run_inner(shared / "project", url, SERVER_URLS[backend])
                baseline = _baseline_problem(url)
            finally:
                drop_derived(backend, url)
            data = {"url": url.render_as_string(), "code": run.code, "out": run.out}
            data.update(outcomes=run.outcomes, baseline=baseline)
            results.write_text(json.dumps(data))
    data = json.loads(results.read_text())
    run = InnerRun(data["code"], data["out"], data["outcomes"])
    return Shared(make_url(data["url"]), run, data["baseline"])


def _baseline_problem(url: URL) -> str | None:
    """Why the database is not at its baseline, or None when it is."""
    try:
        assert_at_baseline(url)
    except AssertionError as exc:
        return f"not at its baseline after the run: {exc}"
    return None


KILLS = pytest.mark.backends("postgresql", "mysql")


@KILLS
def test_own_connection_killed_between_two_tests(
    kills: Shared, record_property: RecordProperty
) -> None:
    """dbrewind's own connection killed between two tests (a committed row waiting to be rewound)"""
    kills.expect("test_own_between", "test_own_between_next")
    said = kills.reconnected("test_own_between")
    record_property("result", f"rewind hit '{said}': reconnected, rewound; next test at baseline")


@KILLS
def test_own_connection_killed_during_a_test(
    kills: Shared, record_property: RecordProperty
) -> None:
    """dbrewind's own connection killed during a test that keeps committing"""
    kills.expect("test_own_during", "test_own_during_next")
    said = kills.reconnected("test_own_during")
    record_property("result", f"rewind hit '{said}': reconnected, rewound both commits")


@KILLS
def test_pooled_connections_killed_between_two_tests(
    kills: Shared, record_property: RecordProperty
) -> None:
    """the application's pooled connections (db_engine, transactional_db's) killed between tests"""
    kills.expect(
        "test_app_between",
        "test_app_between_next",
        "test_app_between_sandbox",
        "test_app_between_sandbox_next",
    )
    # dbrewind's own connection was spared: nothing to reconnect there
    assert kills.reconnect("test_app_between") is None, kills.run.out
    assert kills.reconnect("test_app_between_sandbox") is None, kills.run.out
    record_property(
        "result", "the pool's pre-ping replaced the dead connections; next tests at baseline"
    )


@KILLS
def test_every_connection_killed_between_two_tests(
    kills: Shared, record_property: RecordProperty
) -> None:
    """every connection to the test database killed between two tests"""
    kills.expect("test_all_between", "test_all_between_next")
    said = kills.reconnected("test_all_between")
    record_property(
        "result", f"rewind hit '{said}': reconnected, rewound; the sandbox got a live connection"
    )


@KILLS
def test_every_connection_killed_during_a_transactional_test(
    kills: Shared, record_property: RecordProperty
) -> None:
    """every connection killed during a transactional test, after it committed a row"""
    kills.expect("test_all_during", "test_all_during_next")
    kills.reconnected("test_all_during")
    record_property(
        "result", "the test saw its connection die; dbrewind reconnected, the row was rewound"
    )


@KILLS
def test_every_connection_killed_during_a_sandboxed_test(
    kills: Shared, record_property: RecordProperty
) -> None:
    """every connection killed during a rollback-sandbox test (db and async_db_session)"""
    kills.expect(
        "test_all_during_sandbox",
        "test_all_during_sandbox_next",
        "test_async_all_during_sandbox",
        "test_async_all_during_sandbox_next",
    )
    kills.reconnected("test_all_during_sandbox", "test_async_all_during_sandbox")
    record_property("result", "the test saw its connection die; the next test started clean")


@KILLS
def test_every_connection_killed_after_an_async_transactional_test(
    kills: Shared, record_property: RecordProperty
) -> None:
    """every connection killed after an async test committed (async_db_session, transactional)"""
    kills.expect("test_async_all_between", "test_async_all_between_next")
    said = kills.reconnected("test_async_all_between")
    record_property("result", f"rewind hit '{said}': reconnected, rewound")


@KILLS
def test_a_statement_timeout_inside_a_test(kills: Shared, record_property: RecordProperty) -> None:
    """a statement timeout inside a test (statement_timeout, max_statement_time)"""
    kills.expect(
        "test_timeout", "test_timeout_next", "test_timeout_sandbox", "test_timeout_sandbox_next"
    )
    assert kills.reconnect("test_timeout") is None, kills.run.out  # nothing was lost
    assert kills.reconnect("test_timeout_sandbox") is None, kills.run.out
    record_property("result", "the test saw the timeout and carried on; next test at baseline")


private_servers = servers.private_servers


@KILLS
def test_the_server_restarted_between_two_tests(
    backend: str,
    private_servers: dict[str, servers.PrivateServer],
    tmp_path: Path,
    record_property: RecordProperty,
) -> None:
    """the server restarted between two tests (after a commit, and after a sandboxed test)"""
    server = servers.get_private_server(private_servers, backend)
    url = server.url.set(database=f"dbrewind_{uuid.uuid4().hex[:8]}_test")
    write_project(tmp_path, {"test_kills.py": TESTS, "test_restart.py": RESTART_TESTS})
    checkpoint = tmp_path / "checkpoint"
    before = server.restarts

    def restart_twice(run: Run) -> None:
        for n in (1, 2):
            wait_for_file(Path(f"{checkpoint}-{n}.reached"), run)
            server.restart()
            Path(f"{checkpoint}-{n}.go").write_text("")

    inner = run_inner(
        tmp_path,
        url,
        server.url,
        "test_restart.py",
        between=restart_twice,
        env={"FAULT_CHECKPOINT": str(checkpoint)},
    )
    assert server.restarts == before + 2
    shared = Shared(url, inner, _baseline_problem(url))
    shared.expect(
        "test_restart", "test_restart_next", "test_restart_sandbox", "test_restart_sandbox_next"
    )
    said = shared.reconnected("test_restart", "test_restart_sandbox")
    record_property(
        "result", f"rewind hit '{said}': reconnected, rewound; the sandbox got a live connection"
    )


@KILLS
def test_peewee_connections_killed(
    backend: str, suite_url: URL, tmp_path: Path, record_property: RecordProperty
) -> None:
    """every connection killed between and during peewee and peewee-async sandbox tests"""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(PEEWEE_CONFTEST))
    (tmp_path / "faults.py").write_text(textwrap.dedent(FAULTS))
    (tmp_path / "test_peewee.py").write_text(textwrap.dedent(PEEWEE_TESTS))
    (tmp_path / "pytest.ini").write_text(INI)
    rendered = suite_url.render_as_string(hide_password=False)
    inner = run_inner(tmp_path, suite_url, SERVER_URLS[backend], env={"SUITE_DB_URL": rendered})
    engine = create_engine(suite_url)
    try:
        with engine.connect() as conn:
            left = [tuple(r) for r in conn.exec_driver_sql("SELECT name FROM author ORDER BY id")]
    finally:
        engine.dispose()
    baseline = None if left == [("baseline",)] else f"author holds {left} after the run"
    shared = Shared(suite_url, inner, baseline)
    shared.expect(
        *(
            f"test_peewee{kind}{step}"
            for kind in ("", "_async")
            for step in ("_between", "_between_next", "_during", "_during_next")
        )
    )
    said = shared.reconnected(None)  # the peewee sandboxes' own safety net reported it
    record_property("result", f"safety net hit '{said}': reconnected, rewound escaped commits")


@KILLS
def test_a_rewinders_connection_killed_between_rewinds(
    backend: str, db_url: URL, record_property: RecordProperty
) -> None:
    """dbrewind used as a library: the Rewinder's connection killed between two rewinds"""
    from sqlalchemy import text

    from dbrewind import Rewinder

    admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    app = create_engine(db_url)
    try:
        with Rewinder(db_url) as rewinder:
            rewinder.prepare(
                lambda conn: conn.execute(text("CREATE TABLE note (id INT PRIMARY KEY)"))
            )
            with app.begin() as conn:
                conn.execute(text("INSERT INTO note VALUES (1)"))
            with rewinder.connection() as conn:
                own = conn.execute(
                    text(
                        "SELECT pg_backend_pid()"
                        if backend == "postgresql"
                        else "SELECT CONNECTION_ID()"
                    )
                ).scalar()
            with admin.connect() as conn:
                if backend == "postgresql":
                    conn.execute(text("SELECT pg_terminate_backend(:p, 10000)"), {"p": own})
                else:
                    conn.execute(text(f"KILL CONNECTION {int(own)}"))
                    while conn.execute(
                        text("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = :p"),
                        {"p": own},
                    ).scalar():
                        time.sleep(0.01)  # KILL returns before the session is gone
            result = rewinder.rewind()
            assert result.tables, result
            assert rewinder.reconnects == 1, rewinder.last_reconnect
            assert "was lost" in rewinder.last_reconnect
            with app.connect() as conn:
                assert conn.execute(text("SELECT COUNT(*) FROM note")).scalar() == 0
            record_property("result", f"rewind reconnected once: {rewinder.last_reconnect}")
    finally:
        app.dispose()
        admin.dispose()


def _poison_trigger_cache(url: URL, table: str, seconds: float) -> int:
    """Kill sessions while they open ``table`` until MariaDB caches its triggers half-read.

    A root session evicts the table from the cache and opens it again (which
    parses its triggers) in a loop, and is killed after a random few
    milliseconds; the table cache is the server's, so the half-read copy it
    leaves serves every account. Returns the attempts it took: afterwards an
    insert into ``table`` fails with error 1064 "... has an error in its body".
    (An ``ALTER TABLE`` loop also gets there, after some hundreds of kills on a
    quiet machine and not within 90 s on a loaded one: most of its time goes to
    the rebuild, not to the parse a kill has to land in.)
    """
    import random
    import threading

    import pymysql

    server = make_url(SERVER_URLS["mysql"])

    def session(database: str | None, account: URL = server) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(
            host=account.host,
            port=account.port or 3306,
            user=account.username or "root",
            password=account.password or "",
            database=database,
            autocommit=True,
        )

    admin = session(None)
    probe = session(url.database, url)
    deadline = time.monotonic() + seconds
    attempts = 0
    try:
        while time.monotonic() < deadline:
            attempts += 1
            victim = session(url.database)
            with victim.cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID()")
                (victim_id,) = cursor.fetchone()

            def work(victim: pymysql.connections.Connection = victim) -> None:  # type: ignore[type-arg]
                with contextlib.suppress(pymysql.Error), victim.cursor() as cursor:
                    for _ in range(200):
                        cursor.execute(f"FLUSH TABLES `{table}`")
                        cursor.execute(f"SELECT 1 FROM `{table}` LIMIT 0")

            thread = threading.Thread(target=work)
            thread.start()
            time.sleep(random.random() * 0.02)
            with contextlib.suppress(pymysql.Error), admin.cursor() as cursor:
                cursor.execute(f"KILL CONNECTION {int(victim_id)}")
            thread.join()
            with contextlib.suppress(pymysql.Error):
                victim.close()
            with probe.cursor() as cursor:
                cursor.execute("BEGIN")
                try:
                    cursor.execute(f"INSERT INTO `{table}` (label) VALUES ('probe')")
                except pymysql.Error as exc:
                    if exc.args[0] == 1064 and "has an error in its body" in str(exc.args[1]):
                        return attempts
                    raise
                finally:
                    cursor.execute("ROLLBACK")
    finally:
        probe.close()
        admin.close()
    raise AssertionError(
        f"{attempts} killed sessions in {seconds:.0f} s did not leave {table!r}'s triggers "
        "half-read in MariaDB's table cache: the server may no longer have this fault, and "
        "this test has nothing left to prove there"
    )


@pytest.mark.backends("mysql")
@pytest.mark.parametrize("account", ["root", "without RELOAD"])
def test_mariadb_triggers_left_half_read_by_a_killed_session(
    account: str, db_url: URL, record_property: RecordProperty
) -> None:
    """a killed session leaves a table's triggers half-read in MariaDB's cache: the rewind
    clears the cache (FLUSH TABLES, or its triggers made again) and carries on"""
    from sqlalchemy import text

    from dbrewind import Rewinder

    admin = create_engine(SERVER_URLS["mysql"], isolation_level="AUTOCOMMIT")
    user = f"dbrewind_norld_{uuid.uuid4().hex[:6]}"
    url = db_url
    try:
        if account != "root":
            with admin.connect() as conn:
                conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
                conn.execute(text(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY 'pw'"))
                for host in ("%", "localhost"):
                    conn.execute(text(f"GRANT ALL ON `{db_url.database}`.* TO '{user}'@'{host}'"))
            url = db_url.set(username=user, password="pw")
        with Rewinder(url) as rewinder:

            def setup(conn: Connection) -> None:
                conn.execute(
                    text("CREATE TABLE note (id INT AUTO_INCREMENT PRIMARY KEY, label TEXT)")
                )
                conn.execute(text("INSERT INTO note (label) VALUES ('baseline')"))

            rewinder.prepare(setup)  # the rewind puts the baseline row back: a trigger fires
            app = create_engine(url)
            try:
                with app.begin() as conn:
                    conn.execute(text("INSERT INTO note (label) VALUES ('committed')"))
            finally:
                app.dispose()
            attempts = _poison_trigger_cache(url, "note", 90)
            result = rewinder.rewind()
            assert result.tables == ("note",), result
            assert rewinder.recoveries == 1, rewinder.last_recovery
            how = "flushed" if account == "root" else "created its triggers again"
            assert "half-read" in rewinder.last_recovery
            assert how in rewinder.last_recovery
            app = create_engine(url)
            try:
                with app.begin() as conn:  # the app's next statement is served well too
                    conn.execute(text("INSERT INTO note (label) VALUES ('after')"))
            finally:
                app.dispose()
            assert rewinder.rewind().tables == ("note",)
            with rewinder.connection() as conn:
                left = conn.execute(text("SELECT id, label FROM note")).all()
                assert [tuple(r) for r in left] == [(1, "baseline")]
            record_property("result", f"poisoned after {attempts} kills; {rewinder.last_recovery}")
    finally:
        if account != "root":
            with admin.connect() as conn:
                for host in ("%", "localhost"):
                    conn.execute(text(f"DROP USER IF EXISTS '{user}'@'{host}'"))
        admin.dispose()
