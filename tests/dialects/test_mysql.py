"""The MySQL/MariaDB dialect against a real MariaDB server."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import OperationalError

from dbrewind import Rewinder
from dbrewind._url import parse_url
from dbrewind.dialects import Installation, RewindResult
from dbrewind.dialects import mysql as mysql_dialect
from dbrewind.dialects.mysql import MARKS_TABLE, MySQLDialect
from dbrewind.dialects.mysql import rewind as mysql_rewind
from dbrewind.exceptions import (
    ConfigurationError,
    DatabaseCreationError,
    DbrewindError,
    LockTimeoutError,
    NotPreparedError,
    SchemaChangedError,
)

pytestmark = pytest.mark.parametrize("backend", ["mysql"], indirect=True)

LONG = "a_table_name_that_is_sixty_characters_long_for_the_limit_ok"
assert len(LONG) == 59
ODD = "`odd``s 'name' 100%%`"
"""A table name with a backtick, quotes and a percent sign, as driver-level SQL writes it
(``%%``: PyMySQL %-formats statements)."""


def ddl(conn: Connection, *statements: str) -> None:
    for statement in statements:
        conn.exec_driver_sql(statement)


def rows(engine: Engine, table: str, order: str = "1") -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return rows_in(conn, table, order)


def rows_in(conn: Connection, table: str, order: str = "1") -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")]


def next_id(engine: Engine, table: str, column: str = "`v`") -> int:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO {table} ({column}) VALUES ('probe')")
        return int(conn.exec_driver_sql("SELECT LAST_INSERT_ID()").scalar_one())


def basic_schema(conn: Connection) -> None:
    ddl(
        conn,
        "CREATE TABLE `order` (`id` INT AUTO_INCREMENT PRIMARY KEY, `v` VARCHAR(20))",
        "CREATE TABLE `seed` (`k` VARCHAR(10) PRIMARY KEY, `n` INT)",
        "CREATE TABLE `log` (`id` INT AUTO_INCREMENT PRIMARY KEY, `v` VARCHAR(20))",
        "INSERT INTO `seed` VALUES ('a', 1), ('b', 2)",
        "INSERT INTO `order` (`v`) VALUES ('o1'), ('o2')",
    )


@pytest.fixture
def rewinder(db_url: URL) -> Iterator[Rewinder]:
    # "always": much of this module is about putting AUTO_INCREMENT counters back, which
    # the default ("auto") does on MySQL/MariaDB only for the tests that ask
    r = Rewinder(db_url, reset_sequences="always")
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def basic(rewinder: Rewinder, engine: Engine) -> Rewinder:
    rewinder.prepare(basic_schema)
    return rewinder


# ------------------------------------------------------------------ rewinding


def test_rewind_restores_inserted_updated_and_deleted_rows_to_the_baseline(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(
            conn,
            "INSERT INTO `order` (`v`) VALUES ('o3')",
            "UPDATE `seed` SET `n` = 99 WHERE `k` = 'a'",
            "DELETE FROM `seed` WHERE `k` = 'b'",
        )
    assert basic.dirty_tables() == ["order", "seed"]
    result = basic.rewind()
    assert result.tables == ("order", "seed")
    assert result.deleted == {"order": 3, "seed": 1}
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]
    assert basic.dirty_tables() == []
    assert basic.rewind().clean


def test_counter_goes_back_to_the_baseline_value_when_the_baseline_has_rows(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3'), ('o4')")
    basic.rewind()
    assert next_id(engine, "`order`") == 3


@pytest.mark.parametrize("background", [True, False], ids=["background", "in-call"])
def test_empty_table_whose_counter_moved_is_truncated_back_to_counter_one(
    basic: Rewinder, engine: Engine, background: bool
) -> None:
    basic.dialect.background_counter_reset = background  # type: ignore[attr-defined]
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `log` (`v`) VALUES ('x'), ('y')")
    result = basic.rewind()
    assert result.truncated == frozenset({"log"})
    assert result.deleted == {"log": -1}
    assert rows(engine, "`log`") == []
    assert next_id(engine, "`log`") == 1


@pytest.mark.parametrize("background", [True, False], ids=["background", "in-call"])
def test_a_seeded_table_gets_its_rows_and_then_its_counter_back(
    basic: Rewinder, engine: Engine, background: bool
) -> None:
    basic.dialect.background_counter_reset = background  # type: ignore[attr-defined]
    with engine.begin() as conn:
        ddl(
            conn,
            "INSERT INTO `log` (`v`) VALUES ('x'), ('y')",
            "INSERT INTO `order` (`v`) VALUES ('o3')",
        )
    result = basic.rewind()
    assert result.truncated == frozenset({"log"})
    assert result.deleted == {"log": -1, "order": 3}
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert next_id(engine, "`order`") == 3
    assert next_id(engine, "`log`") == 1
    basic.rewind()
    assert basic.dirty_tables() == []


@pytest.fixture
def slow_reset(basic: Rewinder, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> float:
    """Make the background counter reset start 0.4 s late (a procedure that sleeps first)."""
    delay = 0.4
    with engine.begin() as conn:
        ddl(
            conn,
            "CREATE PROCEDURE `slow_reset`(IN p LONGTEXT) BEGIN "
            f"DO SLEEP({delay}); CALL `{mysql_dialect.RESET_PROCEDURE}`(p); END",
        )
    monkeypatch.setattr(mysql_rewind, "_RESET_SQL", "CALL `slow_reset`(%s)")
    return delay


def test_a_table_whose_counter_is_being_reset_is_locked_until_it_is_back(
    basic: Rewinder, engine: Engine, slow_reset: float
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3'), ('o4')")
    started = time.perf_counter()
    basic.rewind()
    returned = time.perf_counter() - started
    assert returned < slow_reset / 2  # the rewind did not wait for the DDL
    # another session, at once: a snapshot taken before the ALTER ends, then the
    # locked table (waits for the lock; ALTER keeps the definition: no error 1412)
    with engine.connect() as conn:
        assert rows_in(conn, "`seed`") == [("a", 1), ("b", 2)]
        assert rows_in(conn, "`order`") == [(1, "o1"), (2, "o2")]
        waited = time.perf_counter() - started
        conn.exec_driver_sql("INSERT INTO `order` (`v`) VALUES ('next')")
        assert conn.exec_driver_sql("SELECT LAST_INSERT_ID()").scalar_one() == 3
        conn.rollback()
    assert waited >= slow_reset * 0.9
    assert basic.dirty_tables() == []  # waits for the reset, which cleared the marks


def test_close_waits_for_the_background_reset(
    basic: Rewinder, engine: Engine, slow_reset: float
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `log` (`v`) VALUES ('x')")
    basic.rewind()
    basic.close()
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{MARKS_TABLE}`").scalar_one() == 0
    assert next_id(engine, "`log`") == 1


def test_a_transaction_left_open_on_a_table_to_lock_fails_the_rewind_after_lock_timeout(
    db_url: URL, engine: Engine
) -> None:
    with Rewinder(db_url, lock_timeout=1, reset_sequences="always") as r:
        r.prepare(basic_schema)
        with engine.begin() as conn:
            ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3')")
        with engine.connect() as leaked:  # read `order` and stayed in the transaction
            assert len(rows_in(leaked, "`order`")) == 3
            # rows go back in the CALL (a read takes no row lock); the counter's
            # LOCK TABLES waits for the reader's metadata lock
            with pytest.raises(LockTimeoutError, match=r"waited more than 1 s .*id \d+, Sleep"):
                r.rewind()
            assert r.dirty_tables() == ["order"]  # still marked
            leaked.rollback()
        r.rewind()
        assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
        assert next_id(engine, "`order`") == 3


def test_a_failed_background_reset_is_reported_and_the_next_rewind_does_it_again(
    basic: Rewinder, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        ddl(
            conn,
            "CREATE PROCEDURE `failing_reset`(IN p LONGTEXT) BEGIN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'disk full'; END",
            "INSERT INTO `order` (`v`) VALUES ('o3')",
        )
    monkeypatch.setattr(mysql_rewind, "_RESET_SQL", "CALL `failing_reset`(%s)")
    basic.rewind()  # rows are back; the counter reset fails after it returned
    with pytest.raises(DbrewindError, match=r"counters of `order` back .*disk full"):
        basic.dirty_tables()
    assert basic.dirty_tables() == ["order"]  # still marked, and the table is not locked
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    monkeypatch.undo()
    result = basic.rewind()
    assert result.tables == ("order",)
    assert next_id(engine, "`order`") == 3


def test_reset_sequences_false_deletes_rows_but_keeps_counters(db_url: URL, engine: Engine) -> None:
    with Rewinder(db_url, reset_sequences=False) as r:
        r.prepare(basic_schema)
        with engine.begin() as conn:
            ddl(
                conn,
                "INSERT INTO `log` (`v`) VALUES ('x')",
                "INSERT INTO `order` (`v`) VALUES ('z')",
            )
        result = r.rewind()
        assert result.truncated == frozenset()
        assert result.deleted == {"log": 1, "order": 3}
        assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
        assert next_id(engine, "`log`") == 2
        assert next_id(engine, "`order`") == 4


def test_tables_named_for_truncate_are_truncated_and_refilled(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(conn, "UPDATE `seed` SET `n` = 0", "INSERT INTO `order` (`v`) VALUES ('o3')")
    with basic.connection() as conn:
        result = MySQLDialect().rewind(conn, truncate=frozenset({"seed", "order"}))
    assert result.truncated == frozenset({"seed", "order"})
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert next_id(engine, "`order`") == 3


def test_large_deletes_switch_the_table_to_truncate_on_later_rewinds(
    db_url: URL, engine: Engine
) -> None:
    with Rewinder(db_url, truncate_threshold=5) as r:
        r.prepare(basic_schema)
        for _ in range(2):
            with engine.begin() as conn:
                ddl(
                    conn,
                    "INSERT INTO `seed` VALUES " + ", ".join(f"('k{i}', {i})" for i in range(8)),
                )
            result = r.rewind()
        assert result.truncated == frozenset({"seed"})
        assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]


def test_nothing_dirty_rewind_is_clean_and_touches_no_table(basic: Rewinder) -> None:
    result = basic.rewind()
    assert result.clean
    assert result.deleted == {}


def test_rolled_back_write_leaves_no_mark_and_the_next_write_in_that_session_marks_again(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.connect() as conn:
        trans = conn.begin()
        conn.exec_driver_sql("INSERT INTO `order` (`v`) VALUES ('gone')")
        trans.rollback()
        assert basic.dirty_tables() == []
        with conn.begin():
            conn.exec_driver_sql("INSERT INTO `order` (`v`) VALUES ('kept')")
    assert basic.dirty_tables() == ["order"]


def test_a_bulk_insert_of_2000_rows_writes_one_mark(basic: Rewinder, engine: Engine) -> None:
    values = ", ".join(f"('r{i}')" for i in range(2000))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO `log` (`v`) VALUES {values}")
        conn.exec_driver_sql("UPDATE `log` SET `v` = 'u'")
        marks = conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{MARKS_TABLE}`").scalar_one()
    assert marks == 2  # one per statement, not per row


def test_concurrent_uncommitted_writers_to_one_table_do_not_wait_for_each_other(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.connect() as first, engine.connect() as second:
        for conn in (first, second):
            conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")  # autobegins
        first.exec_driver_sql("INSERT INTO `log` (`v`) VALUES ('one')")
        first.exec_driver_sql("UPDATE `seed` SET `n` = 5 WHERE `k` = 'a'")
        started = time.perf_counter()
        second.exec_driver_sql("INSERT INTO `log` (`v`) VALUES ('two')")
        second.exec_driver_sql("UPDATE `seed` SET `n` = 6 WHERE `k` = 'b'")
        assert time.perf_counter() - started < 0.5
        first.commit()
        second.commit()
    assert basic.dirty_tables() == ["log", "seed"]
    basic.rewind()
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]


def test_writes_from_another_thread_during_a_test_are_all_rewound(
    basic: Rewinder, engine: Engine
) -> None:
    def writer(n: int) -> None:
        with engine.begin() as conn:
            for i in range(20):
                conn.exec_driver_sql(f"INSERT INTO `log` (`v`) VALUES ('t{n}-{i}')")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert basic.rewind().tables == ("log",)
    assert rows(engine, "`log`") == []


# ------------------------------------------------------------ names and shapes


def awkward_schema(conn: Connection) -> None:
    ddl(
        conn,
        "CREATE TABLE `Mixed Case` (`id` INT AUTO_INCREMENT PRIMARY KEY, `Select` VARCHAR(20))",
        "CREATE TABLE `it's` (`id` INT PRIMARY KEY, `back``tick` INT)",
        "CREATE TABLE `back\\slash` (`id` INT PRIMARY KEY)",
        f"CREATE TABLE `{LONG}` (`id` INT AUTO_INCREMENT PRIMARY KEY, `v` INT)",
        f"CREATE TABLE `{LONG[:-1]}x` (`id` INT AUTO_INCREMENT PRIMARY KEY, `v` INT)",
        "CREATE TABLE `user` (`id` INT PRIMARY KEY, `total` INT, "
        "`double` INT AS (`total` * 2) VIRTUAL, `triple` INT AS (`total` * 3) STORED)",
        "INSERT INTO `Mixed Case` (`Select`) VALUES ('m')",
        "INSERT INTO `it's` VALUES (1, 10)",
        "INSERT INTO `back\\slash` VALUES (7)",
        "INSERT INTO `user` (`id`, `total`) VALUES (1, 5)",
        # seeded, with a counter: its counter goes back by ALTER behind LOCK TABLES
        f"CREATE TABLE {ODD} (`id` INT AUTO_INCREMENT PRIMARY KEY, `v` VARCHAR(20))",
        f"INSERT INTO {ODD} (`v`) VALUES ('one')",
    )


def test_reserved_quoted_mixed_case_and_long_names_are_tracked_and_rewound(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(awkward_schema)
    with engine.begin() as conn:
        ddl(
            conn,
            "INSERT INTO `Mixed Case` (`Select`) VALUES ('n')",
            "UPDATE `it's` SET `back``tick` = 11",
            "DELETE FROM `back\\slash`",
            f"INSERT INTO `{LONG}` (`v`) VALUES (1)",
            f"INSERT INTO `{LONG[:-1]}x` (`v`) VALUES (1)",
            "UPDATE `user` SET `total` = 6",
            f"INSERT INTO {ODD} (`v`) VALUES ('two'), ('three')",
        )
    expected = sorted(
        ["Mixed Case", "it's", "back\\slash", LONG, LONG[:-1] + "x", "user", "odd`s 'name' 100%"]
    )
    assert rewinder.dirty_tables() == expected
    assert rewinder.rewind().tables == tuple(expected)
    assert rows(engine, "`Mixed Case`") == [(1, "m")]
    assert rows(engine, "`it's`") == [(1, 10)]
    assert rows(engine, "`back\\slash`") == [(7,)]
    assert rows(engine, f"`{LONG}`") == []
    assert rows(engine, "`user`") == [(1, 5, 10, 15)]
    assert next_id(engine, "`Mixed Case`", "`Select`") == 2
    assert rows(engine, ODD) == [(1, "one")]
    assert next_id(engine, ODD, "`v`") == 2


def test_tracking_object_names_fit_in_64_characters_and_do_not_collide(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(awkward_schema)
    with engine.connect() as conn:
        triggers = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE()"
            )
        ]
    assert len(triggers) == 3 * 7
    assert len(set(triggers)) == len(triggers)
    assert all(len(t) <= 64 and t.startswith("dbrewind_") for t in triggers)


def test_cascaded_deletes_and_fk_cycles_are_rewound(rewinder: Rewinder, engine: Engine) -> None:
    def schema(conn: Connection) -> None:
        ddl(
            conn,
            "CREATE TABLE `parent` (`id` INT PRIMARY KEY, `fav` INT NULL)",
            "CREATE TABLE `child` (`id` INT PRIMARY KEY, `p` INT NOT NULL, "
            "FOREIGN KEY (`p`) REFERENCES `parent` (`id`) ON DELETE CASCADE)",
            "CREATE TABLE `grandchild` (`id` INT PRIMARY KEY, `c` INT NULL, "
            "FOREIGN KEY (`c`) REFERENCES `child` (`id`) ON DELETE SET NULL)",
            "ALTER TABLE `parent` ADD FOREIGN KEY (`fav`) REFERENCES `child` (`id`)",
            "INSERT INTO `parent` VALUES (1, NULL)",
            "INSERT INTO `child` VALUES (10, 1)",
            "INSERT INTO `grandchild` VALUES (100, 10)",
            "UPDATE `parent` SET `fav` = 10",
        )

    rewinder.prepare(schema)
    with engine.begin() as conn:
        ddl(
            conn, "SET FOREIGN_KEY_CHECKS = 0", "DELETE FROM `parent`", "SET FOREIGN_KEY_CHECKS = 1"
        )
        ddl(conn, "INSERT INTO `parent` VALUES (2, NULL)")
    with engine.begin() as conn:
        ddl(conn, "DELETE FROM `parent` WHERE `id` = 2")
    assert rewinder.dirty_tables() == ["child", "grandchild", "parent"]
    rewinder.rewind()
    assert rows(engine, "`parent`") == [(1, 10)]
    assert rows(engine, "`child`") == [(10, 1)]
    assert rows(engine, "`grandchild`") == [(100, 10)]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@FOREIGN_KEY_CHECKS").scalar_one() == 1


def test_a_cascade_from_a_parent_rewinds_the_child_that_no_trigger_saw(
    rewinder: Rewinder, engine: Engine
) -> None:
    def schema(conn: Connection) -> None:
        ddl(
            conn,
            "CREATE TABLE `p` (`id` INT PRIMARY KEY)",
            "CREATE TABLE `c` (`id` INT PRIMARY KEY, `p` INT, "
            "FOREIGN KEY (`p`) REFERENCES `p` (`id`) ON DELETE CASCADE)",
            "INSERT INTO `p` VALUES (1)",
            "INSERT INTO `c` VALUES (1, 1)",
        )

    rewinder.prepare(schema)
    with engine.begin() as conn:
        ddl(conn, "DELETE FROM `p`")
    assert rows(engine, "`c`") == []
    rewinder.rewind()
    assert rows(engine, "`c`") == [(1, 1)]


def test_user_triggers_keep_working_beside_the_tracking_triggers(
    rewinder: Rewinder, engine: Engine
) -> None:
    def schema(conn: Connection) -> None:
        ddl(
            conn,
            "CREATE TABLE `a` (`id` INT PRIMARY KEY)",
            "CREATE TABLE `audit` (`n` INT)",
            "CREATE TRIGGER `a_audit` AFTER INSERT ON `a` FOR EACH ROW "
            "INSERT INTO `audit` VALUES (NEW.`id`)",
        )

    rewinder.prepare(schema)
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `a` VALUES (5)")
    assert rows(engine, "`audit`") == [(5,)]
    assert rewinder.dirty_tables() == ["a", "audit"]
    rewinder.rewind()
    assert rows(engine, "`audit`") == []


# ------------------------------------------------------- created/dropped tables


def test_created_and_dropped_tables_are_reported_and_the_rest_rewound(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3')", "INSERT INTO `log` (`v`) VALUES ('x')")
        ddl(conn, "CREATE TABLE `made_by_test` (`id` INT)", "DROP TABLE `log`")
    with pytest.raises(SchemaChangedError, match="'log'"):
        basic.rewind()
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    with basic.connection() as conn:
        result = MySQLDialect().rewind(conn)
    assert result.created_tables == ("made_by_test",)
    assert result.dropped_tables == ("log",)
    assert result.tables == ()


def test_created_tables_are_dropped_when_asked(db_url: URL, engine: Engine) -> None:
    with Rewinder(db_url, drop_created_tables=True) as r:
        r.prepare(basic_schema)
        with engine.begin() as conn:
            ddl(conn, "CREATE TABLE `scratch` (`id` INT)")
        assert r.rewind().created_tables == ("scratch",)
        assert r.rewind().clean


@pytest.mark.parametrize(
    ("statements", "created", "dropped"),
    [
        (["CREATE TABLE `made_elsewhere` (`id` INT)"], ("made_elsewhere",), ()),
        (["CREATE TABLE `copy` LIKE `order`"], ("copy",), ()),
        (["DROP TABLE `seed`"], (), ("seed",)),
        (["DROP TABLE `log`"], (), ("log",)),
        (["RENAME TABLE `seed` TO `seed_renamed`"], ("seed_renamed",), ("seed",)),
        (["ALTER TABLE `log` RENAME TO `log_renamed`"], ("log_renamed",), ("log",)),
    ],
    ids=["create", "create-like", "drop-seeded", "drop", "rename-seeded", "alter-rename"],
)
def test_ddl_by_another_connection_after_clean_checks_is_seen_by_the_next_rewind(
    basic: Rewinder,
    engine: Engine,
    statements: list[str],
    created: tuple[str, ...],
    dropped: tuple[str, ...],
) -> None:
    for _ in range(3):  # dbrewind's session has run the clean check before
        assert basic.rewind().clean
    with engine.connect() as other:
        for statement in statements:
            other.exec_driver_sql(statement)
    with basic.connection() as conn:
        result = MySQLDialect().rewind(conn)
        assert (result.created_tables, result.dropped_tables) == (created, dropped)
        again = MySQLDialect().rewind(conn)  # nothing undone the change: reported again
        assert (again.created_tables, again.dropped_tables) == (created, dropped)


def test_a_truncate_by_another_connection_after_clean_checks_is_restored(
    basic: Rewinder, engine: Engine
) -> None:
    assert basic.rewind().clean
    with engine.connect() as other:
        other.exec_driver_sql("TRUNCATE TABLE `seed`")
    assert basic.rewind().tables == ("seed",)
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]
    assert basic.rewind().clean


def test_a_column_dropped_by_a_test_raises_schema_changed(basic: Rewinder, engine: Engine) -> None:
    with engine.begin() as conn:
        ddl(conn, "UPDATE `seed` SET `n` = 3", "ALTER TABLE `seed` DROP COLUMN `n`")
    with pytest.raises(SchemaChangedError, match="changed shape"):
        basic.rewind()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@FOREIGN_KEY_CHECKS").scalar_one() == 1


# ---------------------------------------------------------- install lifecycle


def test_install_is_idempotent_and_uninstall_removes_every_tracking_object(
    basic: Rewinder, engine: Engine
) -> None:
    basic.install()
    basic.install()
    dialect = MySQLDialect()

    def leftovers(conn: Connection) -> int:
        return int(
            conn.exec_driver_sql(
                "SELECT (SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'dbrewind%%') + "
                "(SELECT COUNT(*) FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE()) + "
                "(SELECT COUNT(*) FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = DATABASE())"
            ).scalar_one()
        )

    with basic.connection() as conn:
        assert dialect.is_installed(conn)
        assert dialect.tracked_tables(conn) == ["log", "order", "seed"]
        assert leftovers(conn) > 0
        dialect.uninstall(conn)
        assert not dialect.is_installed(conn)
        assert leftovers(conn) == 0
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]


def test_rewind_and_dirty_tables_without_installation_raise_not_prepared(
    rewinder: Rewinder,
) -> None:
    rewinder.prepare(basic_schema)
    rewinder.uninstall()
    dialect = MySQLDialect()
    with rewinder.connection() as conn:
        with pytest.raises(NotPreparedError, match="not installed"):
            dialect.rewind(conn)
        with pytest.raises(NotPreparedError, match="not installed"):
            dialect.dirty_tables(conn)


def test_prepare_after_a_crashed_run_rewinds_its_writes_before_taking_the_baseline(
    db_url: URL, engine: Engine
) -> None:
    with Rewinder(db_url) as first:
        first.prepare(basic_schema)
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `seed` VALUES ('crash', 0)")
    with Rewinder(db_url) as second:
        second.prepare()
        assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]
        assert second.dirty_tables() == []


# ------------------------------------------------------------------ databases


def test_create_database_from_template_copies_schema_rows_counters_and_tracking(
    basic: Rewinder, engine: Engine, db_url: URL
) -> None:
    with engine.begin() as conn:
        ddl(
            conn,
            "CREATE VIEW `v_seed` AS SELECT `k` FROM `seed`",
            "CREATE VIEW `v_v` AS SELECT `k` FROM `v_seed`",
            "CREATE FUNCTION `twice`(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        )
    dialect = MySQLDialect()
    template = parse_url(db_url)
    clone = template.with_database(f"{db_url.database}_clone")
    dialect.create_database(clone, template=template)
    clone_engine = create_engine(clone.url)
    try:
        assert dialect.database_exists(clone)
        assert rows(clone_engine, "`seed`") == [("a", 1), ("b", 2)]
        assert rows(clone_engine, "`v_v`") == [("a",), ("b",)]
        with clone_engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT `twice`(4)").scalar_one() == 8
            assert dialect.is_installed(conn)
            assert dialect.created_by_dbrewind(conn)
        with clone_engine.begin() as conn:
            ddl(conn, "INSERT INTO `order` (`v`) VALUES ('c')", "DELETE FROM `seed`")
        assert basic.dirty_tables() == []  # the template saw nothing
        with Rewinder(clone.url, reset_sequences="always") as clone_rewinder:
            assert clone_rewinder.dirty_tables() == ["order", "seed"]
            clone_rewinder.rewind()
        assert rows(clone_engine, "`seed`") == [("a", 1), ("b", 2)]
        assert next_id(clone_engine, "`order`") == 3
    finally:
        clone_engine.dispose()
        dialect.drop_database(clone)
    assert not dialect.database_exists(clone)


def test_create_database_marks_it_and_refuses_an_existing_name(db_url: URL) -> None:
    dialect = MySQLDialect()
    target = parse_url(db_url).with_database(f"{db_url.database}_new")
    dialect.create_database(target)
    try:
        eng = create_engine(target.url)
        with eng.connect() as conn:
            assert dialect.created_by_dbrewind(conn)
        eng.dispose()
        with pytest.raises(DatabaseCreationError, match="already exists"):
            dialect.create_database(target)
    finally:
        dialect.drop_database(target)


def test_mark_created_turns_a_plain_database_into_a_dbrewind_one(engine: Engine) -> None:
    dialect = MySQLDialect()
    with engine.connect() as conn:
        assert not dialect.created_by_dbrewind(conn)
        dialect.mark_created(conn)
        assert dialect.created_by_dbrewind(conn)


def test_drop_database_ends_sessions_that_hold_it_open(db_url: URL) -> None:
    dialect = MySQLDialect()
    target = parse_url(db_url).with_database(f"{db_url.database}_busy")
    dialect.create_database(target)
    eng = create_engine(target.url)
    try:
        holder = eng.connect()
        holder.exec_driver_sql("CREATE TABLE `t` (`id` INT)")  # autobegins a transaction
        holder.exec_driver_sql("SELECT * FROM `t`")  # holds a metadata lock
        dialect.drop_database(target)
        assert not dialect.database_exists(target)
        with pytest.raises(OperationalError):
            holder.exec_driver_sql("SELECT 1")
        holder.invalidate()
    finally:
        eng.dispose()
        dialect.drop_database(target)


def test_server_errors_name_the_url_without_its_password(db_url: URL) -> None:
    url = parse_url(db_url.set(password="s3cret", port=1))
    with pytest.raises(DbrewindError, match=r"\*\*\*") as info:
        MySQLDialect().database_exists(url)
    assert "s3cret" not in str(info.value)


def test_inspect_lists_base_tables_fks_and_counters_not_views_or_tracking(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(
            conn,
            "CREATE TABLE `line` (`id` INT PRIMARY KEY, `o` INT, "
            "FOREIGN KEY (`o`) REFERENCES `order` (`id`))",
            "CREATE VIEW `vw` AS SELECT 1 AS `x`",
        )
    with basic.connection() as conn:
        info = MySQLDialect().inspect(conn)
    assert sorted(info.tables) == ["line", "log", "order", "seed"]
    assert info.tables["order"].auto_increment
    assert not info.tables["seed"].auto_increment
    assert info.tables["seed"].columns == ("k", "n")
    assert [(fk.child, fk.parent) for fk in info.foreign_keys] == [("line", "order")]


def test_truncate_of_a_seeded_table_fires_no_trigger_but_is_found_and_restored(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(conn, "TRUNCATE TABLE `seed`")
    assert basic.dirty_tables() == []  # no trigger fired
    result = basic.rewind()
    assert result.tables == ("seed",)
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]
    assert basic.rewind().clean


# ------------------------------------------------------------------ lifecycle


def installation(r: Rewinder) -> Installation:
    with r.connection() as conn:
        return r.dialect.installation(conn)


def push(r: Rewinder) -> tuple[str, ...]:
    with r.connection() as conn:
        return r.dialect.push_baseline(conn)


def pop(r: Rewinder, depth: int) -> RewindResult:
    with r.connection() as conn:
        return r.dialect.pop_baseline(conn, depth)


def tracking_tables(engine: Engine, like: str) -> list[str]:
    with engine.connect() as conn:
        return [
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE %s ORDER BY 1",
                (like,),
            )
        ]


def cascade_schema(conn: Connection) -> None:
    """An FK cycle (parent.fav -> child) and cascades (parent -> child -> grandchild)."""
    ddl(
        conn,
        "CREATE TABLE `parent` (`id` INT PRIMARY KEY, `fav` INT NULL)",
        "CREATE TABLE `child` (`id` INT PRIMARY KEY, `p` INT NOT NULL, "
        "FOREIGN KEY (`p`) REFERENCES `parent` (`id`) ON DELETE CASCADE)",
        "CREATE TABLE `grandchild` (`id` INT PRIMARY KEY, `c` INT NULL, "
        "FOREIGN KEY (`c`) REFERENCES `child` (`id`) ON DELETE SET NULL)",
        "ALTER TABLE `parent` ADD FOREIGN KEY (`fav`) REFERENCES `child` (`id`)",
        "INSERT INTO `parent` VALUES (1, NULL)",
        "INSERT INTO `child` VALUES (10, 1)",
        "INSERT INTO `grandchild` VALUES (100, 10)",
        "UPDATE `parent` SET `fav` = 10",
    )


def test_installation_counts_cascade_children_dirty_and_ignores_views_and_tracking_tables(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(cascade_schema)
    with engine.begin() as conn:
        ddl(
            conn,
            "CREATE VIEW `v_parent` AS SELECT `id` FROM `parent`",
            "CREATE TABLE `dbrewind_not_the_users` (`id` INT)",
            "UPDATE `grandchild` SET `c` = NULL",
        )
    found = installation(rewinder)
    assert found.intact
    assert found.tracked == ("child", "grandchild", "parent")
    assert found.dirty == ("grandchild",)
    with engine.begin() as conn:
        ddl(conn, "UPDATE `parent` SET `fav` = NULL")  # parent's cascades reach the others
    assert installation(rewinder).dirty == ("child", "grandchild", "parent")


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE `dbrewind_state`",
        "DROP TABLE `dbrewind_layers`",
        "DROP PROCEDURE `dbrewind_reset_counters`",
        "DROP PROCEDURE `dbrewind_rewind`",
    ],
    ids=["no-state", "no-layers", "no-reset", "no-rewind"],
)
def test_an_incomplete_or_older_installation_reads_as_not_installed(
    basic: Rewinder, engine: Engine, statement: str
) -> None:
    with engine.begin() as conn:
        ddl(conn, statement)
    assert installation(basic) == Installation(installed=False)
    basic.install()
    assert installation(basic).intact


def test_write_state_without_an_installation_raises_not_prepared(basic: Rewinder) -> None:
    basic.uninstall()
    with basic.connection() as conn:
        with pytest.raises(NotPreparedError, match="not installed"):
            basic.dialect.write_state(conn, {"holder": "1@a"})
        with pytest.raises(NotPreparedError, match="not installed"):
            basic.dialect.write_state(conn, {})


def test_state_keys_are_exact_and_values_keep_any_text(basic: Rewinder) -> None:
    values = {
        "K": "upper",
        "k": "lower",
        "percent": "100% and %s and %%",
        "back\\slash": "C:\\new\\table",
        "unicode": "naïve — 名前 🐬",
        "big": "x" * 100_000,
        "k" * 255: "longest key",
    }
    with basic.connection() as conn:
        basic.dialect.write_state(conn, values)
        basic.dialect.write_state(conn, {"k": "lower again"})
        with pytest.raises(ConfigurationError, match="256 characters"):
            basic.dialect.write_state(conn, {"k" * 256: "too long"})
    assert dict(installation(basic).state) == {**values, "k": "lower again"}


def test_layers_over_reserved_quoted_mixed_case_and_long_names(
    rewinder: Rewinder, engine: Engine
) -> None:
    rewinder.prepare(awkward_schema)
    names = ["Mixed Case", "it's", "back\\slash", LONG, "user", "odd`s 'name' 100%"]
    quoted = ["`Mixed Case`", "`it's`", "`back\\slash`", f"`{LONG}`", "`user`", ODD]
    base = {q: rows(engine, q) for q in quoted}
    with engine.begin() as conn:
        ddl(
            conn,
            "INSERT INTO `Mixed Case` (`Select`) VALUES ('layer')",
            "UPDATE `it's` SET `back``tick` = 12",
            "DELETE FROM `back\\slash`",
            f"INSERT INTO `{LONG}` (`v`) VALUES (1)",
            "UPDATE `user` SET `total` = 7",
            f"INSERT INTO {ODD} (`v`) VALUES ('layer')",
        )
    assert push(rewinder) == tuple(sorted(names))
    layer = {q: rows(engine, q) for q in quoted}
    copies = tracking_tables(engine, "dbrewind\\_b1\\_%%")
    assert len(copies) == 5  # `back\slash` is empty in the layer: no copy
    assert all(len(c) <= 64 for c in copies)
    with engine.begin() as conn:
        ddl(
            conn,
            "DELETE FROM `Mixed Case`",
            f"INSERT INTO {ODD} (`v`) VALUES ('test')",
            "INSERT INTO `back\\slash` VALUES (8)",
        )
    rewinder.rewind()
    assert {q: rows(engine, q) for q in quoted} == layer
    assert next_id(engine, "`Mixed Case`", "`Select`") == 3
    assert next_id(engine, ODD, "`v`") == 3
    result = pop(rewinder, 0)
    assert set(names) <= set(result.tables)
    assert {q: rows(engine, q) for q in quoted} == base
    assert next_id(engine, "`Mixed Case`", "`Select`") == 2
    assert next_id(engine, ODD, "`v`") == 2
    assert tracking_tables(engine, "dbrewind\\_b1\\_%%") == []


def test_layers_on_tables_with_an_fk_cycle_and_cascades(rewinder: Rewinder, engine: Engine) -> None:
    rewinder.prepare(cascade_schema)
    with engine.begin() as conn:
        ddl(
            conn,
            "INSERT INTO `parent` VALUES (2, NULL)",
            "INSERT INTO `child` VALUES (20, 2)",
            "UPDATE `parent` SET `fav` = 20 WHERE `id` = 2",
        )
    assert push(rewinder) == ("child", "grandchild", "parent")  # cascades included
    layer = [rows(engine, t) for t in ("`parent`", "`child`", "`grandchild`")]
    with engine.begin() as conn:
        ddl(
            conn,
            "UPDATE `parent` SET `fav` = NULL WHERE `id` = 2",
            "DELETE FROM `parent` WHERE `id` = 2",  # cascades to child 20
            "DELETE FROM `grandchild`",
        )
    rewinder.rewind()
    assert [rows(engine, t) for t in ("`parent`", "`child`", "`grandchild`")] == layer
    pop(rewinder, 0)
    assert rows(engine, "`parent`") == [(1, 10)]
    assert rows(engine, "`child`") == [(10, 1)]
    assert rows(engine, "`grandchild`") == [(100, 10)]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@FOREIGN_KEY_CHECKS").scalar_one() == 1


def test_a_layer_over_an_empty_baseline_and_a_layer_that_empties_a_seeded_table(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(
            conn,
            "INSERT INTO `log` (`v`) VALUES ('l1'), ('l2')",  # baseline empty, counter 1
            "DELETE FROM `order`",  # baseline two rows, counter 3
            "DELETE FROM `seed`",  # baseline two rows, no counter
        )
    assert push(basic) == ("log", "order", "seed")
    with engine.begin() as conn:
        ddl(
            conn,
            "INSERT INTO `order` (`v`) VALUES ('t')",
            "INSERT INTO `seed` VALUES ('t', 0)",
            "DELETE FROM `log` WHERE `v` = 'l1'",
        )
    basic.rewind()
    assert rows(engine, "`order`") == []
    assert rows(engine, "`seed`") == []
    assert rows(engine, "`log`") == [(1, "l1"), (2, "l2")]
    assert next_id(engine, "`order`") == 3  # the layer's counter
    assert next_id(engine, "`log`") == 3
    pop(basic, 0)
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]
    assert rows(engine, "`log`") == []
    assert next_id(engine, "`log`") == 1
    assert next_id(engine, "`order`") == 3


def test_a_truncate_in_a_wider_fixture_is_captured_by_the_push(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(conn, "TRUNCATE TABLE `seed`")  # fires no trigger
    assert push(basic) == ("seed",)
    assert basic.rewind().clean  # empty is the layer's baseline now
    assert rows(engine, "`seed`") == []
    pop(basic, 0)
    assert rows(engine, "`seed`") == [("a", 1), ("b", 2)]


def test_a_table_created_after_the_install_is_still_reported_after_push_and_pop(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(conn, "CREATE TABLE `scratch` (`id` INT)", "INSERT INTO `log` (`v`) VALUES ('x')")
    assert push(basic) == ("log",)
    assert basic.rewind().created_tables == ("scratch",)  # the install's signature
    assert installation(basic).created == ("scratch",)
    assert pop(basic, 0).created_tables == ("scratch",)


def test_push_and_pop_name_a_tracked_table_that_was_dropped(
    basic: Rewinder, engine: Engine
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3')")
    push(basic)
    basic.close()
    with engine.begin() as conn:
        ddl(conn, "DROP TABLE `log`")
    with pytest.raises(SchemaChangedError, match=r"'log' .*no baseline layer can be pushed"):
        push(basic)
    with pytest.raises(SchemaChangedError, match=r"'log' .*layers cannot be popped"):
        pop(basic, 0)
    assert installation(basic).missing == ("log",)
    assert installation(basic).depth == 1  # nothing was changed


def test_push_and_pop_are_idempotent_and_check_the_depth(basic: Rewinder, engine: Engine) -> None:
    assert push(basic) == ()
    assert pop(basic, 0).clean  # the current depth: a plain rewind
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `log` (`v`) VALUES ('module')")
    assert push(basic) == ("log",)
    assert push(basic) == ()  # nothing dirty since: no second layer
    assert installation(basic).depth == 1
    for depth in (2, -1):
        with pytest.raises(ConfigurationError, match="give a depth from 0 to 1"):
            pop(basic, depth)
    assert pop(basic, 0).tables == ("log",)
    assert pop(basic, 0).clean
    assert installation(basic).depth == 0
    assert installation(basic).intact
    assert tracking_tables(engine, "dbrewind\\_b1\\_%%") == []
    assert rows(engine, "`log`") == []


def test_a_push_that_died_before_its_commit_leaves_copies_that_the_next_push_replaces(
    basic: Rewinder, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3')")

    def die(*args: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(MySQLDialect, "_write_baseline", staticmethod(die))
    with pytest.raises(RuntimeError, match="killed"):
        push(basic)
    monkeypatch.undo()
    assert len(tracking_tables(engine, "dbrewind\\_b1\\_%%")) == 1  # left behind
    found = installation(basic)
    assert (found.depth, found.dirty) == (0, ("order",))  # the transaction rolled back
    assert push(basic) == ("order",)  # replaces the copy left behind
    basic.rewind()
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2"), (3, "o3")]
    pop(basic, 0)
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert tracking_tables(engine, "dbrewind\\_b1\\_%%") == []


def test_a_push_that_died_before_regenerating_the_procedures_is_popped_by_the_next_run(
    basic: Rewinder, engine: Engine, db_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3')", "INSERT INTO `log` (`v`) VALUES ('x')")

    def die(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(MySQLDialect, "_create_procedures", die)
    with pytest.raises(RuntimeError, match="killed"):
        push(basic)
    monkeypatch.undo()
    basic.close()
    with Rewinder(db_url) as later:
        assert installation(later).depth == 1  # the layer is recorded: the next run sees it
        pop(later, 0)
        assert installation(later).intact
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert rows(engine, "`log`") == []
    assert next_id(engine, "`order`") == 3
    assert next_id(engine, "`log`") == 1


@pytest.mark.parametrize("step", ["_write_baseline", "_drop_copies"])
def test_a_pop_that_died_half_way_is_finished_by_the_next_pop_or_push(
    basic: Rewinder, engine: Engine, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('o3')")
    push(basic)

    def die(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(MySQLDialect, step, staticmethod(die))
    with pytest.raises(RuntimeError, match="killed"):
        pop(basic, 0)
    monkeypatch.undo()
    if step == "_write_baseline":  # before the commit: the layer is still recorded
        assert installation(basic).depth == 1
        pop(basic, 0)
    else:  # after it: the copies are left, the table is marked
        assert installation(basic).depth == 0
        assert installation(basic).dirty == ("order",)
        basic.rewind()
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert next_id(engine, "`order`") == 3
    assert push(basic) == ("order",)  # a new layer 1 over any copies left
    pop(basic, 0)
    assert rows(engine, "`order`") == [(1, "o1"), (2, "o2")]
    assert tracking_tables(engine, "dbrewind\\_b1\\_%%") == []


def test_a_clone_carries_the_templates_state_and_layers(
    basic: Rewinder, engine: Engine, db_url: URL
) -> None:
    with engine.begin() as conn:
        ddl(conn, "INSERT INTO `order` (`v`) VALUES ('module')")
    push(basic)
    with basic.connection() as conn:
        basic.dialect.write_state(conn, {"fingerprint": "abc"})
    basic.close()
    clone_url = db_url.set(database=f"{db_url.database}_clone")
    clone = Rewinder(clone_url)
    clone_engine = create_engine(clone_url)
    try:
        clone.create(template=basic.url)
        assert installation(clone) == installation(basic)
        assert installation(clone).depth == 1
        assert next_id(clone_engine, "`order`") == 4
        clone.rewind()
        pop(clone, 0)
        assert rows(clone_engine, "`order`") == [(1, "o1"), (2, "o2")]
        assert next_id(clone_engine, "`order`") == 3
        assert installation(basic).depth == 1  # the template kept its layer
        assert rows(engine, "`order`") == [(1, "o1"), (2, "o2"), (3, "module")]
    finally:
        clone_engine.dispose()
        clone.drop()
        clone.close()


def test_copying_a_database_puts_counters_that_ran_ahead_back(db_url: URL, engine: Engine) -> None:
    dialect = MySQLDialect()
    source = f"{db_url.database}_src"
    with engine.begin() as conn:
        ddl(conn, f"CREATE DATABASE `{source}`")
    try:
        with engine.begin() as conn:
            for database in (source, db_url.database):
                ddl(
                    conn,
                    f"CREATE TABLE `{database}`.`t` (`id` INT AUTO_INCREMENT PRIMARY KEY, "
                    "`v` VARCHAR(10))",
                    f"CREATE TABLE `{database}`.`same` (`id` INT AUTO_INCREMENT PRIMARY KEY, "
                    "`v` VARCHAR(10))",
                    f"INSERT INTO `{database}`.`t` (`v`) VALUES ('one')",
                )
            ddl(conn, "ALTER TABLE `t` AUTO_INCREMENT = 10")  # the copy ran ahead
        with engine.connect() as conn:
            mysql_dialect._copy_counters(conn, source)
        assert next_id(engine, "`t`") == 2
        assert next_id(engine, "`same`") == 1
    finally:
        dialect.drop_database(parse_url(db_url).with_database(source))


def test_lock_names_fit_get_lock_and_keep_case_and_long_names_apart(db_url: URL) -> None:
    dialect = MySQLDialect()
    url = parse_url(db_url)
    long = "test_" + "x" * 59
    names = [url.with_database(n) for n in ("app_test", "App_test", long, long[:-1] + "y")]
    assert len({mysql_dialect._lock_name("lease", u.database) for u in names}) == 4
    assert all(len(mysql_dialect._lock_name("lease", u.database)) <= 64 for u in names)
    locks = [dialect.acquire_lock(u, "lease", wait=0) for u in names]  # no database needed
    try:
        assert all(lock is not None for lock in locks)
        assert dialect.acquire_lock(names[2], "lease", wait=0) is None
    finally:
        for lock in locks:
            if lock is not None:
                lock.release()


def test_lock_holder_names_the_connection_and_a_lease_outlives_drop_database(
    db_url: URL,
) -> None:
    dialect = MySQLDialect()
    url = parse_url(db_url)
    lock = dialect.acquire_lock(url, "lease", wait=0)
    assert lock is not None
    try:
        holder = dialect.lock_holder(url, "lease")
        assert holder is not None
        assert re.fullmatch(r"connection \d+ of root from [\w.:]+(, pid \d+)?", holder)
        assert dialect.lock_holder(url, "build") is None
        dialect.drop_database(url)  # ends the sessions using the database, not the lock's
        assert dialect.lock_holder(url, "lease") == holder
    finally:
        lock.release()
    assert dialect.lock_holder(url, "lease") is None


def test_locks_on_an_unreachable_server_name_the_url_without_its_password(
    db_url: URL,
) -> None:
    url = parse_url(db_url.set(password="s3cret", port=1))
    for attempt in (
        lambda: MySQLDialect().acquire_lock(url, "lease", wait=0),
        lambda: MySQLDialect().lock_holder(url, "lease"),
    ):
        with pytest.raises(DbrewindError, match=r"Cannot connect .*\*\*\*") as info:
            attempt()
        assert "s3cret" not in str(info.value)


def test_acquire_lock_takes_a_number_of_seconds(db_url: URL) -> None:
    with pytest.raises(ConfigurationError, match="seconds to wait"):
        MySQLDialect().acquire_lock(parse_url(db_url), "lease", wait=-1)


def test_list_databases_compares_the_prefix_literally(db_url: URL) -> None:
    dialect = MySQLDialect()
    url = parse_url(db_url)
    siblings = [url.with_database(f"{url.database}_{n}") for n in ("a_1", "aX1", "A_2")]
    for sibling in siblings:
        dialect.create_database(sibling)
    try:
        assert dialect.list_databases(url, f"{url.database}_a_") == [siblings[0].database]
        assert dialect.list_databases(url, f"{url.database}_%") == []
    finally:
        for sibling in siblings:
            dialect.drop_database(sibling)
