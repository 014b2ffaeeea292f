"""The sync rollback sandbox against real SQLite, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from dbrewind import Rewinder, RewindResult
from dbrewind.exceptions import SandboxBrokenError, SandboxError
from dbrewind.sandbox import Sandbox

metadata = MetaData()
# reserved words, mixed case and spaces: every identifier the sandbox touches must be quoted
user = Table(
    "user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("Name", String(60), unique=True, nullable=False),
)
order = Table(
    "order",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("user id", Integer, ForeignKey("user.id"), nullable=False),
)


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __table__ = user


def create_schema(conn: Connection) -> None:
    metadata.create_all(conn)


@pytest.fixture
def app_engine(db_url: URL) -> Iterator[Engine]:
    """The application's engine, with its schema; nothing else touches it."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        create_schema(conn)
    try:
        yield engine
    finally:
        engine.dispose()


def committed_users(db_url: URL) -> int:
    """Users committed to the database, seen from a brand-new connection."""
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(user)).scalar_one()
    finally:
        engine.dispose()


def count(conn: Connection | Session) -> int:
    return conn.execute(select(func.count()).select_from(user)).scalar_one()


def add_user(conn: Connection, id_: int, name: str | None = None) -> None:
    conn.execute(insert(user).values(id=id_, Name=name or f"user {id_}"))


def run_in(sandbox: Sandbox, body: Callable[[], object]) -> None:
    """Run a test body inside the sandbox (as a fixture would)."""
    with sandbox:
        body()


# ----------------------------------------------------------------- basics
def test_writes_through_the_apps_engine_are_visible_inside_and_rolled_back_after(
    app_engine: Engine, db_url: URL
) -> None:
    original_pool = app_engine.pool
    with Sandbox(app_engine) as sb:
        with app_engine.begin() as conn:  # application code, unchanged
            add_user(conn, 1)
        with Session(app_engine) as session:
            session.execute(insert(user).values(id=2, Name="two"))
            session.commit()
        assert count(sb.connection) == 2
        assert committed_users(db_url) == 0  # nothing reached the database for real
    assert app_engine.pool is original_pool
    assert committed_users(db_url) == 0
    with app_engine.connect() as conn:
        assert count(conn) == 0


def test_a_test_that_raises_is_rolled_back_and_the_engine_restored(
    app_engine: Engine, db_url: URL
) -> None:
    original_pool = app_engine.pool
    sb = Sandbox(app_engine)

    def body() -> None:
        with app_engine.begin() as conn:
            add_user(conn, 1)
        _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        run_in(sb, body)
    assert not sb.active
    assert app_engine.pool is original_pool
    assert original_pool.checkedout() == 0  # type: ignore[attr-defined]
    assert committed_users(db_url) == 0


def test_start_and_stop_work_without_the_with_statement(app_engine: Engine, db_url: URL) -> None:
    sb = Sandbox(app_engine).start()
    try:
        add_user(sb.connection, 1)
        sb.connection.commit()
        assert count(sb.connection) == 1
    finally:
        sb.stop()
    assert committed_users(db_url) == 0
    with pytest.raises(SandboxError, match="only available while the sandbox is active"):
        _ = sb.connection


def test_other_engines_are_not_sandboxed(app_engine: Engine, db_url: URL) -> None:
    other = create_engine(db_url, poolclass=NullPool)
    try:
        with Sandbox(app_engine) as sb:
            add_user(sb.connection, 1)
            with other.connect() as conn:
                assert count(conn) == 0  # the sandbox's uncommitted row is invisible
    finally:
        other.dispose()


def test_a_connection_kept_after_the_sandbox_ended_refuses_to_run(app_engine: Engine) -> None:
    with Sandbox(app_engine):
        leftover = app_engine.connect()
        count(leftover)
    with pytest.raises(StatementError, match="used after its sandbox ended") as info:
        count(leftover)
    assert isinstance(info.value.orig, SandboxError)
    leftover.close()


def test_a_second_sandbox_on_an_active_engine_is_refused(app_engine: Engine) -> None:
    with Sandbox(app_engine), pytest.raises(SandboxError, match="already inside an active"):
        Sandbox(app_engine).start()


