"""The SQLite dialect against real SQLite files (and a shared in-memory database)."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from dbrewind import (
    ConfigurationError,
    DatabaseCreationError,
    LockTimeoutError,
    NotPreparedError,
    Rewinder,
    RewindResult,
    SchemaChangedError,
    parse_url,
)
from dbrewind.dialects import Installation
from dbrewind.dialects.sqlite import SQLiteDialect

LONG_A = "a" * 55 + "_first"
LONG_B = "a" * 55 + "_second"


@pytest.fixture
def backend() -> str:
    """Every test here runs on SQLite only (overrides the parametrised conftest fixture)."""
    return "sqlite"


@pytest.fixture
def rewinder(db_url: URL) -> Iterator[Rewinder]:
    r = Rewinder(db_url)
    try:
        yield r
    finally:
        r.close()


def run(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def own_objects(engine: Engine) -> list[tuple[str, str]]:
    return rows(
        engine,
        "SELECT type, name FROM sqlite_master WHERE name GLOB 'dbrewind_*' ORDER BY type, name",
    )


def shop_setup(conn: Connection) -> None:
    conn.exec_driver_sql(
        'CREATE TABLE "Order" (id INTEGER PRIMARY KEY AUTOINCREMENT, "Customer Name" TEXT)'
    )
    conn.exec_driver_sql(
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, '
        'order_id INTEGER REFERENCES "order"(id) ON DELETE CASCADE, note TEXT)'
    )
    conn.exec_driver_sql("CREATE TABLE empty_log (id INTEGER PRIMARY KEY AUTOINCREMENT, msg TEXT)")
    conn.exec_driver_sql(
        """INSERT INTO "Order" ("Customer Name") VALUES ('Ann'), ('O''Brien'), ('Cy')"""
    )
    conn.exec_driver_sql("""INSERT INTO "user" VALUES (1, 1, 'first'), (2, 2, 'second')""")


# ----------------------------------------------------------------- introspection
def test_inspect_lists_ordinary_and_without_rowid_tables_only(engine: Engine) -> None:
    run(
        engine,
        "CREATE TABLE plain (id INTEGER PRIMARY KEY, a TEXT, "
        "doubled INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL)",
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID",
        "CREATE TABLE counter (id INTEGER PRIMARY KEY AUTOINCREMENT)",
        "CREATE VIEW plain_view AS SELECT * FROM plain",
        "CREATE VIRTUAL TABLE docs USING fts5(body)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, plain_id INTEGER "
        "REFERENCES PLAIN(id) ON DELETE CASCADE)",
    )
    with engine.connect() as conn:
        info = SQLiteDialect().inspect(conn)
    assert sorted(info.tables) == ["child", "counter", "kv", "plain"]
    assert info.tables["plain"].columns == ("id", "a")
    assert info.tables["counter"].auto_increment
    assert not info.tables["plain"].auto_increment
    assert [(fk.child, fk.parent, fk.on_delete) for fk in info.foreign_keys] == [
        ("child", "plain", "CASCADE")
    ]


def test_inspect_ignores_dbrewind_tracking_objects(rewinder: Rewinder) -> None:
    rewinder.prepare(shop_setup)
    with rewinder.connection() as conn:
        info = SQLiteDialect().inspect(conn)
    assert sorted(info.tables) == ["Order", "empty_log", "user"]


# ------------------------------------------------------------------- rewinding
def test_rewind_restores_seed_rows_and_removes_new_ones(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    baseline = rows(engine, 'SELECT * FROM "Order" ORDER BY id')
    run(
        engine,
        """UPDATE "Order" SET "Customer Name" = 'changed' WHERE id = 2""",
        'DELETE FROM "Order" WHERE id = 3',
        """INSERT INTO "Order" ("Customer Name") VALUES ('new')""",
        "INSERT INTO empty_log (msg) VALUES ('x')",
    )
    assert rewinder.dirty_tables() == ["Order", "empty_log"]

    result = rewinder.rewind()

    assert result.tables == ("Order", "empty_log")
    assert result.deleted == {"Order": 3, "empty_log": 1}
    assert rows(engine, 'SELECT * FROM "Order" ORDER BY id') == baseline
    assert rows(engine, "SELECT count(*) FROM empty_log") == [(0,)]
    assert rewinder.dirty_tables() == []


def test_rewind_leaves_clean_tables_untouched(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    run(engine, "INSERT INTO empty_log (msg) VALUES ('x')")
    result = rewinder.rewind()
    assert result.tables == ("empty_log",)
    assert "user" not in result.deleted


def test_rewind_restores_autoincrement_counters(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    run(
        engine,
        """INSERT INTO "Order" ("Customer Name") VALUES ('d'), ('e')""",
        "INSERT INTO empty_log (msg) VALUES ('x')",
    )
    rewinder.rewind()
    run(
        engine,
        """INSERT INTO "Order" ("Customer Name") VALUES ('next')""",
        "INSERT INTO empty_log (msg) VALUES ('first')",
    )
    assert rows(engine, """SELECT id FROM "Order" WHERE "Customer Name" = 'next'""") == [(4,)]
    assert rows(engine, "SELECT id FROM empty_log") == [(1,)]


def test_rewind_without_reset_sequences_keeps_counters(db_url: URL, engine: Engine) -> None:
    with Rewinder(db_url, reset_sequences=False) as rewinder:
        rewinder.prepare(shop_setup)
        run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('d'), ('e')""")
        rewinder.rewind()
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('next')""")
    assert rows(engine, """SELECT id FROM "Order" WHERE "Customer Name" = 'next'""") == [(6,)]


def test_rewind_restores_rowids_of_tables_without_integer_primary_key(
    rewinder: Rewinder, engine: Engine
) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE tags (label TEXT)")
        conn.exec_driver_sql("INSERT INTO tags VALUES ('a'), ('b'), ('c'), ('d')")
        conn.exec_driver_sql("DELETE FROM tags WHERE label IN ('b', 'd')")

    rewinder.prepare(setup)
    baseline = rows(engine, "SELECT rowid, label FROM tags ORDER BY rowid")
    run(engine, "DELETE FROM tags", "INSERT INTO tags VALUES ('x'), ('y'), ('z')")
    rewinder.rewind()
    assert (
        rows(engine, "SELECT rowid, label FROM tags ORDER BY rowid")
        == baseline
        == [
            (1, "a"),
            (3, "c"),
        ]
    )
    run(engine, "INSERT INTO tags VALUES ('next')")
    assert rows(engine, "SELECT rowid FROM tags WHERE label = 'next'") == [(4,)]


def test_rewind_handles_without_rowid_generated_and_rowid_named_columns(
    rewinder: Rewinder, engine: Engine
) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
        conn.exec_driver_sql(
            "CREATE TABLE calc (id INTEGER PRIMARY KEY, n INTEGER, "
            "sq INTEGER GENERATED ALWAYS AS (n * n) STORED)"
        )
        conn.exec_driver_sql('CREATE TABLE odd ("rowid" TEXT, oid TEXT, v INTEGER)')
        conn.exec_driver_sql("INSERT INTO kv VALUES ('a', x'00ff'), ('b', NULL)")
        conn.exec_driver_sql("INSERT INTO calc (id, n) VALUES (1, 3), (2, 4)")
        conn.exec_driver_sql("INSERT INTO odd VALUES ('r1', 'o1', 1), ('r2', 'o2', 2)")

    rewinder.prepare(setup)
    queries = (
        "SELECT k, v FROM kv ORDER BY k",
        "SELECT id, n, sq FROM calc ORDER BY id",
        'SELECT _rowid_, "rowid", oid, v FROM odd ORDER BY v',
    )
    baseline = [rows(engine, q) for q in queries]
    run(
        engine,
        "UPDATE kv SET v = x'01'",
        "UPDATE calc SET n = n + 1",
        "DELETE FROM odd WHERE v = 1",
        "INSERT INTO odd VALUES ('r3', 'o3', 3)",
    )
    assert rewinder.rewind().tables == ("calc", "kv", "odd")
    assert [rows(engine, q) for q in queries] == baseline


@pytest.mark.parametrize(
    "name",
    ["Mixed Case", "order", "select", "it's", 'say "hi"', LONG_A],
)
def test_rewind_works_with_awkward_table_names(
    rewinder: Rewinder, engine: Engine, name: str
) -> None:
    quoted = '"' + name.replace('"', '""') + '"'

    def setup(conn: Connection) -> None:
        conn.exec_driver_sql(f'CREATE TABLE {quoted} (id INTEGER PRIMARY KEY, "group" TEXT)')
        conn.exec_driver_sql(f"INSERT INTO {quoted} VALUES (1, 'seed')")
        conn.exec_driver_sql(f'CREATE TABLE "{LONG_B}" (id INTEGER PRIMARY KEY)')

    rewinder.prepare(setup)
    run(engine, f"INSERT INTO {quoted} VALUES (2, 'new')", f"UPDATE {quoted} SET \"group\" = 'x'")
    assert rewinder.dirty_tables() == [name]
    assert rewinder.rewind().tables == (name,)
    assert rows(engine, f"SELECT * FROM {quoted}") == [(1, "seed")]
    run(engine, f'INSERT INTO "{LONG_B}" VALUES (1)')
    assert rewinder.dirty_tables() == [LONG_B]


def test_rewind_does_not_fire_cascades_and_restores_connection_pragmas(
    db_url: URL, engine: Engine
) -> None:
    fk_engine = create_engine(db_url)
    event.listen(
        fk_engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA foreign_keys = ON")
    )
    with Rewinder(db_url, engine=fk_engine) as rewinder:
        rewinder.prepare(shop_setup)
        run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('d')""")
        # The parent is dirty, the child is not: deleting parent rows must not cascade.
        result = rewinder.rewind()
        assert result.tables == ("Order",)
        assert rows(engine, 'SELECT id, order_id FROM "user" ORDER BY id') == [(1, 1), (2, 2)]
        with rewinder.connection() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL, the default
    fk_engine.dispose()


