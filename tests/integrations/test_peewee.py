"""dbrewind.peewee.TransactionTestCase on real SQLite, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import contextlib
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from sqlalchemy.engine import URL

from conftest import drop_database, make_database, require_backend
from dbrewind import Rewinder, RewindResult, SafetyNetWarning, SandboxError
from dbrewind.peewee import (
    SavepointRouter,
    TransactionTestCase,
    close_rewinders,
    database_url,
)
from dbrewind.provision import Target, acquire


class Author(peewee.Model):
    name = peewee.CharField(max_length=50, unique=True)


class Order(peewee.Model):
    """A model whose table is a reserved word, to exercise quoting."""

    author = peewee.ForeignKeyField(Author, backref="orders", null=True)
    note = peewee.CharField(max_length=50, default="")

    class Meta:
        table_name = "order"


MODELS = [Author, Order]


def peewee_database(url: URL, **options: Any) -> peewee.Database:
    """A peewee database object for a (sync-driver) SQLAlchemy URL."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return peewee.SqliteDatabase(url.database, **options)
    params = {"host": url.host, "port": url.port, "user": url.username}
    if url.password:
        params["password"] = url.password
    if backend == "postgresql":
        return peewee.PostgresqlDatabase(url.database, **params, **options)
    return peewee.MySQLDatabase(url.database, **params, **options)


@pytest.fixture
def database(db_url: URL) -> Iterator[peewee.Database]:
    """A peewee database on a fresh test database, with the two tables created."""
    db = peewee_database(db_url)
    db.bind(MODELS)
    with db.connection_context():
        db.create_tables(MODELS)
    try:
        yield db
    finally:
        close_rewinders()
        if not db.is_closed():
            db.close()


def count(model: type[peewee.Model]) -> int:
    return int(model.select().count())


def committed_count(db: peewee.Database, table: str) -> int:
    """Rows committed in ``table``, seen from a connection of a new thread."""
    found: list[int] = []

    def look() -> None:
        with db.connection_context():
            found.append(db.execute_sql(f"SELECT COUNT(*) FROM {quote(db, table)}").fetchone()[0])

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return found[0]


def quote(db: peewee.Database, name: str) -> str:
    return name.join(db.quote)


def names(tables: tuple[str, ...]) -> list[str]:
    """Table keys without the PostgreSQL schema."""
    return [key.rsplit(".", 1)[-1] for key in tables]


def create_then_fail(block: Any, name: str) -> None:
    """Create an author inside ``block()`` (a transaction context), then raise."""
    with block():
        Author.create(name=name)
        raise RuntimeError(f"undo {name}")


# ------------------------------------------------------------------ rollback
def test_writes_inside_the_block_are_rolled_back(database: peewee.Database) -> None:
    with TransactionTestCase(database) as case:
        Author.create(name="ada")
        Order.create(author=Author.get(name="ada"), note="first")
        assert count(Author) == 1
        assert count(Order) == 1
    assert case.leaked is None
    assert count(Author) == 0
    assert count(Order) == 0
    assert committed_count(database, "author") == 0


def test_the_next_block_sees_a_clean_table(database: peewee.Database) -> None:
    for round_ in range(3):
        with TransactionTestCase(database):
            assert count(Author) == 0, f"round {round_} saw rows of an earlier round"
            Author.create(name="ada")


def test_atomic_nested_three_deep_inner_failure_rolls_back_only_its_savepoint(
    database: peewee.Database,
) -> None:
    with TransactionTestCase(database):
        with database.atomic():
            Author.create(name="level1")
            with database.atomic():
                Author.create(name="level2")
                with pytest.raises(RuntimeError):
                    create_then_fail(database.atomic, "level3")
                assert sorted(a.name for a in Author.select()) == ["level1", "level2"]
            with pytest.raises(RuntimeError):
                create_then_fail(database.atomic, "level2b")
        assert sorted(a.name for a in Author.select()) == ["level1", "level2"]
    assert count(Author) == 0


