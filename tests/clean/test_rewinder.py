"""The clean strategy's promises, on every backend, through the public Rewinder API.

A test commits whatever it likes, on any connection or process; afterwards
only the dirty tables go back to the baseline (rows and counters), FK-safe,
and writes that were rolled back cost nothing.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine

from conftest import drop_database, make_database
from dbrewind import (
    ConfigurationError,
    DbrewindError,
    DriverNotInstalledError,
    LockTimeoutError,
    Rewinder,
    SchemaChangedError,
    UnsafeDatabaseError,
    parse_url,
)
from dbrewind import _url as url_module
from dbrewind.dialects.sqlite import META as SQLITE_CREATION_MARK

LONG_NAME = "t" + "_sixty_characters_long_table_name_for_identifier_limits"[:59].ljust(59, "x")
assert len(LONG_NAME) == 60

metadata = MetaData()
author = Table(
    "author",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False, unique=True),
    sqlite_autoincrement=True,
)
book = Table(
    "book",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("author_id", Integer, ForeignKey("author.id"), nullable=False),
    Column("title", String(100), nullable=False),
)
review = Table(
    "review",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("book_id", Integer, ForeignKey("book.id"), nullable=False),
    Column("stars", Integer, nullable=False),
)
# A cycle: alpha -> beta -> alpha.
alpha = Table(
    "alpha",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("beta_id", Integer, ForeignKey("beta.id", use_alter=True, name="fk_alpha_beta")),
)
beta = Table(
    "beta",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("alpha_id", Integer, ForeignKey("alpha.id")),
)
category = Table(
    "category",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, ForeignKey("category.id")),
    Column("label", String(50), nullable=False),
)
order = Table(
    "order",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(50), nullable=False),
)
mixed = Table(
    "MixedCase",
    metadata,
    Column("Id", Integer, primary_key=True, autoincrement=True),
    Column("Value", String(50)),
)
spaced = Table(
    "with space",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("some value", String(50)),
)
long_table = Table(
    LONG_NAME,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("v", String(50)),
)
ALL_TABLES = (author, book, review, alpha, beta, category, order, mixed, spaced, long_table)
SPECIAL_TABLES = (order, mixed, spaced, long_table)


def setup_schema(conn: Connection) -> None:
    """Create the schema and seed reference rows; idempotent."""
    metadata.create_all(conn)
    if conn.execute(select(func.count()).select_from(author)).scalar_one():
        return
    conn.execute(insert(author), [{"name": "Ada"}, {"name": "Grace"}])
    conn.execute(insert(book).values(author_id=1, title="Notes"))
    conn.execute(insert(review).values(book_id=1, stars=5))
    conn.execute(insert(alpha).values(id=1, beta_id=None))
    conn.execute(insert(beta).values(id=1, alpha_id=1))
    conn.execute(update(alpha).where(alpha.c.id == 1).values(beta_id=1))
    conn.execute(insert(category).values(parent_id=None, label="root"))
    conn.execute(insert(category).values(parent_id=1, label="child"))
    conn.execute(insert(order).values(user="first"))
    conn.execute(insert(mixed).values(Value="seed"))


# ----------------------------------------------------------------- helpers
def key(backend: str, name: str) -> str:
    """The table key dirty_tables() and RewindResult use on ``backend``."""
    return f"public.{name}" if backend == "postgresql" else name


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted: equal snapshots mean equal contents."""
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in conn.execute(select(t)))  # type: ignore[misc]
            for t in ALL_TABLES
        }


def upsert(backend: str, table: Table, values: dict[str, Any], update_cols: list[str]) -> Any:
    if backend == "mysql":
        stmt = mysql_dialect.insert(table).values(**values)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update_cols})
    module = pg_dialect if backend == "postgresql" else sqlite_dialect
    pg_stmt = module.insert(table).values(**values)
    return pg_stmt.on_conflict_do_update(
        index_elements=["name"], set_={c: pg_stmt.excluded[c] for c in update_cols}
    )


def truncate_sql(backend: str, conn: Connection, name: str) -> str:
    quoted = conn.dialect.identifier_preparer.quote_identifier(name)
    return f"TRUNCATE TABLE {quoted}"