def test_rewind_restores_tables_in_a_foreign_key_cycle(rewinder: Rewinder, engine: Engine) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
        conn.exec_driver_sql("INSERT INTO a VALUES (1, 1)")
        conn.exec_driver_sql("INSERT INTO b VALUES (1, 1)")

    rewinder.prepare(setup)
    fk_engine = create_engine(rewinder.url.url)
    event.listen(
        fk_engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA foreign_keys = ON")
    )
    run(fk_engine, "INSERT INTO a VALUES (2, 2)", "INSERT INTO b VALUES (2, 2)")
    fk_engine.dispose()
    assert rewinder.rewind().tables == ("a", "b")
    assert rows(engine, "SELECT * FROM a") == [(1, 1)]
    assert rows(engine, "SELECT * FROM b") == [(1, 1)]
    assert rows(engine, "PRAGMA foreign_key_check") == []


def test_user_triggers_do_not_fire_during_rewind_and_survive_it(
    rewinder: Rewinder, engine: Engine
) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("CREATE TABLE audit (item_id INTEGER, action TEXT)")
        conn.exec_driver_sql(
            "CREATE TRIGGER item_ins AFTER INSERT ON item "
            "BEGIN INSERT INTO audit VALUES (new.id, 'insert'); END"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER item_del AFTER DELETE ON item "
            "BEGIN INSERT INTO audit VALUES (old.id, 'delete'); END"
        )
        conn.exec_driver_sql("INSERT INTO item VALUES (1, 'seed')")

    rewinder.prepare(setup)
    baseline_audit = rows(engine, "SELECT * FROM audit")
    run(engine, "UPDATE item SET name = 'changed'")
    assert rewinder.rewind().tables == ("item",)
    assert rows(engine, "SELECT * FROM audit") == baseline_audit == [(1, "insert")]
    assert rewinder.dirty_tables() == []
    assert rewinder.rewind().clean
    run(engine, "INSERT INTO item VALUES (2, 'after')")
    assert rows(engine, "SELECT * FROM audit ORDER BY item_id") == [(1, "insert"), (2, "insert")]