# --------------------------------------------------------- database errors
def test_integrity_error_on_the_tests_connection_then_more_queries(
    app_engine: Engine, db_url: URL
) -> None:
    with Sandbox(app_engine) as sb:
        with app_engine.begin() as conn:
            add_user(conn, 1, "ada")
        with pytest.raises(IntegrityError):
            add_user(sb.connection, 2, "ada")  # autobegun, no transaction of its own
        assert count(sb.connection) == 1  # the committed row survived
        add_user(sb.connection, 3, "grace")
        assert count(sb.connection) == 2
    assert committed_users(db_url) == 0


def test_integrity_error_in_an_app_session_then_the_app_goes_on(app_engine: Engine) -> None:
    make_session = sessionmaker(app_engine)
    with Sandbox(app_engine) as sb:
        with make_session() as session:
            session.execute(insert(user).values(id=1, Name="ada"))
            session.commit()
            with pytest.raises(IntegrityError):
                session.execute(insert(user).values(id=2, Name="ada"))
            session.rollback()
            session.add_all([User(id=4, Name="ada")])
            with pytest.raises(IntegrityError):
                session.commit()  # the flush fails
            session.rollback()
            session.execute(insert(user).values(id=3, Name="grace"))
            session.commit()
        assert sorted(sb.connection.execute(select(user.c.id)).scalars()) == [1, 3]


def test_a_failed_statement_inside_begin_nested_keeps_the_outer_work(app_engine: Engine) -> None:
    with Sandbox(app_engine) as sb:
        conn = sb.connection
        add_user(conn, 1, "ada")
        with pytest.raises(IntegrityError), conn.begin_nested():
            add_user(conn, 2, "ada")
        assert count(conn) == 1
        conn.commit()
        assert count(conn) == 1


def test_rollback_of_a_reader_keeps_what_another_connection_committed(app_engine: Engine) -> None:
    with Sandbox(app_engine) as sb:
        assert count(sb.connection) == 0  # the test's connection is now in a transaction
        with app_engine.begin() as conn:
            add_user(conn, 1)
        sb.connection.rollback()
        assert count(sb.connection) == 1
        with pytest.raises(IntegrityError):  # and an error on it does not undo that row either
            add_user(sb.connection, 1)
        assert count(sb.connection) == 1


def test_rollback_undoes_the_connections_own_writes(app_engine: Engine) -> None:
    with Sandbox(app_engine) as sb:
        with app_engine.begin() as conn:
            add_user(conn, 1)
        with app_engine.connect() as conn:
            add_user(conn, 2)
            conn.rollback()
            add_user(conn, 3)
            conn.commit()
        assert sorted(sb.connection.execute(select(user.c.id)).scalars()) == [1, 3]


# ------------------------------------------------------------ transactions
def test_begin_nested_three_deep_with_an_inner_rollback(app_engine: Engine, db_url: URL) -> None:
    with Sandbox(app_engine) as sb:
        with Session(app_engine) as session:
            session.execute(insert(user).values(id=1, Name="level 0"))
            with session.begin_nested():
                session.execute(insert(user).values(id=2, Name="level 1"))
                with session.begin_nested():
                    session.execute(insert(user).values(id=3, Name="level 2"))
                    inner = session.begin_nested()
                    session.execute(insert(user).values(id=4, Name="level 3"))
                    inner.rollback()
                    session.execute(insert(user).values(id=5, Name="level 2 again"))
            session.commit()
        assert sorted(sb.connection.execute(select(user.c.id)).scalars()) == [1, 2, 3, 5]
    assert committed_users(db_url) == 0


def test_apps_own_sessionmaker_is_sandboxed_without_changes(
    app_engine: Engine, db_url: URL
) -> None:
    app_sessions = sessionmaker(bind=app_engine, expire_on_commit=False)  # made before the test

    def create_order(user_id: int, order_id: int) -> None:  # application code
        with app_sessions.begin() as session:
            session.execute(insert(user).values(id=user_id, Name=f"customer {user_id}"))
            session.execute(insert(order).values({"id": order_id, "user id": user_id}))

    with Sandbox(app_engine) as sb:
        create_order(1, 10)
        create_order(2, 20)
        session = sb.session()
        assert session.execute(select(func.count()).select_from(order)).scalar_one() == 2
    assert committed_users(db_url) == 0


