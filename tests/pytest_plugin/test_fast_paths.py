"""The per-test fast paths keep every guarantee: what they skip is only what cannot matter.

* The pools of dbrewind's engines look at a pooled connection's socket before
  they ping the server: a connection the server closed (killed, restarted) is
  still replaced, a healthy one is handed out without a round trip.
* On PostgreSQL (psycopg) the sandbox asks, in its rollback's own round trip,
  whether anything outside it left the database dirty (SQLite: on its own
  connection right after the rollback); the safety net then sends no check of
  its own. Writes that escaped the sandbox (another engine,
  a thread still running when the sandbox ended) are still found and rewound,
  on every backend.
* ``async_db_session`` on an event loop wider than the test (``loop_scope``
  session, module...) reuses one pooled connection for the loop's tests, and
  a connection the server closed between two of them is replaced.
"""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, text
from sqlalchemy.engine import URL

from conftest import SERVER_URLS
from dbrewind import Rewinder
from dbrewind._url import parse_url
from dbrewind.dialects.engines import _nothing_to_read, make_engine
from dbrewind.sandbox import Sandbox
from helpers.runs import pytest_args

SERVERS = ("postgresql", "mysql")


# ------------------------------------------------------------ the socket look


def test_the_socket_look_tells_an_idle_socket_from_a_closed_one() -> None:
    ours, theirs = socket.socketpair()
    try:
        assert _nothing_to_read(ours.fileno())  # open, nothing sent: healthy
        theirs.sendall(b"N")  # the server said something (a notice, its last error)
        assert not _nothing_to_read(ours.fileno())
        ours.recv(1)
        assert _nothing_to_read(ours.fileno())
        theirs.close()  # the server closed the connection
        assert not _nothing_to_read(ours.fileno())
    finally:
        ours.close()
    assert not _nothing_to_read(10_000)  # no such descriptor: ping for real


def _session_id(conn: object) -> int:
    sql = "SELECT pg_backend_pid()" if _backend(conn) == "postgresql" else "SELECT CONNECTION_ID()"
    return int(conn.exec_driver_sql(sql).scalar_one())  # type: ignore[attr-defined]


def _backend(conn: object) -> str:
    return str(conn.dialect.name)  # type: ignore[attr-defined]


def _kill(backend: str, session: int) -> None:
    admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": session})
            else:
                conn.exec_driver_sql(f"KILL {int(session)}")
    finally:
        admin.dispose()


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_a_connection_the_server_closed_is_replaced_without_a_failed_statement(
    backend: str, db_url: URL
) -> None:
    engine = make_engine(parse_url(db_url.render_as_string(hide_password=False)))
    try:
        with engine.connect() as conn:
            first = _session_id(conn)
            fd = _fd(backend, conn.connection.dbapi_connection)
        with engine.connect() as conn:  # healthy: the same connection, handed out again
            assert _session_id(conn) == first
        _kill(backend, first)
        deadline = time.monotonic() + 5
        while _nothing_to_read(fd) and time.monotonic() < deadline:
            time.sleep(0.01)  # the server's close reaches the socket
        with engine.connect() as conn:
            assert _session_id(conn) != first
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()


def _fd(backend: str, dbapi_connection: object) -> int:
    from dbrewind.dialects import get_dialect

    found = get_dialect(backend).driver_socket(dbapi_connection)  # type: ignore[arg-type]
    assert found is not None, "the driver's socket is known"
    return found


# ------------------------------------------------------- the sandbox's receipt

ITEMS = MetaData()
items = Table(
    "items",
    ITEMS,
    Column("id", Integer, primary_key=True),
    Column("name", String(40), nullable=False),
)


def test_the_sandbox_sees_whether_anything_escaped_it(backend: str, db_url: URL) -> None:
    engine = create_engine(db_url)
    other = create_engine(db_url)  # not routed into the sandbox: its commits escape
    rewinder = Rewinder(db_url)
    try:
        ITEMS.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(items), [{"name": "seed"}])
        rewinder.prepare()
        checks = rewinder.checks
        with Sandbox(engine, rewinder=rewinder) as sandbox, engine.begin() as conn:
            conn.execute(insert(items), [{"name": "inside"}])
        assert sandbox.leaked is None
        # PostgreSQL with psycopg asks in the rollback's round trip, SQLite right after it
        # on the sandbox's connection; on MySQL/MariaDB the rewind's own check asks
        assert sandbox.escaped_nothing is (backend != "mysql")
        assert rewinder.checks == checks + 1

        with Sandbox(engine, rewinder=rewinder) as sandbox, other.begin() as conn:
            conn.execute(insert(items), [{"name": "escaped"}])
        assert not sandbox.escaped_nothing
        assert sandbox.leaked is not None
        assert [t.rsplit(".", 1)[-1] for t in sandbox.leaked.tables] == ["items"]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM items")).scalars().all() == ["seed"]
    finally:
        rewinder.close()
        other.dispose()
        engine.dispose()