def test_user_triggers_added_by_a_test_or_named_in_other_case_do_not_fire_during_rewind(
    rewinder: Rewinder, engine: Engine
) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE thing (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE audit (note TEXT)")
        conn.exec_driver_sql(
            "CREATE TRIGGER upper_case AFTER DELETE ON ITEM "
            "BEGIN INSERT INTO audit VALUES ('item delete'); END"
        )
        conn.exec_driver_sql("INSERT INTO item VALUES (1)")
        conn.exec_driver_sql("INSERT INTO thing VALUES (1)")

    rewinder.prepare(setup)
    run(
        engine,
        "CREATE TRIGGER added_later AFTER INSERT ON thing "
        "BEGIN INSERT INTO audit VALUES ('thing insert'); END",
        "UPDATE item SET id = 2",
        "UPDATE thing SET id = 2",
    )
    assert rewinder.rewind().tables == ("item", "thing")
    assert rows(engine, "SELECT count(*) FROM audit") == [(0,)]
    run(engine, "UPDATE item SET id = 3", "UPDATE thing SET id = 3")
    assert rewinder.rewind().tables == ("item", "thing")
    assert rows(engine, "SELECT count(*) FROM audit") == [(0,)]
    run(engine, "INSERT INTO thing VALUES (7)")
    assert rows(engine, "SELECT note FROM audit") == [("thing insert",)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT OR ABORT INTO item (name) VALUES ('x')",
        "INSERT OR ROLLBACK INTO item (name) VALUES ('x')",
        "INSERT OR FAIL INTO item (name) VALUES ('x')",
        "REPLACE INTO item (id, name) VALUES (1, 'x')",
    ],
)
def test_statement_conflict_clauses_do_not_break_tracking(
    rewinder: Rewinder, engine: Engine, statement: str
) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")

    rewinder.prepare(setup)
    run(engine, statement)
    run(engine, statement.replace("(1,", "(2,"))  # the table is marked already
    assert rewinder.dirty_tables() == ["item"]
    rewinder.rewind()
    assert rows(engine, "SELECT count(*) FROM item") == [(0,)]


def count_statements(rewinder: Rewinder) -> tuple[RewindResult, int]:
    """Rewind, and count the statements the rewind sent."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(rewinder.engine, "before_cursor_execute", record)
    try:
        result = rewinder.rewind()
    finally:
        event.remove(rewinder.engine, "before_cursor_execute", record)
    return result, len(statements)


def test_clean_rewind_is_a_single_query(rewinder: Rewinder) -> None:
    rewinder.prepare(shop_setup)
    result, statements = count_statements(rewinder)
    assert result.clean
    assert statements == 1


def test_rewind_that_recreated_user_triggers_leaves_the_next_one_at_a_single_query(
    rewinder: Rewinder, engine: Engine
) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, touched INTEGER)")
        conn.exec_driver_sql(
            "CREATE TRIGGER item_touch AFTER INSERT ON item "
            "BEGIN UPDATE item SET touched = 1 WHERE id = new.id; END"
        )

    rewinder.prepare(setup)
    run(engine, "INSERT INTO item (id) VALUES (1)")
    assert rows(engine, "SELECT * FROM item") == [(1, 1)]
    assert rewinder.rewind().tables == ("item",)
    result, statements = count_statements(rewinder)
    assert result.clean
    assert statements == 1


def test_rewind_writes_made_through_an_async_driver(rewinder: Rewinder) -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    rewinder.prepare(shop_setup)

    async def write() -> None:
        async_engine = create_async_engine(rewinder.url.async_url())
        async with async_engine.begin() as conn:
            await conn.execute(text("INSERT INTO empty_log (msg) VALUES ('async')"))
        await async_engine.dispose()
        result = await rewinder.arewind()
        assert result.tables == ("empty_log",)

    asyncio.run(write())
    assert rewinder.dirty_tables() == []


# ------------------------------------------------------------------ DDL in tests
def test_created_and_dropped_tables_are_reported(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    run(engine, "CREATE TABLE scratch (x INTEGER)")
    assert rewinder.rewind().created_tables == ("scratch",)
    run(engine, "DROP TABLE scratch", "DROP TABLE empty_log")
    with pytest.raises(SchemaChangedError, match="'empty_log'"):
        rewinder.rewind()


def test_dropping_a_created_table_makes_the_next_rewind_clean(db_url: URL, engine: Engine) -> None:
    with Rewinder(db_url, drop_created_tables=True) as rewinder:
        rewinder.prepare(shop_setup)
        run(engine, "CREATE TABLE scratch (x INTEGER)")
        assert rewinder.rewind().created_tables == ("scratch",)
        assert rows(engine, "SELECT name FROM sqlite_master WHERE name = 'scratch'") == []
        assert rewinder.rewind().clean  # notices the DDL, finds the tables as in the baseline
        result, statements = count_statements(rewinder)
        assert result.clean
        assert statements == 1


def test_recreated_table_gets_tracking_back_and_its_baseline_rows(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    run(
        engine,
        'DROP TABLE "user"',
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, order_id INTEGER, note TEXT)',
        """INSERT INTO "user" VALUES (9, 9, 'other')""",
    )
    result = rewinder.rewind()
    assert result.tables == ("user",)
    assert not result.created_tables
    assert not result.dropped_tables
    assert rows(engine, 'SELECT * FROM "user" ORDER BY id') == [(1, 1, "first"), (2, 2, "second")]
    run(engine, """UPDATE "user" SET note = 'x'""")
    assert rewinder.dirty_tables() == ["user"]


def test_a_table_recreated_with_other_columns_is_reported_dropped_and_the_rest_rewound(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    run(
        engine,
        """INSERT INTO "Order" ("Customer Name") VALUES ('new')""",
        'DROP TABLE "user"',
        'CREATE TABLE "user" (only_column TEXT)',
        """INSERT INTO "user" VALUES ('left by the test')""",
    )
    with rewinder.connection() as conn:
        result = rewinder.dialect.rewind(conn)
    assert result.dropped_tables == ("user",)
    assert result.tables == ("Order",)
    assert result.recreated_tables == ()
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]
    # the unfit table is left as the test made it, untracked, and reported on every rewind
    assert rows(engine, 'SELECT * FROM "user"') == [("left by the test",)]
    with rewinder.connection() as conn:
        assert rewinder.dialect.installation(conn).untracked == ("user",)
    with pytest.raises(SchemaChangedError, match=r"'user'.*prepare the database again"):
        rewinder.rewind()
    assert rewinder.dirty_tables() == []


def test_a_recreated_table_whose_rows_break_a_constraint_is_left_untouched(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    run(
        engine,
        'DROP TABLE "user"',
        # the same columns, but one more that the baseline rows leave NULL
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, order_id INTEGER, note TEXT, '
        "must TEXT NOT NULL)",
        """INSERT INTO "user" VALUES (7, 1, 'kept', 'x')""",
    )
    with rewinder.connection() as conn:
        result = rewinder.dialect.rewind(conn)
    assert result.dropped_tables == ("user",)
    # the DELETE before the failed INSERT was rolled back with it
    assert rows(engine, 'SELECT * FROM "user"') == [(7, 1, "kept", "x")]
    assert (
        rows(engine, "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'user'")
        == []
    )


def test_a_recreated_table_gets_its_autoincrement_counter_as_it_is_declared_now(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)  # "Order" has AUTOINCREMENT (counter at 3), "user" has not
    run(
        engine,
        'DROP TABLE "Order"',
        'CREATE TABLE "Order" (id INTEGER PRIMARY KEY, "Customer Name" TEXT)',
        """INSERT INTO "Order" VALUES (50, 'x')""",
        'DROP TABLE "user"',
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER, note TEXT)',
        """INSERT INTO "user" VALUES (40, 1, 'x')""",
    )
    result = rewinder.rewind()
    assert result.recreated_tables == ("Order", "user")
    # no counter for the table that lost AUTOINCREMENT; the new one starts after the rows
    assert rows(engine, "SELECT name, seq FROM sqlite_sequence") == []
    run(engine, """INSERT INTO "user" (note) VALUES ('next')""")
    assert rows(engine, """SELECT id FROM "user" WHERE note = 'next'""") == [(3,)]


# ----------------------------------------------------------------- installation
def test_install_twice_keeps_one_set_of_tracking_objects(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    first = own_objects(engine)
    rewinder.install()
    assert own_objects(engine) == first
    # 3 user tables x 3 triggers, marks/registry/state/meta, 2 baseline copies
    assert sum(1 for kind, _ in first if kind == "trigger") == 9
    assert sum(1 for kind, name in first if name.startswith("dbrewind_b_")) == 2


def test_prepare_after_a_crashed_run_rewinds_before_capturing_the_baseline(
    db_url: URL, engine: Engine
) -> None:
    with Rewinder(db_url) as first:
        first.prepare(shop_setup)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('left by a crash')""")
    with Rewinder(db_url) as second:
        second.prepare()
        assert second.dirty_tables() == []
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]