def test_textual_begin_commit_and_rollback_become_savepoints(app_engine: Engine) -> None:
    with Sandbox(app_engine) as sb, app_engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO {} VALUES (1, 'one')".format(quoted(conn, "user")))
        cursor.execute("COMMIT")
        cursor.execute("INSERT INTO {} VALUES (2, 'two')".format(quoted(conn, "user")))
        cursor.execute("ROLLBACK")
        cursor.close()
        assert sorted(sb.connection.execute(select(user.c.id)).scalars()) == [1]


def test_autocommit_isolation_on_the_engine_is_still_sandboxed(backend: str, db_url: URL) -> None:
    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.begin() as conn:
            create_schema(conn)
        with Sandbox(engine) as sb:
            with engine.connect() as conn:
                add_user(conn, 1)
            assert count(sb.connection) == 1
        assert committed_users(db_url) == 0
    finally:
        engine.dispose()


def test_autocommit_execution_option_runs_inside_the_sandbox(
    app_engine: Engine, db_url: URL
) -> None:
    with Sandbox(app_engine) as sb:
        with app_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            add_user(conn, 1)
        assert count(sb.connection) == 1
    assert committed_users(db_url) == 0
    with app_engine.connect() as conn:  # the setting did not stick to the real connection
        add_user(conn, 5)
        conn.rollback()
    assert committed_users(db_url) == 0


def quoted(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


# ------------------------------------------------------------- concurrency
def test_a_live_server_thread_writes_through_the_apps_engine(
    app_engine: Engine, db_url: URL
) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # application code: its own connections from the engine
            user_id = int(self.path.strip("/"))
            with app_engine.begin() as conn:
                add_user(conn, user_id)
                total = count(conn)
            body = json.dumps({"total": total}).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)

    def post(user_id: int) -> int:
        url = f"http://127.0.0.1:{server.server_port}/{user_id}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST")) as response:
            status: int = response.status
            return status

    try:
        with Sandbox(app_engine) as sb:
            thread.start()
            assert count(sb.connection) == 0  # the test holds an open transaction meanwhile
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(post, range(1, 41)))
            assert statuses == [201] * 40
            assert count(sb.connection) == 40
    finally:
        server.shutdown()
        server.server_close()
    assert committed_users(db_url) == 0


def test_threads_sharing_the_engine_take_turns(app_engine: Engine) -> None:
    def work(i: int) -> int:
        with Session(app_engine) as session:
            session.execute(insert(user).values(id=i, Name=f"n{i}"))
            session.commit()
            with pytest.raises(IntegrityError):  # errors in threads are recovered from too
                session.execute(insert(user).values(id=1000 + i, Name=f"n{i}"))
            session.rollback()
            return count(session)

    with Sandbox(app_engine) as sb:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(work, range(60)))
        assert count(sb.connection) == 60


# ----------------------------------------------------------------- the end
@pytest.mark.backends("postgresql")
def test_a_deferred_constraint_violation_fails_at_the_end(backend: str, db_url: URL) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    'CREATE TABLE "Parent" (id int PRIMARY KEY);'
                    'CREATE TABLE "child" (id int PRIMARY KEY, parent int REFERENCES "Parent"(id)'
                    " DEFERRABLE INITIALLY DEFERRED)"
                )
            )

        def body() -> None:
            with engine.begin() as conn:
                conn.execute(text('INSERT INTO "child" VALUES (1, 99)'))  # accepted for now

        with pytest.raises(SandboxError, match="deferred constraint") as info:
            run_in(Sandbox(engine), body)
        assert "child" in str(info.value)
        with engine.connect() as conn:  # rolled back all the same
            assert conn.execute(text('SELECT count(*) FROM "child"')).scalar_one() == 0
        with Sandbox(engine), engine.begin() as conn:  # a valid deferred row is fine
            conn.execute(text('INSERT INTO "child" VALUES (1, 1)'))
            conn.execute(text('INSERT INTO "Parent" VALUES (1)'))
    finally:
        engine.dispose()