ESCAPES = """
import threading
import time

import pytest
from sqlalchemy import create_engine, func, insert, select, text

from schema import items

OTHER = None


def other_engine(db_url):
    global OTHER
    if OTHER is None:
        OTHER = create_engine(db_url)  # the application's, not routed into the sandbox
    return OTHER


def _names(conn):
    return conn.execute(select(items.c.name).order_by(items.c.id)).scalars().all()


def test_a_commits_through_an_engine_outside_the_sandbox(db_session, db_url):
    # escaped first: on SQLite the sandbox's write would hold the one write lock
    with other_engine(db_url).begin() as conn:
        conn.execute(insert(items).values(name="escaped"))
    db_session.execute(insert(items).values(name="sandboxed"))


def test_b_starts_from_the_baseline(db_session):
    assert _names(db_session) == ["seed"]


def test_c_leaves_a_thread_that_writes_after_the_sandbox_ended(db, db_url):
    engine = other_engine(db_url)

    def late_write():
        time.sleep(0.2)
        with engine.begin() as conn:
            conn.execute(insert(items).values(name="late"))

    threading.Thread(target=late_write, name="late-writer").start()


def test_d_starts_from_the_baseline(db_session):
    assert _names(db_session) == ["seed"]


def test_e_reads_only(db_session):
    assert db_session.scalar(select(func.count()).select_from(items)) == 1
"""

ESCAPES_SCHEMA = """
import sqlalchemy as sa

metadata = sa.MetaData()
items = sa.Table(
    "items", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40), nullable=False),
)


def setup(conn):
    metadata.create_all(conn)
    conn.execute(items.insert(), [{"name": "seed"}])
"""


def test_escaped_writes_are_still_rewound_run_after_run(
    pytester: pytest.Pytester, backend: str, suite_url: URL
) -> None:
    pytester.makepyfile(schema=ESCAPES_SCHEMA, test_escapes=ESCAPES)
    pytester.makeini("[pytest]\ndbrewind_setup = schema:setup\n")
    for _ in range(2):  # and on the second run, on the same database
        result = pytester.runpytest_subprocess(*pytest_args(suite_url, "-W", "default"))
        result.assert_outcomes(passed=5)
        out = result.stdout.str()
        assert "test_a_commits_through_an_engine_outside_the_sandbox committed writes to" in out
        assert "test_c_leaves_a_thread_that_writes_after_the_sandbox_ended committed" in out
    engine = create_engine(suite_url)
    try:
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM items")).scalars().all()
    finally:
        engine.dispose()
    assert names == ["seed"]


# --------------------------------------------------- async sessions on a wide loop

ASYNC_TESTS = """
import pytest
from sqlalchemy import create_engine, text

import shared


async def _session_id(session):
    if session.bind.dialect.name == "postgresql":
        sql = "SELECT pg_backend_pid()"
    else:
        sql = "SELECT CONNECTION_ID()"
    return (await session.execute(text(sql))).scalar_one()


@pytest.mark.asyncio(loop_scope="session")
async def test_1_first(async_db_session):
    shared.SEEN.append(await _session_id(async_db_session))
    await async_db_session.execute(text("INSERT INTO items (name) VALUES ('one')"))
    await async_db_session.commit()


@pytest.mark.asyncio(loop_scope="session")
async def test_2_same_connection(async_db_session):
    shared.SEEN.append(await _session_id(async_db_session))
    assert shared.SEEN[0] == shared.SEEN[1], "the loop's tests share its connection"
    names = (await async_db_session.execute(text("SELECT name FROM items"))).scalars().all()
    assert names == ["seed"]


def test_3_the_server_closes_it():
    shared.kill(shared.SEEN[-1])


@pytest.mark.asyncio(loop_scope="session")
async def test_4_a_new_connection(async_db_session):
    shared.SEEN.append(await _session_id(async_db_session))
    assert shared.SEEN[-1] != shared.SEEN[0]
    names = (await async_db_session.execute(text("SELECT name FROM items"))).scalars().all()
    assert names == ["seed"]


@pytest.mark.asyncio
async def test_5_function_loop(async_db_session):
    names = (await async_db_session.execute(text("SELECT name FROM items"))).scalars().all()
    assert names == ["seed"]
"""

SHARED = """
import os

from sqlalchemy import create_engine, text

SEEN = []


def kill(session):
    admin = create_engine(os.environ["ADMIN_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": session})
        else:
            conn.exec_driver_sql(f"KILL {int(session)}")
    admin.dispose()
"""


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_async_tests_on_a_session_loop_share_one_connection_and_survive_its_loss(
    pytester: pytest.Pytester, backend: str, suite_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        schema=ESCAPES_SCHEMA,
        shared=SHARED,
        test_async=ASYNC_TESTS,
    )
    pytester.makeini("[pytest]\ndbrewind_setup = schema:setup\nasyncio_mode = strict\n")
    monkeypatch.setenv("ADMIN_URL", SERVER_URLS[backend])
    for _ in range(2):
        result = pytester.runpytest_subprocess(*pytest_args(suite_url))
        result.assert_outcomes(passed=5)
        assert "Event loop is closed" not in result.stdout.str() + result.stderr.str()