def set_lock_timeout(backend: str, conn: Connection) -> None:
    if backend == "postgresql":
        conn.execute(text("SET lock_timeout = '1s'"))
    else:
        conn.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))


def tracking_objects(backend: str, engine: Engine) -> list[str]:
    """Names of every dbrewind object left in the database."""
    with engine.connect() as conn:
        if backend == "postgresql":
            sql = """
                SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE 'dbrewind%'
                UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE 'dbrewind%'
                UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger
                          WHERE evtname LIKE 'dbrewind%'
                UNION ALL SELECT 'function ' || proname FROM pg_proc p
                          JOIN pg_namespace n ON n.oid = p.pronamespace
                          WHERE n.nspname LIKE 'dbrewind%'
            """
        elif backend == "mysql":
            sql = """
                SELECT CONCAT('table ', table_name) FROM information_schema.tables
                 WHERE table_schema = DATABASE() AND table_name LIKE 'dbrewind%'
                UNION ALL SELECT CONCAT('trigger ', trigger_name) FROM information_schema.triggers
                 WHERE trigger_schema = DATABASE() AND trigger_name LIKE 'dbrewind%'
                UNION ALL SELECT CONCAT('routine ', routine_name) FROM information_schema.routines
                 WHERE routine_schema = DATABASE() AND routine_name LIKE 'dbrewind%'
            """
        else:
            # The creation mark (like PostgreSQL's database comment) is not tracking.
            sql = (
                "SELECT type || ' ' || name FROM sqlite_master "
                f"WHERE name LIKE 'dbrewind%' AND name <> '{SQLITE_CREATION_MARK}'"
            )
        return [row[0] for row in conn.execute(text(sql))]


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def rewinder(db_url: URL) -> Iterator[Rewinder]:
    """A Rewinder on the fresh database, prepared with the schema and seed rows."""
    rw = Rewinder(db_url)
    rw.prepare(setup_schema)
    try:
        yield rw
    finally:
        rw.close()


@pytest.fixture
def baseline(rewinder: Rewinder, engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    return snapshot(engine)


def write(engine: Engine, fn: Callable[[Connection], object]) -> None:
    with engine.begin() as conn:
        fn(conn)


# ------------------------------------------------------------ every write
@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda c: c.execute(insert(book).values(author_id=2, title="x")), id="insert"),
        pytest.param(lambda c: c.execute(update(book).values(title="changed")), id="update"),
        pytest.param(lambda c: c.execute(delete(review)), id="delete"),
        pytest.param(
            lambda c: c.execute(
                insert(book), [{"author_id": 1, "title": f"b{i}"} for i in range(500)]
            ),
            id="bulk-insert",
        ),
    ],
)
def test_committed_write_marks_the_table_and_rewind_restores_the_baseline(
    backend: str,
    rewinder: Rewinder,
    engine: Engine,
    baseline: dict[str, list[tuple[Any, ...]]],
    operation: Callable[[Connection], object],
) -> None:
    write(engine, operation)
    dirty = rewinder.dirty_tables()
    assert len(dirty) == 1
    assert snapshot(engine) != baseline

    result = rewinder.rewind()

    assert list(result.tables) == dirty
    assert rewinder.dirty_tables() == []
    assert snapshot(engine) == baseline