@pytest.mark.backends("mysql")
@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE `made in test` (id int)",
        "TRUNCATE TABLE `order`",
        "LOCK TABLES `user` WRITE",
    ],
)
def test_a_mysql_implicit_commit_breaks_the_sandbox_loudly(
    backend: str, app_engine: Engine, db_url: URL, statement: str
) -> None:
    original_pool = app_engine.pool

    def body() -> None:
        with app_engine.begin() as conn:
            add_user(conn, 1)
        with app_engine.connect() as conn:
            conn.execute(text(statement))

    with pytest.raises(SandboxBrokenError, match="clean strategy") as info:
        run_in(Sandbox(app_engine), body)
    assert statement.split()[0] in str(info.value)
    assert app_engine.pool is original_pool
    assert original_pool.checkedout() == 0  # type: ignore[attr-defined]
    with app_engine.connect() as conn:
        conn.execute(text("UNLOCK TABLES"))


@pytest.mark.backends("mysql")
def test_a_swallowed_implicit_commit_still_fails_the_test_at_the_end(
    backend: str, app_engine: Engine
) -> None:

    def body() -> None:
        with app_engine.connect() as conn, contextlib.suppress(SandboxBrokenError):
            conn.execute(text("CREATE TABLE `t2` (id int)"))  # code that swallows errors

    with pytest.raises(SandboxBrokenError, match="earlier refused to run"):
        run_in(Sandbox(app_engine), body)


@pytest.mark.backends("mysql")
@pytest.mark.parametrize("then", ["more work", "nothing"])
def test_a_procedure_that_commits_inside_breaks_the_sandbox(
    backend: str, app_engine: Engine, db_url: URL, then: str
) -> None:
    """A CALL whose procedure runs DDL commits implicitly, unrefused (its words say
    nothing); with more work after the DDL a new transaction is open when it returns,
    so the driver's status cannot show it: the savepoint around the CALL does. A
    procedure that commits nothing is rolled back with the sandbox, as any statement."""
    more = "INSERT INTO `user` (id, Name) VALUES (2, 'after'); " if then == "more work" else ""
    with app_engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE PROCEDURE `commits_inside`() BEGIN "
            f"CREATE TABLE IF NOT EXISTS `made by call` (id int); {more}END"
        )
        conn.exec_driver_sql(
            "CREATE PROCEDURE `adds_user`() INSERT INTO `user` (id, Name) VALUES (3, 'called')"
        )
    try:
        with Sandbox(app_engine), app_engine.begin() as conn:
            conn.exec_driver_sql("CALL `adds_user`()")
            assert count(conn) == 1
        assert committed_users(db_url) == 0

        def body() -> None:
            with app_engine.begin() as conn:
                add_user(conn, 1)
                conn.exec_driver_sql("CALL `commits_inside`()")

        with pytest.raises(SandboxBrokenError, match="commits_inside"):
            run_in(Sandbox(app_engine), body)
        assert committed_users(db_url) == 1  # user 1, committed by the CALL's DDL
    finally:
        with app_engine.begin() as conn:
            conn.exec_driver_sql("DROP PROCEDURE `commits_inside`")
            conn.exec_driver_sql("DROP PROCEDURE `adds_user`")
            conn.exec_driver_sql("DROP TABLE IF EXISTS `made by call`")


def test_one_sandbox_pool_serves_each_sandbox_of_an_engine_in_turn(app_engine: Engine) -> None:
    """Made once per engine's pool (they are costly), made again when listeners were
    added to the pool's events since, so that every sandbox sees them."""
    with Sandbox(app_engine):
        first = app_engine.pool
    with Sandbox(app_engine):
        assert app_engine.pool is first
    seen: list[object] = []
    event.listen(app_engine, "checkout", lambda *args: seen.append(args[0]))
    with Sandbox(app_engine), app_engine.connect() as conn:
        assert app_engine.pool is not first
        add_user(conn, 1)
    assert seen, "the listener added later saw the sandbox's checkout"
    assert committed_users_of(app_engine) == 0


def committed_users_of(engine: Engine) -> int:
    with engine.connect() as conn:
        return count(conn)