def test_install_replaces_leftovers_of_an_older_installation(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    # a stale trigger and baseline copy (e.g. from a table since renamed)
    run(
        engine,
        "CREATE TABLE dbrewind_b_stale_0000000000 (x)",
        "CREATE TRIGGER dbrewind_i_stale_0000000000 AFTER INSERT ON empty_log BEGIN SELECT 1; END",
    )
    rewinder.install()
    names = [name for _, name in own_objects(engine)]
    assert "dbrewind_b_stale_0000000000" not in names
    assert "dbrewind_i_stale_0000000000" not in names


def test_failed_install_leaves_nothing_behind(rewinder: Rewinder, engine: Engine) -> None:
    run(engine, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    with rewinder.connection() as conn:
        schema = SQLiteDialect().inspect(conn)
    run(engine, "DROP TABLE t")
    with rewinder.connection() as conn, pytest.raises(SchemaChangedError, match="'t'"):
        SQLiteDialect().install(conn, schema)
    assert own_objects(engine) == []


def test_uninstall_removes_tracking_and_keeps_user_data(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    with rewinder.connection() as conn:
        SQLiteDialect().mark_created(conn)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('kept')""")
    rewinder.uninstall()
    assert own_objects(engine) == [("table", "dbrewind_meta")]
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(4,)]
    with rewinder.connection() as conn:
        assert not SQLiteDialect().is_installed(conn)
        assert SQLiteDialect().created_by_dbrewind(conn)


def test_rewind_and_dirty_tables_before_install_raise_not_prepared(rewinder: Rewinder) -> None:
    dialect = SQLiteDialect()
    with rewinder.connection() as conn:
        with pytest.raises(NotPreparedError, match=r"Rewinder\.prepare"):
            dialect.rewind(conn)
        with pytest.raises(NotPreparedError, match=r"Rewinder\.prepare"):
            dialect.dirty_tables(conn)
        with pytest.raises(NotPreparedError, match=r"Rewinder\.prepare"):
            dialect.tracked_tables(conn)


def test_rewind_while_another_connection_writes_names_the_database(
    db_url: URL, engine: Engine
) -> None:
    with Rewinder(db_url, lock_timeout=0.05) as rewinder:
        rewinder.prepare(shop_setup)
        run(engine, "INSERT INTO empty_log (msg) VALUES ('x')")
        raw = sqlite3.connect(str(db_url.database), isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(
                LockTimeoutError,
                match=r"dbrewind_\w+_test\.db: waited more "
                r"than 0\.05 s .*the write lock.*close it",
            ):
                rewinder.rewind()
        finally:
            raw.execute("ROLLBACK")
            raw.close()
        assert rewinder.rewind().tables == ("empty_log",)
        # the connection's own busy timeout (dbrewind's engines: 30 s) is back
        with rewinder.connection() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


# ------------------------------------------------------------------ in memory
def test_shared_in_memory_database_prepares_and_rewinds() -> None:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    with Rewinder("sqlite://", engine=engine) as rewinder:
        rewinder.prepare(shop_setup)
        run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('new')""")
        assert rewinder.dirty_tables() == ["Order"]
        assert rewinder.rewind().tables == ("Order",)
        assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]
        assert rewinder.rewind().clean
    engine.dispose()


def test_in_memory_database_cannot_be_dropped_or_cloned(tmp_path: Path) -> None:
    dialect = SQLiteDialect()
    memory = parse_url("sqlite://")
    assert dialect.database_exists(memory)
    with pytest.raises(ConfigurationError, match="in-memory"):
        dialect.drop_database(memory)
    with pytest.raises(ConfigurationError, match="cannot be cloned"):
        dialect.create_database(parse_url(f"sqlite:///{tmp_path / 'x_test.db'}"), template=memory)
    template = parse_url(f"sqlite:///{tmp_path / 'tmpl_test.db'}")
    dialect.create_database(template)
    with pytest.raises(ConfigurationError, match="cannot be cloned"):
        dialect.create_database(memory, template=template)


# ------------------------------------------------------------------- databases
def test_create_database_makes_a_marked_file_in_a_new_directory(tmp_path: Path) -> None:
    dialect = SQLiteDialect()
    url = parse_url(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'app_test.db'}")
    assert not dialect.database_exists(url)
    dialect.create_database(url)
    assert dialect.database_exists(url)
    engine = create_engine(url.url)
    with engine.connect() as conn:
        assert dialect.created_by_dbrewind(conn)
    engine.dispose()
    with pytest.raises(DatabaseCreationError, match="already exists"):
        dialect.create_database(url)


def test_unmarked_database_is_not_reported_as_created_by_dbrewind(engine: Engine) -> None:
    run(engine, "CREATE TABLE t (x)")
    with engine.connect() as conn:
        assert not SQLiteDialect().created_by_dbrewind(conn)


def test_create_from_template_copies_rows_and_tracking(tmp_path: Path) -> None:
    template_url = f"sqlite:///{tmp_path / 'template_test.db'}"
    with Rewinder(template_url) as template:
        template.prepare(shop_setup)
        keep_open = template.engine.connect()  # a template in use copies consistently
        run(template.engine, "PRAGMA journal_mode = WAL")
        copy_url = parse_url(f"sqlite:///{tmp_path / 'worker1_test.db'}")
        SQLiteDialect().create_database(copy_url, template=parse_url(template_url))
        keep_open.close()
    with Rewinder(copy_url) as worker:
        engine = create_engine(copy_url.url)
        assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]
        run(engine, """DELETE FROM "Order" WHERE id = 1""")
        assert worker.dirty_tables() == ["Order"]
        assert worker.rewind().tables == ("Order",)
        assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]
        with engine.connect() as conn:
            assert SQLiteDialect().created_by_dbrewind(conn)
        engine.dispose()