def test_upsert_on_both_paths_is_rewound(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    write(engine, lambda c: c.execute(upsert(backend, author, {"name": "Ada"}, ["name"])))
    write(engine, lambda c: c.execute(upsert(backend, author, {"name": "Linus"}, ["name"])))
    assert key(backend, "author") in rewinder.dirty_tables()

    rewinder.rewind()

    assert snapshot(engine) == baseline


@pytest.mark.backends("postgresql", "mysql")
def test_truncate_is_rewound_and_the_seed_rows_come_back(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    write(engine, lambda c: c.execute(text(truncate_sql(backend, c, "order"))))
    if rewinder.dialect.capabilities.truncate_trigger:
        assert rewinder.dirty_tables() == [key(backend, "order")]

    rewinder.rewind()

    assert snapshot(engine) == baseline


def test_writes_from_a_second_connection_and_thread_are_rewound(
    backend: str, rewinder: Rewinder, db_url: URL, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    other = create_engine(db_url)
    try:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with other.begin() as conn:
                    conn.execute(insert(category).values(parent_id=2, label="from thread"))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert errors == []
        assert rewinder.dirty_tables() == [key(backend, "category")]
        rewinder.rewind()
        assert snapshot(other) == baseline
    finally:
        other.dispose()


def test_writes_from_a_subprocess_are_rewound(
    backend: str, rewinder: Rewinder, db_url: URL, engine: Engine, baseline: dict[str, Any]
) -> None:
    code = (
        "import sys\n"
        "from sqlalchemy import create_engine, text\n"
        "engine = create_engine(sys.argv[1])\n"
        "with engine.begin() as conn:\n"
        "    conn.execute(text(\"INSERT INTO author (name) VALUES ('from a subprocess')\"))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, db_url.render_as_string(hide_password=False)],
        check=True,
        timeout=60,
    )
    assert rewinder.dirty_tables() == [key(backend, "author")]

    rewinder.rewind()

    assert snapshot(engine) == baseline


def test_tables_with_awkward_names_are_tracked_and_rewound(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    def awkward(conn: Connection) -> None:
        for table in SPECIAL_TABLES:
            _pk, second = (c.name for c in table.columns)
            conn.execute(insert(table).values({second: "new"}))
            conn.execute(update(table).values({second: "changed"}))
        conn.execute(delete(order).where(order.c.id == 1))

    write(engine, awkward)
    assert rewinder.dirty_tables() == sorted(key(backend, t.name) for t in SPECIAL_TABLES)

    result = rewinder.rewind()

    assert sorted(result.tables) == sorted(key(backend, t.name) for t in SPECIAL_TABLES)
    assert snapshot(engine) == baseline


# ------------------------------------------------------- baseline, counters
def test_seed_rows_updated_or_deleted_come_back_exactly(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    def vandalise(conn: Connection) -> None:
        conn.execute(update(author).where(author.c.id == 2).values(name="renamed"))
        conn.execute(delete(review))
        conn.execute(update(order).values(user="someone else"))

    write(engine, vandalise)
    rewinder.rewind()

    assert snapshot(engine) == baseline


def test_counters_return_to_baseline_so_the_next_insert_gets_the_same_id(
    backend: str, rewinder: Rewinder, engine: Engine
) -> None:
    def add_author(name: str) -> int:
        with engine.begin() as conn:
            pk = conn.execute(insert(author).values(name=name)).inserted_primary_key
        assert pk is not None
        return int(pk[0])

    rewinder.reset_sequences = "always"  # "auto" leaves them on MySQL/MariaDB
    first = add_author("first test")
    add_author("more")
    rewinder.rewind()
    second = add_author("second test")

    assert second == first == 3


def test_rewind_without_reset_sequences_keeps_counters_moving(
    backend: str, db_url: URL, engine: Engine
) -> None:
    with Rewinder(db_url, reset_sequences=False) as rw:
        rw.prepare(setup_schema)
        with engine.begin() as conn:
            first = conn.execute(insert(author).values(name="x")).inserted_primary_key
        rw.rewind()
        with engine.begin() as conn:
            second = conn.execute(insert(author).values(name="y")).inserted_primary_key
    assert first is not None
    assert second is not None
    assert second[0] > first[0]


# ------------------------------------------------------------- rolled back
def test_rolled_back_writes_leave_no_mark_and_cost_no_cleaning(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(insert(author).values(name="rolled back"))
        conn.execute(update(book).values(title="rolled back"))
        conn.execute(delete(review))
        trans.rollback()

    assert rewinder.dirty_tables() == []
    result = rewinder.rewind()
    assert result.tables == ()
    assert result.clean
    assert snapshot(engine) == baseline


def test_a_transaction_left_open_fails_the_rewind_after_lock_timeout_naming_it(
    backend: str, db_url: URL, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    with Rewinder(db_url, lock_timeout=1) as rw:
        write(engine, lambda c: c.execute(update(book).values(title="committed")))
        leaked = engine.connect()  # a test's connection, left inside its transaction
        try:
            leaked.execute(update(book).where(book.c.id == 1).values(title="left open"))
            started = time.perf_counter()
            with pytest.raises(LockTimeoutError) as caught:
                rw.rewind()
            assert time.perf_counter() - started < 5
            message = str(caught.value)
            assert "waited more than 1 s for a lock" in message
            assert "left a connection open inside a transaction" in message
            if backend == "postgresql":  # the blocking session and its last statement
                assert "idle in transaction" in message
                assert "UPDATE book" in message
            elif backend == "mysql":  # the blocking session's open transaction
                assert "Sessions with a transaction open on it: id " in message
            assert rw.dirty_tables() == [key(backend, "book")]  # still marked: nothing lost
        finally:
            leaked.rollback()
            leaked.close()
        assert rw.rewind().tables == (key(backend, "book"),)
    assert snapshot(engine) == baseline


def test_lock_timeout_must_be_positive_or_none(backend: str, db_url: URL) -> None:
    with pytest.raises(ConfigurationError, match="lock_timeout=0"):
        Rewinder(db_url, lock_timeout=0)
    Rewinder(db_url, lock_timeout=None).close()


def test_mark_dirty_makes_the_next_rewind_put_a_table_back_that_no_trigger_saw_change(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    marks = "dbrewind.marks" if backend == "postgresql" else "dbrewind_marks"
    with engine.begin() as conn:
        conn.execute(update(book).values(title="changed unseen"))
        conn.execute(text(f"DELETE FROM {marks}"))  # as if no trigger had seen it
    assert rewinder.dirty_tables() == []

    assert rewinder.mark_dirty("book") == [key(backend, "book")]  # a bare name does
    assert rewinder.dirty_tables() == [key(backend, "book")]
    assert rewinder.rewind().tables == (key(backend, "book"),)
    assert snapshot(engine) == baseline

    with pytest.raises(ConfigurationError, match=r"'nope' is not a table dbrewind tracks .*book"):
        rewinder.mark_dirty("nope")


def test_nothing_written_means_a_clean_rewind(backend: str, rewinder: Rewinder) -> None:
    result = rewinder.rewind()
    assert result.clean
    assert result.deleted == {}


# ------------------------------------------------------------ schema change
def test_a_table_created_by_the_test_is_reported_and_dropped_on_request(
    backend: str, rewinder: Rewinder, engine: Engine
) -> None:
    scratch = Table("scratch", MetaData(), Column("id", Integer, primary_key=True))
    with engine.begin() as conn:
        scratch.create(conn)
        conn.execute(insert(author).values(name="also dirty"))

    result = rewinder.rewind()
    assert result.created_tables == (key(backend, "scratch"),)
    assert key(backend, "author") in result.tables

    rewinder.drop_created_tables = True
    result = rewinder.rewind()
    assert result.created_tables == (key(backend, "scratch"),)
    with engine.connect() as conn:
        assert not engine.dialect.has_table(conn, "scratch")
    assert rewinder.rewind().clean


def test_a_dropped_baseline_table_raises_naming_it_and_the_rest_is_still_rewound(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, list[tuple[Any, ...]]]
) -> None:
    with engine.begin() as conn:
        conn.execute(insert(author).values(name="dirty"))
        conn.execute(update(order).values(user="dirty"))
        review.drop(conn)

    with pytest.raises(SchemaChangedError, match="review"):
        rewinder.rewind()

    after = snapshot_without(engine, review)
    assert after == {k: v for k, v in baseline.items() if k != "review"}


def snapshot_without(engine: Engine, gone: Table) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in conn.execute(select(t)))  # type: ignore[misc]
            for t in ALL_TABLES
            if t is not gone
        }


# ------------------------------------------------------------ prepare again
def test_prepare_twice_on_the_same_database_just_works(
    backend: str, db_url: URL, engine: Engine
) -> None:
    with Rewinder(db_url) as rw:
        rw.prepare(setup_schema)
        expected = snapshot(engine)
        rw.prepare(setup_schema)
        write(engine, lambda c: c.execute(insert(author).values(name="x")))
        assert rw.rewind().tables == (key(backend, "author"),)
        assert snapshot(engine) == expected


def test_prepare_after_a_crashed_run_takes_the_real_baseline(
    backend: str, db_url: URL, engine: Engine
) -> None:
    crashed = Rewinder(db_url)
    crashed.prepare(setup_schema)
    expected = snapshot(engine)
    write(engine, lambda c: c.execute(insert(author).values(name="left by a crashed test")))
    write(engine, lambda c: c.execute(delete(review)))
    crashed.close()  # the run dies here: tracking installed, marks dirty

    with Rewinder(db_url) as rw:
        rw.prepare(setup_schema)
        assert snapshot(engine) == expected
        assert rw.dirty_tables() == []
        write(engine, lambda c: c.execute(insert(author).values(name="next run")))
        rw.rewind()
        assert snapshot(engine) == expected


# --------------------------------------------------------------- concurrency
@pytest.mark.backends("postgresql", "mysql")
def test_two_transactions_writing_one_table_do_not_wait_on_each_other(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, Any]
) -> None:
    with engine.connect() as first, engine.connect() as second:
        set_lock_timeout(backend, second)
        second.commit()
        tx1 = first.begin()
        first.execute(insert(book).values(author_id=1, title="first writer"))
        first.execute(update(book).where(book.c.id == 1).values(title="first writer"))
        tx2 = second.begin()
        # Would raise a lock timeout if tracking made the writers queue.
        pk = second.execute(
            insert(book).values(author_id=2, title="second writer")
        ).inserted_primary_key
        assert pk is not None
        second.execute(delete(book).where(book.c.id == pk[0]))
        tx2.commit()
        tx1.commit()

    assert rewinder.dirty_tables() == [key(backend, "book")]
    rewinder.rewind()
    assert snapshot(engine) == baseline


# -------------------------------------------------------------- FK safety
def test_dirty_parent_and_child_are_rewound_fk_safe(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, Any]
) -> None:
    def chain(conn: Connection) -> None:
        new_author = conn.execute(insert(author).values(name="new")).inserted_primary_key
        assert new_author is not None
        new_book = conn.execute(
            insert(book).values(author_id=new_author[0], title="t")
        ).inserted_primary_key
        assert new_book is not None
        conn.execute(insert(review).values(book_id=new_book[0], stars=1))

    write(engine, chain)
    result = rewinder.rewind()

    assert set(result.tables) == {key(backend, n) for n in ("author", "book", "review")}
    assert snapshot(engine) == baseline


def test_tables_in_a_foreign_key_cycle_are_rewound(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, Any]
) -> None:
    def cycle(conn: Connection) -> None:
        conn.execute(insert(alpha).values(id=2, beta_id=None))
        conn.execute(insert(beta).values(id=2, alpha_id=2))
        conn.execute(update(alpha).where(alpha.c.id == 2).values(beta_id=2))
        conn.execute(update(alpha).where(alpha.c.id == 1).values(beta_id=2))

    write(engine, cycle)
    result = rewinder.rewind()

    assert set(result.tables) == {key(backend, "alpha"), key(backend, "beta")}
    assert snapshot(engine) == baseline


def test_a_self_referencing_table_is_rewound(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, Any]
) -> None:
    def tree(conn: Connection) -> None:
        pk = conn.execute(
            insert(category).values(parent_id=2, label="grandchild")
        ).inserted_primary_key
        assert pk is not None
        conn.execute(insert(category).values(parent_id=pk[0], label="great-grandchild"))
        conn.execute(delete(category).where(category.c.id == pk[0] + 1))
        conn.execute(update(category).where(category.c.id == 2).values(label="renamed"))

    write(engine, tree)
    rewinder.rewind()

    assert snapshot(engine) == baseline


def test_a_dirty_parent_is_rewound_while_a_clean_child_references_its_seed_rows(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, Any]
) -> None:
    write(engine, lambda c: c.execute(update(author).where(author.c.id == 1).values(name="Ada L")))
    assert rewinder.dirty_tables() == [key(backend, "author")]

    result = rewinder.rewind()

    assert result.tables == (key(backend, "author"),)
    assert snapshot(engine) == baseline  # book and review still reference author 1