def test_keyboard_interrupt_rolls_back_and_returns_the_connection(
    app_engine: Engine, db_url: URL
) -> None:
    original_pool = app_engine.pool

    def body() -> None:
        conn = app_engine.connect()  # left open by the interrupted test
        add_user(conn, 1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in(Sandbox(app_engine), body)
    assert app_engine.pool is original_pool
    assert original_pool.checkedout() == 0  # type: ignore[attr-defined]
    assert committed_users(db_url) == 0


# ----------------------------------------------------------------- SQLite
@pytest.mark.backends("sqlite")
def test_sqlite_savepoints_really_nest_and_ddl_rolls_back(backend: str, app_engine: Engine) -> None:
    with Sandbox(app_engine) as sb:
        conn = sb.connection
        add_user(conn, 1)
        outer = conn.begin_nested()
        add_user(conn, 2)
        inner = conn.begin_nested()
        add_user(conn, 3)
        inner.rollback()
        outer.commit()
        conn.execute(text('CREATE TABLE "made here" (id int)'))
        assert sorted(conn.execute(select(user.c.id)).scalars()) == [1, 2]
    with app_engine.connect() as conn:
        assert count(conn) == 0
        tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        assert "made here" not in set(tables.scalars())


@pytest.mark.parametrize("pool", ["static", "default"])
def test_in_memory_sqlite_works_with_one_shared_connection(pool: str) -> None:
    options: dict[str, Any] = {}
    if pool == "static":
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine("sqlite://", **options)
    try:
        with engine.begin() as conn:
            create_schema(conn)
        for _ in range(2):  # a second test sees the schema and no rows
            with Sandbox(engine) as sb:
                with Session(engine) as session:
                    session.execute(insert(user).values(id=1, Name="ada"))
                    session.commit()
                assert count(sb.connection) == 1
        with engine.connect() as conn:
            assert count(conn) == 0
    finally:
        engine.dispose()


# -------------------------------------------------------------- safety net
@pytest.fixture
def rewinder(db_url: URL) -> Iterator[Rewinder]:
    rw = Rewinder(db_url)
    rw.prepare(create_schema)
    try:
        yield rw
    finally:
        rw.close()


def test_an_escaped_write_is_caught_and_rewound_by_the_safety_net(
    rewinder: Rewinder, db_url: URL, tmp_path: Path
) -> None:
    app_engine = create_engine(db_url)
    other = create_engine(db_url, poolclass=NullPool)  # e.g. a worker with its own engine
    seen: list[RewindResult] = []
    try:
        sb = Sandbox(app_engine, rewinder=rewinder, on_leak=seen.append)
        with sb:
            with other.begin() as conn:
                add_user(conn, 2)  # escaped: committed for real
            add_user(sb.connection, 1)  # inside: rolled back with its tracking mark
        assert sb.leaked is not None
        assert seen == [sb.leaked]
        assert any(key.endswith("user") for key in sb.leaked.tables)
        assert committed_users(db_url) == 0

        clean = Sandbox(app_engine, rewinder=rewinder, on_leak=seen.append)
        with clean:
            add_user(clean.connection, 1)
        assert clean.leaked is None
        assert len(seen) == 1
    finally:
        app_engine.dispose()
        other.dispose()


@pytest.mark.backends("postgresql")
def test_sequences_a_sandboxed_test_advanced_are_back_for_the_next_test(
    backend: str, db_url: URL
) -> None:
    rewinder = Rewinder(db_url)
    rewinder.prepare(
        lambda c: c.execute(text("CREATE TABLE seq_items (id serial PRIMARY KEY, name text)"))
    )
    engine = create_engine(db_url)
    try:
        ids = []
        for _ in range(2):
            with Sandbox(engine, rewinder=rewinder), engine.begin() as conn:
                ids.append(
                    conn.execute(
                        text("INSERT INTO seq_items (name) VALUES ('a'), ('b') RETURNING id")
                    )
                    .scalars()
                    .all()
                )
        assert ids == [[1, 2], [1, 2]]
    finally:
        engine.dispose()
        rewinder.close()


def test_an_orm_flush_deleting_several_rows_gets_the_drivers_row_count(
    app_engine: Engine,
) -> None:
    # The ORM checks how many rows a multi-row DELETE matched; on MySQL that count
    # is what the driver's executemany() returns, so the sandbox must pass it on.
    with Sandbox(app_engine) as sb:
        session = sb.session()
        session.add_all([User(id=i, Name=f"user {i}") for i in range(3)])
        session.commit()
        for user_row in session.scalars(select(User)).all()[:2]:
            session.delete(user_row)
        session.commit()
        assert session.scalar(select(func.count()).select_from(User)) == 1