def test_create_from_a_missing_template_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="template file does not exist"):
        SQLiteDialect().create_database(
            parse_url(f"sqlite:///{tmp_path / 'a_test.db'}"),
            template=parse_url(f"sqlite:///{tmp_path / 'missing_test.db'}"),
        )
    assert not (tmp_path / "a_test.db").exists()


def test_drop_database_removes_the_file_and_its_companions(tmp_path: Path) -> None:
    dialect = SQLiteDialect()
    path = tmp_path / "wal_test.db"
    url = parse_url(f"sqlite:///{path}")
    dialect.create_database(url)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE t (x)")
    assert os.path.exists(f"{path}-wal")
    holder.close()
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").write_bytes(b"")
    dialect.drop_database(url)
    assert sorted(os.listdir(tmp_path)) == []
    dialect.drop_database(url)  # dropping a missing database is fine
    assert not dialect.database_exists(url)


def test_capabilities_describe_sqlite() -> None:
    caps = SQLiteDialect.capabilities
    assert caps.transactional_ddl
    assert caps.deferrable_constraints
    assert not caps.statement_triggers
    assert not caps.truncate_trigger
    assert not caps.concurrent_writers
    assert not caps.select_for_update
    assert caps.returning == (sqlite3.sqlite_version_info >= (3, 35, 0))


# ------------------------------------------------------------------- lifecycle
def installation_of(rewinder: Rewinder) -> Any:
    with rewinder.connection() as conn:
        return rewinder.dialect.installation(conn)


def push(rewinder: Rewinder) -> tuple[str, ...]:
    with rewinder.connection() as conn:
        return rewinder.dialect.push_baseline(conn)


def pop(rewinder: Rewinder, depth: int) -> RewindResult:
    with rewinder.connection() as conn:
        return rewinder.dialect.pop_baseline(conn, depth)