def test_nested_transaction_blocks_become_savepoints(database: peewee.Database) -> None:
    with TransactionTestCase(database):
        with database.transaction():
            Author.create(name="outer")
            with pytest.raises(RuntimeError):
                create_then_fail(database.transaction, "inner")
            assert [a.name for a in Author.select()] == ["outer"]
        with database.transaction() as txn:
            Author.create(name="rolled back")
            txn.rollback()
            Author.create(name="kept")
        assert sorted(a.name for a in Author.select()) == ["kept", "outer"]
    assert count(Author) == 0


def test_manual_begin_commit_rollback_map_to_savepoints(database: peewee.Database) -> None:
    with TransactionTestCase(database):
        database.begin()
        Author.create(name="committed")
        database.commit()
        database.begin()
        Author.create(name="rolled back")
        database.rollback()
        assert [a.name for a in Author.select()] == ["committed"]
    assert count(Author) == 0


def test_raw_begin_commit_rollback_sql_is_mapped_to_savepoints(
    database: peewee.Database,
) -> None:
    with TransactionTestCase(database):
        database.execute_sql("BEGIN")
        Author.create(name="kept")
        database.execute_sql("COMMIT")
        database.execute_sql("  -- a comment first\n begin")
        Author.create(name="dropped")
        database.execute_sql("ROLLBACK;")
        database.execute_sql("COMMIT")  # nothing open: a no-op, as in autocommit mode
        assert [a.name for a in Author.select()] == ["kept"]
    assert count(Author) == 0
    assert committed_count(database, "author") == 0


def test_integrity_error_does_not_poison_the_test(database: peewee.Database) -> None:
    with TransactionTestCase(database):
        Author.create(name="ada")
        with pytest.raises(peewee.IntegrityError):
            Author.create(name="ada")
        Author.create(name="grace")
        assert sorted(a.name for a in Author.select()) == ["ada", "grace"]
    assert count(Author) == 0


def test_integrity_error_caught_inside_atomic_keeps_the_block_usable(
    database: peewee.Database,
) -> None:
    with TransactionTestCase(database):
        with database.atomic():
            Author.create(name="ada")
            with contextlib.suppress(peewee.IntegrityError):
                Author.create(name="ada")
            Author.create(name="grace")
        assert count(Author) == 2


def test_an_exception_in_the_block_still_rolls_back_and_reverts_patches(
    database: peewee.Database,
) -> None:
    def body() -> None:
        with TransactionTestCase(database), database.atomic():
            Author.create(name="ada")
            raise KeyError("boom")

    with pytest.raises(KeyError):
        body()
    assert "execute_sql" not in vars(database)
    assert "transaction" not in vars(database)
    assert count(Author) == 0
    with database.atomic():  # real transactions work again
        Author.create(name="real")
    assert committed_count(database, "author") == 1
    Author.delete().execute()


def test_works_as_a_decorator(database: peewee.Database) -> None:
    @TransactionTestCase(database)
    def body() -> int:
        Author.create(name="ada")
        return count(Author)

    assert body() == 1
    assert body() == 1
    assert count(Author) == 0


def test_entering_twice_at_once_is_refused(database: peewee.Database) -> None:
    case = TransactionTestCase(database)
    with case, pytest.raises(SandboxError, match="already active"):
        case.__enter__()


def test_entering_inside_an_open_transaction_is_refused(database: peewee.Database) -> None:
    with database.atomic(), pytest.raises(SandboxError, match="transaction open"):
        TransactionTestCase(database).__enter__()


def test_closing_the_database_inside_the_block_keeps_the_sandbox(
    database: peewee.Database,
) -> None:
    with TransactionTestCase(database):
        Author.create(name="ada")
        with database.connection_context():
            Author.create(name="grace")
        database.close()
        assert count(Author) == 2
    assert count(Author) == 0