def test_arewind_rewinds_from_async_code(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, Any]
) -> None:
    import asyncio

    write(engine, lambda c: c.execute(insert(author).values(name="async")))
    result = asyncio.run(rewinder.arewind())
    assert result.tables == (key(backend, "author"),)
    assert snapshot(engine) == baseline


# ------------------------------------------------------------------ safety
@pytest.fixture
def unsafe_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """A real, empty database whose name does not say it is for tests."""
    import uuid

    url = make_database(backend, tmp_path, name=f"dbrewind_{uuid.uuid4().hex[:10]}_scratch")
    try:
        yield url
    finally:
        drop_database(backend, url)


def test_a_database_not_named_test_is_refused_with_its_name_and_the_fix(
    backend: str, unsafe_url: URL
) -> None:
    with Rewinder(unsafe_url) as rw, pytest.raises(UnsafeDatabaseError) as info:
        rw.prepare(setup_schema)
    message = str(info.value)
    assert parse_url(unsafe_url).database in message
    assert "allow=True" in message
    assert "DBREWIND_ALLOW" in message


def test_allow_true_lets_dbrewind_use_a_database_not_named_test(
    backend: str, unsafe_url: URL
) -> None:
    with Rewinder(unsafe_url, allow=True) as rw:
        rw.prepare(setup_schema)
        assert rw.rewind().clean


