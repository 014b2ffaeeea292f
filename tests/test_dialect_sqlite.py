"""The SQLite dialect against real SQLite files (and a shared in-memory database)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from dbrewind import (
    ConfigurationError,
    DbrewindError,
    LockTimeoutError,
    NotPreparedError,
    Rewinder,
    RewindResult,
    SchemaChangedError,
    parse_url,
)
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


def test_a_table_recreated_with_other_columns_raises_schema_changed(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(shop_setup)
    run(
        engine,
        """INSERT INTO "Order" ("Customer Name") VALUES ('new')""",
        'DROP TABLE "user"',
        'CREATE TABLE "user" (only_column TEXT)',
    )
    with pytest.raises(SchemaChangedError, match=r"'user'.*prepare the database again"):
        rewinder.rewind()
    # the failed rewind rolled back as a whole: "Order" still holds the new row and its mark
    assert rows(engine, 'SELECT count(*) FROM "Order"') == [(4,)]
    assert rewinder.dirty_tables() == ["Order"]


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
        # the connection's own busy timeout (5 s by default) is back
        with rewinder.connection() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


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
    with pytest.raises(DbrewindError, match="already exists"):
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