def test_state_values_stay_text_and_the_schema_version_is_not_state(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    values = {"count": "123", "padded": "007", "float": "1e3", "empty": "", "null": "NULL"}
    with rewinder.connection() as conn:
        rewinder.dialect.write_state(conn, values)
        rewinder.dialect.write_state(conn, {})  # nothing to write is fine
    assert dict(installation_of(rewinder).state) == values
    assert rows(engine, "SELECT DISTINCT typeof(value) FROM dbrewind_lifecycle") == [("text",)]
    result, statements = count_statements(rewinder)  # writing state is no DDL, no write
    assert result.clean
    assert statements == 1


def test_state_is_removed_by_uninstall_and_needs_tracking(rewinder: Rewinder) -> None:
    with rewinder.connection() as conn, pytest.raises(NotPreparedError, match="prepare"):
        rewinder.dialect.write_state(conn, {"a": "b"})
    rewinder.prepare(shop_setup)
    with rewinder.connection() as conn:
        rewinder.dialect.write_state(conn, {"a": "b"})
    rewinder.uninstall()
    assert installation_of(rewinder) == Installation(installed=False)
    with rewinder.connection() as conn, pytest.raises(NotPreparedError, match="prepare"):
        rewinder.dialect.write_state(conn, {"a": "b"})


def test_an_installation_older_than_layers_and_state_reads_as_installed_without_them(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    run(engine, "DROP TABLE dbrewind_lifecycle", "DROP TABLE dbrewind_layers")
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('new')""")
    found = installation_of(rewinder)
    assert found.installed
    assert found.intact
    assert (dict(found.state), found.depth, found.dirty) == ({}, 0, ("Order",))
    with rewinder.connection() as conn:
        with pytest.raises(NotPreparedError, match=r"older dbrewind.*'dbrewind_lifecycle'"):
            rewinder.dialect.write_state(conn, {"a": "b"})
        with pytest.raises(NotPreparedError, match=r"older dbrewind.*'dbrewind_layers'"):
            rewinder.dialect.push_baseline(conn)
    assert pop(rewinder, 0).tables == ("Order",)  # depth 0 is a plain rewind


def test_lifecycle_methods_before_install_raise_not_prepared(rewinder: Rewinder) -> None:
    dialect = SQLiteDialect()
    with rewinder.connection() as conn:
        with pytest.raises(NotPreparedError, match=r"Rewinder\.prepare"):
            dialect.push_baseline(conn)
        with pytest.raises(NotPreparedError, match=r"Rewinder\.prepare"):
            dialect.pop_baseline(conn, 0)


def test_installation_compares_tables_by_name(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    run(
        engine,
        'DROP TABLE "user"',
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, order_id INTEGER, note TEXT)',
        "DROP TABLE empty_log",
        'CREATE TABLE "Empty Log" (id INTEGER PRIMARY KEY)',
        'INSERT INTO "Order" ("Customer Name") VALUES (\'dirty\')',
    )
    found = installation_of(rewinder)
    assert found.tracked == ("Order", "empty_log", "user")
    assert found.untracked == ("user",)
    assert found.missing == ("empty_log",)
    assert found.created == ("Empty Log",)
    assert found.dirty == ("Order",)
    # reading it changed nothing: the next rewind still sees all of it
    with rewinder.connection() as conn:
        result = rewinder.dialect.rewind(conn)
    assert (result.recreated_tables, result.dropped_tables) == (("user",), ("empty_log",))
    assert result.created_tables == ("Empty Log",)


AWKWARD = ("Mixed Case", "order", "it's", 'say "hi"', LONG_A, LONG_B)


def awkward_setup(conn: Connection) -> None:
    for name in AWKWARD:
        quoted = '"' + name.replace('"', '""') + '"'
        conn.exec_driver_sql(
            f'CREATE TABLE {quoted} (id INTEGER PRIMARY KEY AUTOINCREMENT, "group" TEXT)'
        )
        conn.exec_driver_sql(f"INSERT INTO {quoted} (\"group\") VALUES ('seed')")
    conn.exec_driver_sql('CREATE TABLE "k v" ("key" TEXT PRIMARY KEY, "value" TEXT) WITHOUT ROWID')
    conn.exec_driver_sql("""CREATE TABLE tags (label TEXT)""")
    conn.exec_driver_sql("""INSERT INTO "k v" VALUES ('a', 'seed')""")


def awkward_snapshot(engine: Engine) -> list[Any]:
    found: list[Any] = []
    for name in AWKWARD:
        quoted = '"' + name.replace('"', '""') + '"'
        found.append(rows(engine, f"SELECT * FROM {quoted} ORDER BY id"))
    found.append(rows(engine, 'SELECT * FROM "k v" ORDER BY "key"'))
    found.append(rows(engine, "SELECT rowid, label FROM tags ORDER BY rowid"))
    found.append(rows(engine, "SELECT name, seq FROM sqlite_sequence ORDER BY name"))
    return found


def test_layers_work_on_awkward_names_without_rowid_tables_and_rowids(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(awkward_setup)
    base = awkward_snapshot(engine)
    for name in AWKWARD:
        quoted = '"' + name.replace('"', '""') + '"'
        run(engine, f"INSERT INTO {quoted} (\"group\") VALUES ('layer')")
    run(
        engine,
        """INSERT INTO "k v" VALUES ('b', 'layer')""",
        "INSERT INTO tags VALUES ('a'), ('b'), ('c')",
        "DELETE FROM tags WHERE label = 'b'",  # a gap in the rowids
    )
    assert push(rewinder) == tuple(sorted([*AWKWARD, "k v", "tags"]))
    layer = awkward_snapshot(engine)
    for name in AWKWARD:
        quoted = '"' + name.replace('"', '""') + '"'
        run(engine, f"DELETE FROM {quoted}", f"INSERT INTO {quoted} (\"group\") VALUES ('test')")
    run(engine, """UPDATE "k v" SET "value" = 'test'""", "DELETE FROM tags")
    rewinder.rewind()
    assert awkward_snapshot(engine) == layer
    run(engine, "INSERT INTO tags VALUES ('next')")
    assert rows(engine, "SELECT rowid FROM tags WHERE label = 'next'") == [(4,)]
    assert pop(rewinder, 0).tables == tuple(sorted([*AWKWARD, "k v", "tags"]))
    assert awkward_snapshot(engine) == base
    assert not [name for _, name in own_objects(engine) if name.startswith("dbrewind_b1_")]


def test_layers_on_a_foreign_key_cycle_with_foreign_keys_on(db_url: URL, engine: Engine) -> None:
    def setup(conn: Connection) -> None:
        conn.exec_driver_sql(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id) "
            "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id) "
            "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED)"
        )
        conn.exec_driver_sql("INSERT INTO a VALUES (1, 1)")
        conn.exec_driver_sql("INSERT INTO b VALUES (1, 1)")

    fk_engine = create_engine(db_url)
    event.listen(
        fk_engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA foreign_keys = ON")
    )
    with Rewinder(db_url, engine=fk_engine) as rewinder:
        rewinder.prepare(setup)
        run(fk_engine, "INSERT INTO a VALUES (2, 2)", "INSERT INTO b VALUES (2, 2)")
        assert push(rewinder) == ("a", "b")
        # a test deletes a parent: the cascade empties the cycle
        run(fk_engine, "DELETE FROM a WHERE id = 1")
        assert rows(engine, "SELECT * FROM b ORDER BY id") == [(2, 2)]
        rewinder.rewind()
        assert rows(engine, "SELECT * FROM a ORDER BY id") == [(1, 1), (2, 2)]
        assert rows(engine, "SELECT * FROM b ORDER BY id") == [(1, 1), (2, 2)]
        # only a is dirty: popping it must not cascade into b, which the layer holds
        run(fk_engine, "UPDATE a SET b_id = 1 WHERE id = 2")
        result = pop(rewinder, 0)
        assert result.tables == ("a", "b")
        assert rows(engine, "SELECT * FROM a") == [(1, 1)]
        assert rows(engine, "SELECT * FROM b") == [(1, 1)]
        assert rows(engine, "PRAGMA foreign_key_check") == []
        with rewinder.connection() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    fk_engine.dispose()


def test_a_layer_over_a_table_whose_baseline_was_empty(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)  # empty_log: no rows, no counter yet
    run(engine, "INSERT INTO empty_log (msg) VALUES ('a'), ('b')")
    assert push(rewinder) == ("empty_log",)
    run(engine, "DELETE FROM empty_log", "INSERT INTO empty_log (msg) VALUES ('test')")
    rewinder.rewind()
    assert rows(engine, "SELECT * FROM empty_log") == [(1, "a"), (2, "b")]
    run(engine, "INSERT INTO empty_log (msg) VALUES ('c')")
    assert rows(engine, "SELECT id FROM empty_log WHERE msg = 'c'") == [(3,)]
    pop(rewinder, 0)
    assert rows(engine, "SELECT count(*) FROM empty_log") == [(0,)]
    run(engine, "INSERT INTO empty_log (msg) VALUES ('first')")
    assert rows(engine, "SELECT id FROM empty_log") == [(1,)]


def test_popping_several_layers_that_hold_one_table_gives_back_the_lowest(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    base = rows(engine, 'SELECT * FROM "Order" ORDER BY id')
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('layer 1')""")
    assert push(rewinder) == ("Order",)
    first = rows(engine, 'SELECT * FROM "Order" ORDER BY id')
    for depth in (2, 3):
        run(engine, f"""INSERT INTO "Order" ("Customer Name") VALUES ('layer {depth}')""")
        assert push(rewinder) == ("Order",)
    assert installation_of(rewinder).depth == 3
    assert pop(rewinder, 1).tables == ("Order",)
    assert rows(engine, 'SELECT * FROM "Order" ORDER BY id') == first
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('layer 2 again')""")
    push(rewinder)
    assert pop(rewinder, 0).tables == ("Order",)
    assert rows(engine, 'SELECT * FROM "Order" ORDER BY id') == base
    assert not [n for _, n in own_objects(engine) if re.match(r"dbrewind_b\d", n)]


def test_a_layer_that_emptied_a_table_pops_back_to_its_rows(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    base = rows(engine, 'SELECT * FROM "Order" ORDER BY id')
    run(engine, 'DELETE FROM "Order"')
    assert push(rewinder) == ("Order",)  # an empty capture: no copy, no DDL
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('test')""")
    rewinder.rewind()
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(0,)]
    assert pop(rewinder, 0).tables == ("Order",)  # not marked, but its layer is popped
    assert rows(engine, 'SELECT * FROM "Order" ORDER BY id') == base