def test_the_allow_environment_variable_lets_dbrewind_use_it(
    backend: str, unsafe_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = Path(parse_url(unsafe_url).database).name
    monkeypatch.setenv("DBREWIND_ALLOW", f"other_db, {name}")
    with Rewinder(unsafe_url) as rw:
        rw.prepare(setup_schema)
        assert rw.rewind().clean


def test_a_database_created_by_dbrewind_is_allowed_whatever_its_name(
    backend: str, unsafe_url: URL
) -> None:
    with Rewinder(unsafe_url, allow=True) as marker, marker.connection() as conn:
        marker.dialect.mark_created(conn)
    with Rewinder(unsafe_url) as rw:
        assert rw.is_test_database()
        rw.prepare(setup_schema)


@pytest.mark.backends("postgresql", "mysql")
def test_the_refusal_never_shows_the_password(backend: str, unsafe_url: URL) -> None:
    with_password = unsafe_url.set(password="s3cr3t-pw")
    with pytest.raises(DbrewindError) as info, Rewinder(with_password) as rw:
        rw.prepare(setup_schema)
    assert "s3cr3t-pw" not in str(info.value)
    assert "s3cr3t-pw" not in repr(Rewinder(with_password))


def test_a_malformed_url_is_a_clear_configuration_error(backend: str) -> None:
    with pytest.raises(ConfigurationError, match="Could not parse"):
        Rewinder(f"{backend}:/nothing-here:://")


def test_an_unknown_scheme_names_the_supported_databases(backend: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite, postgresql and mysql"):
        Rewinder("oracle://scott:tiger@localhost/app_test")


def test_a_missing_driver_names_the_extra_to_install(
    backend: str, db_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql"}[backend]
    monkeypatch.setattr(url_module, "_module_available", lambda module: False)
    with pytest.raises(DriverNotInstalledError) as info:
        Rewinder(db_url.set(drivername=f"{backend}+{driver}"))
    assert f"pip install 'dbrewind[{backend}]'" in str(info.value)


# ---------------------------------------------------------------- uninstall
def test_uninstall_leaves_no_dbrewind_object_behind(
    backend: str, rewinder: Rewinder, engine: Engine, baseline: dict[str, Any]
) -> None:
    assert tracking_objects(backend, engine)
    write(engine, lambda c: c.execute(insert(author).values(name="kept")))

    rewinder.uninstall()

    assert tracking_objects(backend, engine) == []
    after = snapshot(engine)
    assert len(after["author"]) == len(baseline["author"]) + 1  # user rows untouched
    write(engine, lambda c: c.execute(insert(author).values(name="untracked")))
    assert tracking_objects(backend, engine) == []