def test_a_shared_connection_serialises_threads_and_rolls_back_their_writes(
    db_url: URL,
) -> None:
    options: dict[str, Any] = {"thread_safe": False}
    if db_url.get_backend_name() == "sqlite":
        options["check_same_thread"] = False
    db = peewee_database(db_url, **options)
    db.bind(MODELS)
    db.create_tables(MODELS)
    try:
        with TransactionTestCase(db, safety_net=False):
            threads = [
                threading.Thread(target=Author.create, kwargs={"name": f"t{i}"}) for i in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert count(Author) == 8
        assert count(Author) == 0
    finally:
        db.close()


# ----------------------------------------------------------------- safety net
def test_a_write_from_another_thread_is_rewound_and_reported(
    database: peewee.Database,
) -> None:
    reports: list[RewindResult] = []
    with TransactionTestCase(database, on_leak=reports.append) as case:
        # The escape comes first: on SQLite a writer waits for the sandbox's write lock.
        def escape() -> None:
            with database.connection_context():
                Order.create(note="escaped")

        thread = threading.Thread(target=escape)
        thread.start()
        thread.join()
        Author.create(name="inside")
        assert count(Order) == 1  # committed for real: visible inside too
    assert case.leaked is not None
    assert names(case.leaked.tables) == ["order"]
    assert reports == [case.leaked]
    assert committed_count(database, "order") == 0
    assert committed_count(database, "author") == 0
    with TransactionTestCase(database) as again:
        assert count(Order) == 0
    assert again.leaked is None


def test_a_database_the_lifecycle_holds_is_shared_with_its_baseline(
    database: peewee.Database,
) -> None:
    # as when the pytest plugin (or an earlier sandbox) took the database up first
    held = acquire(Target(url=database_url(database)))
    try:
        with database.connection_context():
            Author.create(name="committed before the block")
        with TransactionTestCase(database) as case:
            pass
        # Taking it up again would have made the committed row part of the baseline.
        assert case.rewinder is held.rewinder
        assert case.leaked is not None
        assert names(case.leaked.tables) == ["author"]
        assert committed_count(database, "author") == 0
    finally:
        held.release()


def test_tracking_some_other_code_installed_is_checked_then_reinstalled(
    database: peewee.Database,
) -> None:
    with Rewinder(database_url(database)) as rewinder:
        rewinder.install()  # no lifecycle state: nothing says what it covers or who left it
        with database.connection_context():
            Author.create(name="there before the first block")
        with TransactionTestCase(database) as case:
            Author.create(name="rolled back")
        assert case.leaked is None
        assert committed_count(database, "author") == 1  # the baseline at first use


def test_an_explicit_rewinder_is_used_for_the_safety_net(database: peewee.Database) -> None:
    with Rewinder(database_url(database)) as rewinder:
        with TransactionTestCase(database, rewinder=rewinder) as case:

            def escape() -> None:
                with database.connection_context():
                    Author.create(name="escaped")

            thread = threading.Thread(target=escape)
            thread.start()
            thread.join()
        assert case.rewinder is rewinder
        assert case.leaked is not None
        assert names(case.leaked.tables) == ["author"]


def test_without_the_safety_net_nothing_is_installed_or_reported(
    database: peewee.Database,
) -> None:
    with TransactionTestCase(database, safety_net=False) as case:

        def escape() -> None:
            with database.connection_context():
                Author.create(name="escaped")

        thread = threading.Thread(target=escape)
        thread.start()
        thread.join()
    assert case.leaked is None
    assert committed_count(database, "author") == 1
    with Rewinder(database_url(database)) as rewinder, rewinder.connection() as conn:
        assert not rewinder.dialect.is_installed(conn)


def test_a_database_not_named_test_is_a_pure_rollback_sandbox_with_one_warning(
    backend: str, tmp_path: Path
) -> None:
    require_backend(backend)
    url = make_database(backend, tmp_path, name=f"dbrewind_{uuid.uuid4().hex[:8]}_app")
    db = peewee_database(url)
    try:
        db.bind(MODELS)
        db.create_tables(MODELS)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with TransactionTestCase(db) as case:
                Author.create(name="ada")
                assert count(Author) == 1
        given = [w for w in seen if issubclass(w.category, SafetyNetWarning)]
        assert len(given) == 1
        message = str(given[0].message)
        assert url.database is not None
        assert url.database in message
        assert "not provably a test database" in message
        assert "DBREWIND_ALLOW" in message
        assert case.rewinder is None
        assert count(Author) == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one warning per database, not per block
            with TransactionTestCase(db):
                Author.create(name="bo")
        assert count(Author) == 0
        with Rewinder(url) as rewinder, rewinder.connection() as conn:
            assert not rewinder.dialect.installation(conn).installed
    finally:
        close_rewinders()
        db.close()
        drop_database(backend, url)


def test_in_memory_sqlite_runs_without_a_safety_net() -> None:
    db = peewee.SqliteDatabase(":memory:")
    db.bind(MODELS)
    db.create_tables(MODELS)
    with TransactionTestCase(db) as case:
        Author.create(name="ada")
        assert count(Author) == 1
    assert case.rewinder is None
    assert count(Author) == 0
    db.close()


# ------------------------------------------------------------ refused commands
@pytest.mark.backends("mysql")
def test_mysql_ddl_inside_the_block_is_refused(database: peewee.Database) -> None:
    with TransactionTestCase(database):
        Author.create(name="ada")
        with pytest.raises(SandboxError, match="commits the open transaction"):
            Author.truncate_table()
        with pytest.raises(SandboxError, match="Create tables before"):
            database.execute_sql("CREATE TABLE t_late (id INT)")
        database.execute_sql("CREATE TEMPORARY TABLE t_temp (id INT)")
        assert count(Author) == 1
    assert committed_count(database, "author") == 0


@pytest.mark.backends("postgresql", "sqlite")
def test_ddl_inside_the_block_is_rolled_back_where_ddl_is_transactional(
    database: peewee.Database,
) -> None:
    class Late(peewee.Model):
        name = peewee.CharField()

    Late.bind(database)
    with TransactionTestCase(database, safety_net=False):
        database.create_tables([Late])
        Late.create(name="x")
        assert database.table_exists("late")
    assert not database.table_exists("late")


def test_two_phase_commit_is_refused(database: peewee.Database) -> None:
    with TransactionTestCase(database), pytest.raises(SandboxError, match="two-phase"):
        database.execute_sql("PREPARE TRANSACTION 'x'")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("BEGIN", "replace"),
        ("begin immediate", "replace"),
        ("START TRANSACTION READ ONLY", "replace"),
        ("/* c */ COMMIT WORK", "replace"),
        ("END", "replace"),
        ("ROLLBACK TO SAVEPOINT x", "control"),
        ("SAVEPOINT x", "control"),
        ("RELEASE x", "control"),
        ("SELECT 'BEGIN'", "run"),
        ("BEGIN NOT ATOMIC SELECT 1; END", "run"),
        ("", "run"),
    ],
)
def test_router_classifies_statements(sql: str, kind: str) -> None:
    router = SavepointRouter("postgresql", "db")
    router.route("BEGIN")  # so COMMIT/END have something to release
    assert router.route(sql).kind == kind


def test_router_pairs_commits_and_rollbacks_with_their_begin() -> None:
    router = SavepointRouter("mysql", "db")
    first = router.route("BEGIN").statements
    second = router.route("START TRANSACTION").statements
    assert first == ("SAVEPOINT `dbrewind_tx_1`",)
    assert second == ("SAVEPOINT `dbrewind_tx_2`",)
    assert router.route("ROLLBACK").statements == (
        "ROLLBACK TO SAVEPOINT `dbrewind_tx_2`",
        "RELEASE SAVEPOINT `dbrewind_tx_2`",
    )
    assert router.route("COMMIT AND CHAIN").statements == (
        "RELEASE SAVEPOINT `dbrewind_tx_1`",
        "SAVEPOINT `dbrewind_tx_3`",
    )
    assert router.route("COMMIT").statements == ("RELEASE SAVEPOINT `dbrewind_tx_3`",)
    assert router.route("COMMIT").statements == ()