def test_push_and_pop_leave_the_next_clean_rewind_at_a_single_query(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('layer')""")
    push(rewinder)  # its copy is DDL of dbrewind's own
    result, statements = count_statements(rewinder)
    assert (result.clean, statements) == (True, 1)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('test')""")
    pop(rewinder, 0)
    result, statements = count_statements(rewinder)
    assert (result.clean, statements) == (True, 1)


def test_pushes_and_pops_are_idempotent_and_checked(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    fresh = own_objects(engine)
    assert push(rewinder) == ()
    assert push(rewinder) == ()
    assert pop(rewinder, 0).clean
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('one')""")
    assert push(rewinder) == ("Order",)
    assert push(rewinder) == ()
    with pytest.raises(ConfigurationError, match=r"depth 2: it has 1 layer.*from 0 to 1"):
        pop(rewinder, 2)
    with pytest.raises(ConfigurationError, match="depth -1"):
        pop(rewinder, -1)
    assert installation_of(rewinder).depth == 1
    assert pop(rewinder, 1).clean  # the current depth: a plain rewind
    assert pop(rewinder, 0).tables == ("Order",)
    assert pop(rewinder, 0).clean
    assert own_objects(engine) == fresh
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]


def test_install_and_uninstall_remove_layers_and_their_copies(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    fresh = own_objects(engine)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('one')""")
    push(rewinder)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('two')""")
    push(rewinder)
    assert [n for _, n in own_objects(engine) if n.startswith(("dbrewind_b1_", "dbrewind_b2_"))]
    rewinder.install()  # the rows as they are become depth 0
    assert own_objects(engine) == fresh
    assert installation_of(rewinder).depth == 0
    rewinder.uninstall()
    assert own_objects(engine) == [("table", "dbrewind_meta")]


def test_a_failed_push_leaves_the_previous_state(
    rewinder: Rewinder, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbrewind.dialects.sqlite import rewind as module

    rewinder.prepare(shop_setup)
    before = own_objects(engine)
    run(
        engine,
        """INSERT INTO "Order" ("Customer Name") VALUES ('one')""",
        "INSERT INTO empty_log (msg) VALUES ('one')",
    )
    real = module._capture_baseline
    calls: list[str] = []

    def fail_second(conn: Connection, table: Any, *args: Any) -> Any:
        calls.append(table.name)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error (simulated)")
        return real(conn, table, *args)

    monkeypatch.setattr(module, "_capture_baseline", fail_second)
    with pytest.raises(sqlite3.OperationalError, match="simulated"):
        push(rewinder)
    monkeypatch.undo()
    assert own_objects(engine) == before
    found = installation_of(rewinder)
    assert (found.depth, found.dirty) == (0, ("Order", "empty_log"))
    assert push(rewinder) == ("Order", "empty_log")


def test_a_failed_pop_leaves_the_layers(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(shop_setup)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('one')""")
    push(rewinder)
    # the layer's copy no longer fits the table: the pop cannot put the baseline back
    run(engine, 'ALTER TABLE "Order" DROP COLUMN "Customer Name"')
    with pytest.raises(SchemaChangedError, match="'Order'"):
        pop(rewinder, 0)
    assert installation_of(rewinder).depth == 1
    run(engine, """ALTER TABLE "Order" ADD COLUMN "Customer Name" TEXT""")
    assert pop(rewinder, 0).tables == ("Order",)
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]


def test_push_captures_a_table_recreated_since_the_last_rewind(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    run(
        engine,
        'DROP TABLE "user"',
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, order_id INTEGER, note TEXT)',
        """INSERT INTO "user" VALUES (5, 1, 'migrated')""",
        "CREATE TABLE scratch (x INTEGER)",
    )
    assert push(rewinder) == ("user",)
    run(engine, """UPDATE "user" SET note = 'test'""")
    assert rewinder.dirty_tables() == ["user"]  # tracked again
    with rewinder.connection() as conn:
        result = rewinder.dialect.rewind(conn)
    assert result.created_tables == ("scratch",)  # still reported after the push
    assert rows(engine, 'SELECT * FROM "user"') == [(5, 1, "migrated")]
    pop(rewinder, 0)
    assert rows(engine, 'SELECT * FROM "user" ORDER BY id') == [(1, 1, "first"), (2, 2, "second")]


def test_a_clone_carries_layers_and_state(
    rewinder: Rewinder, engine: Engine, tmp_path: Path
) -> None:
    rewinder.prepare(shop_setup)
    run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('layer')""")
    push(rewinder)
    with rewinder.connection() as conn:
        rewinder.dialect.write_state(conn, {"fingerprint": "f00"})
    rewinder.close()
    clone_url = parse_url(f"sqlite:///{tmp_path / 'clone_test.db'}")
    SQLiteDialect().create_database(clone_url, template=rewinder.url)
    with Rewinder(clone_url) as clone:
        found = installation_of(clone)
        assert (found.depth, dict(found.state), found.intact) == (1, {"fingerprint": "f00"}, True)
        pop(clone, 0)
        clone_engine = create_engine(clone_url.url)
        assert rows(clone_engine, 'SELECT count(*) FROM "Order"') == [(3,)]
        clone_engine.dispose()
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(4,)]  # the template keeps its own


def test_layers_and_state_on_a_shared_in_memory_database() -> None:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    with Rewinder("sqlite://", engine=engine) as rewinder:
        rewinder.prepare(shop_setup)
        run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('layer')""")
        assert push(rewinder) == ("Order",)
        with rewinder.connection() as conn:
            rewinder.dialect.write_state(conn, {"holder": "me"})
        found = installation_of(rewinder)
        assert (found.depth, dict(found.state), found.intact) == (1, {"holder": "me"}, True)
        run(engine, """INSERT INTO "Order" ("Customer Name") VALUES ('test')""")
        rewinder.rewind()
        assert rows(engine, 'SELECT count(*) FROM "Order"') == [(4,)]
        assert pop(rewinder, 0).tables == ("Order",)
        assert rows(engine, 'SELECT count(*) FROM "Order"') == [(3,)]
    engine.dispose()


