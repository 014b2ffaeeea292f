"""The one-read check after a test that wrote nothing, and what it must still see.

After checks that found nothing (the lifecycle then answers with one read: PostgreSQL's
receipt, MariaDB/MySQL's newest mark and DDL statement count, SQLite's schema version),
another session's committed rows, ``TRUNCATE``, created, dropped and altered tables are
each seen by the next check, on every backend, through the lifecycle's
``Database.after_test(check_schema=True)`` (what ``transactional_db`` and
``dbrewind.unittest.TransactionTestCase`` run) and ``Rewinder.rewind()``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.engine import URL, Connection, Engine

from dbrewind import parse_url
from dbrewind.exceptions import SchemaChangedError
from dbrewind.provision import Database, Target, acquire

metadata = MetaData()
item = Table(
    "item",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False),
)
other = Table("other", metadata, Column("id", Integer, primary_key=True))


def setup(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(insert(item), [{"name": "seed-1"}, {"name": "seed-2"}])


def run(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(item.c.name).order_by(item.c.id)).scalars())


def tables(engine: Engine) -> set[str]:
    from sqlalchemy import inspect

    return {t for t in inspect(engine).get_table_names() if not t.startswith("dbrewind")}


def bare(database: Database, keys: tuple[str, ...]) -> set[str]:
    """Table names without PostgreSQL's schema."""
    assert database.rewinder is not None
    return {database.rewinder.dialect.split_key(key)[1] for key in keys}


@pytest.fixture
def database(db_url: URL) -> Iterator[Database]:
    found = acquire(Target(url=parse_url(db_url), setups=(setup,), origin="test"))
    try:
        for _ in range(3):  # quiet: after the first, each check is one read
            assert found.after_test(check_schema=True).clean
        yield found
    finally:
        found.release()


def test_rows_another_session_commits_after_quiet_checks_are_rewound(
    backend: str, database: Database, engine: Engine
) -> None:
    run(engine, "INSERT INTO item (name) VALUES ('late')", "DELETE FROM other")
    assert "item" in bare(database, database.after_test(check_schema=True).tables)
    assert names(engine) == ["seed-1", "seed-2"]
    assert database.after_test(check_schema=True).clean


def test_a_truncate_after_quiet_checks_is_restored(
    backend: str, database: Database, engine: Engine
) -> None:
    run(engine, "DELETE FROM item" if backend == "sqlite" else "TRUNCATE TABLE item")
    database.after_test(check_schema=True)
    assert names(engine) == ["seed-1", "seed-2"]


def test_a_table_created_after_quiet_checks_is_dropped(
    backend: str, database: Database, engine: Engine
) -> None:
    run(engine, "CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
    result = database.after_test(check_schema=True)
    assert bare(database, result.created_tables) == {"scratch"}
    assert tables(engine) == {"item", "other"}
    assert database.after_test(check_schema=True).clean


@pytest.mark.parametrize(
    "statement",
    ["DROP TABLE other", "ALTER TABLE other ADD COLUMN extra INTEGER"],
    ids=["drop", "alter"],
)
def test_a_table_dropped_or_altered_after_quiet_checks_is_seen(
    backend: str, database: Database, engine: Engine, statement: str
) -> None:
    run(engine, statement)
    with pytest.raises(SchemaChangedError):
        database.after_test(check_schema=True)


def test_the_rewinder_alone_sees_the_same_after_quiet_rewinds(
    backend: str, database: Database, engine: Engine
) -> None:
    rewinder = database.rewinder
    assert rewinder is not None
    assert rewinder.rewind().clean
    run(engine, "CREATE TABLE scratch2 (id INTEGER PRIMARY KEY)")
    assert bare(database, rewinder.rewind().created_tables) == {"scratch2"}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(item)).scalar_one() == 2


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE scratch3 (id INTEGER PRIMARY KEY)",
        "ALTER TABLE other ADD COLUMN extra INTEGER",
        "DROP TABLE other",
    ],
    ids=["create", "alter", "drop"],
)
def test_tests_that_write_cost_no_schema_scan_while_no_ddl_runs_yet_ddl_is_seen(
    backend: str,
    database: Database,
    engine: Engine,
    statement: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Committed rows, rewound test after test (on MariaDB a rewind that empties a table
    truncates it: DDL of its own), read neither schema stamp, which scan the server's
    whole dictionary on MariaDB; DDL of another session afterwards is still seen.

    The server's DDL count moves with every session's DDL, other tests' on the same
    server too: here it is the dialect's own read, but counting only this test's DDL
    (the rewinds' and the statement's), so that the test sees the lifecycle's logic,
    not the neighbours."""
    assert database.rewinder is not None
    dialect = database.rewinder.dialect
    ddl = [0]
    real_state = dialect.quick_state

    def quick_state(conn: Connection) -> object:
        found = real_state(conn)
        if found is None or found[1] is None or backend != "mysql":
            return found
        return found[0], ddl[0]

    monkeypatch.setattr(dialect, "quick_state", quick_state)
    real_rewind = dialect.rewind

    def rewind(conn: Connection, **options: object) -> object:
        result = real_rewind(conn, **options)  # type: ignore[arg-type]
        ddl[0] += len(result.truncated) + len(result.created_tables)
        return result

    monkeypatch.setattr(dialect, "rewind", rewind)
    assert database.after_test(check_schema=True).clean  # the value it compares with
    scans: list[str] = []
    for stamp in ("schema_stamp", "columns_stamp"):
        real = getattr(dialect, stamp)

        def counted(conn: Connection, real=real, stamp=stamp) -> object:  # type: ignore[no-untyped-def]
            scans.append(stamp)
            return real(conn)

        monkeypatch.setattr(dialect, stamp, counted)
    for n in range(4):  # each test writes, some into the empty table (truncated after)
        run(engine, f"INSERT INTO item (name) VALUES ('w{n}')", f"INSERT INTO other VALUES ({n})")
        assert bare(database, database.after_test(check_schema=True).tables) == {"item", "other"}
    scanned = list(scans)
    run(engine, statement)
    ddl[0] += 1
    if statement.startswith("CREATE"):
        result = database.after_test(check_schema=True)
        assert bare(database, result.created_tables) == {"scratch3"}
        assert tables(engine) == {"item", "other"}
    else:
        with pytest.raises(SchemaChangedError):
            database.after_test(check_schema=True)
    if backend == "mysql":  # the one dialect whose tables need the stamps
        assert scanned == [], "no DDL but the rewinds' own: no scan"
        assert scans, "another session's DDL: the stamps are read"
    assert names(engine) == ["seed-1", "seed-2"]