# ------------------------------------------------------------------------ locks
def test_lock_files_sit_beside_the_database_and_name_their_holder(tmp_path: Path) -> None:
    dialect = SQLiteDialect()
    url = parse_url(f"sqlite:///{tmp_path / 'app_test.db'}")
    lock = dialect.acquire_lock(url, "lease", wait=0)
    assert lock is not None
    try:
        path = tmp_path / "app_test.db-dbrewind-lease.lock"
        assert lock.name == str(path)
        me = f"{os.getpid()}@{socket.gethostname()}"
        assert path.read_text() == me
        assert dialect.lock_holder(url, "lease") == f"dbrewind {me}, lock file {path}"
        assert dialect.lock_holder(url, "build") is None
    finally:
        lock.release()
    assert dialect.lock_holder(url, "lease") is None
    assert path.exists()  # never deleted
    assert path.read_text() == ""


def test_drop_database_leaves_lock_files_and_a_held_lock_holds(tmp_path: Path) -> None:
    dialect = SQLiteDialect()
    url = parse_url(f"sqlite:///{tmp_path / 'app_test.db'}")
    dialect.create_database(url)
    lock = dialect.acquire_lock(url, "build", wait=0)
    assert lock is not None
    try:
        dialect.drop_database(url)
        assert sorted(os.listdir(tmp_path)) == ["app_test.db-dbrewind-build.lock"]
        dialect.create_database(url)
        assert dialect.acquire_lock(url, "build", wait=0) is None
    finally:
        lock.release()


def test_locks_fall_back_to_the_temporary_directory_when_the_database_directory_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locks_tmp = tmp_path / "tmp"
    locks_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(locks_tmp))
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.access(read_only, os.W_OK):  # root ignores the mode: refuse as the kernel would
        real_open = os.open

        def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if os.path.dirname(os.fspath(path)) == str(read_only) and flags & os.O_CREAT:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
    dialect = SQLiteDialect()
    url = parse_url(f"sqlite:///{read_only / 'app_test.db'}")
    try:
        lock = dialect.acquire_lock(url, "lease", wait=0)
        assert lock is not None
        try:
            assert os.listdir(read_only) == []
            assert Path(lock.name).parent == locks_tmp / "dbrewind-locks"
            assert dialect.acquire_lock(url, "lease", wait=0) is None
            holder = dialect.lock_holder(url, "lease")
            assert holder is not None
            assert f"{os.getpid()}@" in holder
            other = dialect.acquire_lock(url, "build", wait=0)
            assert other is not None
            assert other.name != lock.name
            other.release()
        finally:
            lock.release()
        assert dialect.lock_holder(url, "lease") is None
    finally:
        read_only.chmod(0o755)


def test_lock_file_names_are_safe_for_any_purpose(tmp_path: Path) -> None:
    dialect = SQLiteDialect()
    url = parse_url(f"sqlite:///{tmp_path / 'app_test.db'}")
    odd = dialect.acquire_lock(url, "../x y", wait=0)
    similar = dialect.acquire_lock(url, "../x_y", wait=0)
    assert odd is not None
    assert similar is not None
    try:
        assert os.path.dirname(odd.name) == str(tmp_path)
        assert odd.name != similar.name
    finally:
        odd.release()
        similar.release()


def test_an_in_memory_database_lock_is_always_granted() -> None:
    dialect = SQLiteDialect()
    memory = parse_url("sqlite://")
    first = dialect.acquire_lock(memory, "lease", wait=0)
    second = dialect.acquire_lock(memory, "lease", wait=0)
    assert first is not None
    assert second is not None
    assert dialect.lock_holder(memory, "lease") is None
    first.release()
    second.release()


def test_a_lock_wait_of_zero_tries_once(tmp_path: Path) -> None:
    dialect = SQLiteDialect()
    url = parse_url(f"sqlite:///{tmp_path / 'app_test.db'}")
    held = dialect.acquire_lock(url, "build", wait=0)
    assert held is not None
    started = time.monotonic()
    try:
        assert dialect.acquire_lock(url, "build", wait=0) is None
        assert time.monotonic() - started < 0.04
    finally:
        held.release()


# ---------------------------------------------------------------- list databases
def test_list_databases_leaves_out_companions_locks_and_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = SQLiteDialect()
    for name in ("app_test_tmpl_a.db", "app_test_tmpl_b.db", "other_test.db"):
        dialect.create_database(parse_url(f"sqlite:///{tmp_path / name}"))
    (tmp_path / "app_test_tmpl_empty.db").write_bytes(b"")  # an empty file is a database
    (tmp_path / "app_test_tmpl_notes.txt").write_text("not a database")
    (tmp_path / "app_test_tmpl_dir").mkdir()
    for suffix in ("-wal", "-shm", "-journal"):
        (tmp_path / f"app_test_tmpl_a.db{suffix}").write_bytes(b"")
    url = parse_url(f"sqlite:///{tmp_path / 'app_test.db'}")
    lock = dialect.acquire_lock(
        parse_url(f"sqlite:///{tmp_path / 'app_test_tmpl_a.db'}"), "x", wait=0
    )
    assert lock is not None
    lock.release()
    expected = [str(tmp_path / n) for n in ("app_test_tmpl_a.db", "app_test_tmpl_b.db")]
    expected.insert(2, str(tmp_path / "app_test_tmpl_empty.db"))
    assert dialect.list_databases(url, "app_test_tmpl_") == sorted(expected)
    # the form of url.database: relative stays relative, a file: URI stays one
    monkeypatch.chdir(tmp_path)
    assert dialect.list_databases(parse_url("sqlite:///app_test.db"), "app_test_tmpl_b") == [
        "app_test_tmpl_b.db"
    ]
    uri = parse_url(f"sqlite:///file:{tmp_path / 'app_test.db'}?mode=rwc&uri=true")
    assert uri.database == f"file:{tmp_path / 'app_test.db'}"  # the query is the URL's
    assert dialect.list_databases(uri, "app_test_tmpl_b") == [
        f"file:{tmp_path / 'app_test_tmpl_b.db'}"
    ]
    assert dialect.list_databases(parse_url(f"sqlite:///{tmp_path / 'no' / 'x.db'}"), "") == []
    assert dialect.list_databases(parse_url("sqlite://"), "") == []
