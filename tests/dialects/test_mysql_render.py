"""The MySQL tracking SQL, rendered without a server: triggers, the check, the procedures.

The generators in :mod:`dbrewind.dialects.mysql.tracking` are pure functions of
the tracked tables' plans; these tests render them for a small schema with
hostile names (a backtick, a quote, a backslash, a 64-character name) and check
what must hold whatever the names are.
"""

from __future__ import annotations

import re

import pytest

from dbrewind.dialects.base import Table
from dbrewind.dialects.mysql import MARKS_TABLE, REWIND_PROCEDURE
from dbrewind.dialects.mysql._sql import RESET_PROCEDURE, _ident, _lit
from dbrewind.dialects.mysql.tracking import (
    _copy_name,
    _procedure_sql,
    _TablePlan,
    _trigger_names,
    _trigger_sql,
)

LONG = "t" * 64
TABLES = (
    Table(key="we`ird", name="we`ird", columns=("a`b", "c'd"), auto_increment=True),
    Table(key="it's", name="it's", columns=("q\\z",), auto_increment=False),
    Table(key=LONG, name=LONG, columns=(LONG,), auto_increment=True),
    Table(key="empty", name="empty", columns=("id",), auto_increment=True),
)


def plans() -> list[_TablePlan]:
    """Seeded tables with and without a counter, and an empty one whose counter is 1."""
    return [
        _TablePlan(index=1, table=TABLES[0], copy=_copy_name(0, TABLES[0].key), rows=3, counter=7),
        _TablePlan(
            index=2, table=TABLES[1], copy=_copy_name(0, TABLES[1].key), rows=2, counter=None
        ),
        _TablePlan(index=3, table=TABLES[2], copy=_copy_name(2, LONG), rows=1, counter=9),
        _TablePlan(index=4, table=TABLES[3], copy=None, rows=0, counter=1),
    ]


def without_quoted(sql: str) -> str:
    """``sql`` with its quoted identifiers and string literals taken out."""
    return re.sub(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'", "", sql)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.key[:10])
def test_triggers_quote_every_name_and_fit_the_limit(table: Table) -> None:
    names = _trigger_names(table.key)
    statements = _trigger_sql(table)
    assert len(names) == len(set(names)) == len(statements) == 3
    assert all(len(name) <= 64 and name.startswith("dbrewind_") for name in names)
    for name, event, statement in zip(
        names, ("INSERT", "UPDATE", "DELETE"), statements, strict=True
    ):
        assert statement.startswith(
            f"CREATE TRIGGER {_ident(name)} AFTER {event} ON {_ident(table.name)} FOR EACH ROW"
        )
        assert f"INSERT INTO `{MARKS_TABLE}` (`tbl`) VALUES ({_lit(table.key)})" in statement
        # the hostile names appear only quoted: nothing of them is left outside quotes
        assert "`" not in without_quoted(statement)
        assert "'" not in without_quoted(statement)


def test_hostile_literals_are_hex() -> None:
    assert _lit("plain_name") == "'plain_name'"
    assert _lit("it's") == "_utf8mb4 X'69742773'"
    assert _lit("q\\z").startswith("_utf8mb4 X'")


@pytest.mark.parametrize("mariadb", [True, False], ids=["mariadb", "mysql"])
def test_the_procedures_have_a_branch_per_table(mariadb: bool) -> None:
    reset, rewind = _procedure_sql(plans(), 4, 123456, mariadb=mariadb, replace=mariadb)
    create = "CREATE OR REPLACE PROCEDURE" if mariadb else "CREATE PROCEDURE"
    assert reset.startswith(f"\n{create} `{RESET_PROCEDURE}`(IN p_ddl LONGTEXT)\n")
    assert rewind.startswith(f"\n{create} `{REWIND_PROCEDURE}`(\n")
    assert reset.endswith("\nEND\n")
    assert rewind.endswith("\nEND proc\n")
    assert ("information_schema_stats_expiry" in rewind) is not mariadb
    assert "SET v_schema = v_count <> 4 OR v_sum <> 123456;" in rewind
    for plan in plans():
        assert f"WHEN {_lit(plan.table.key)} THEN" in rewind
        assert f"WHEN 'T{plan.index}' THEN TRUNCATE TABLE {_ident(plan.table.name)};" in reset
        has_alter = f"WHEN 'A{plan.index}' THEN ALTER TABLE" in reset
        assert has_alter is (plan.counter is not None)
        if plan.copy is not None:
            restore = f"SELECT {', '.join(_ident(c) for c in plan.table.columns)} FROM "
            assert restore + f"{_ident(plan.copy)};" in rewind
    # only the seeded tables are probed for a TRUNCATE (read once, refilled once)
    assert rewind.count("NOT EXISTS (SELECT 1 FROM ") == 6
    assert "NOT EXISTS (SELECT 1 FROM `empty`)" not in rewind
    # the empty table with counter 1 is truncated in the CALL, not altered in the background
    assert "IF v_moved THEN SET v_trunc = TRUE; END IF;" in rewind
    # nothing of the templates is left unfilled
    assert "{" not in reset + rewind
    assert "}" not in reset + rewind


def test_no_tables_render_empty_branches() -> None:
    reset, rewind = _procedure_sql([], 0, 0)
    assert "BEGIN END;" in reset
    assert "BEGIN END;" in rewind
    assert "NOT EXISTS" not in rewind


def test_a_snapshot_of_one_table() -> None:
    """The whole rewind procedure for one table, as the server receives it."""
    table = Table(key="users", name="users", columns=("id", "name"), auto_increment=True)
    plan = _TablePlan(index=1, table=table, copy="dbrewind_b_users", rows=2, counter=3)
    reset, rewind = _procedure_sql([plan], 1, 99, mariadb=True, replace=False)
    assert reset.splitlines()[:4] == [
        "",
        "CREATE PROCEDURE `dbrewind_reset_counters`(IN p_ddl LONGTEXT)",
        "    MODIFIES SQL DATA",
        "    COMMENT 'dbrewind: put AUTO_INCREMENT counters back after a rewind'",
    ]
    assert (
        "    CASE v_tok WHEN 'T1' THEN TRUNCATE TABLE `users`; INSERT INTO `users` (`id`, `name`) "
        "SELECT `id`, `name` FROM `dbrewind_b_users`; SELECT `AUTO_INCREMENT` INTO v_ai FROM "
        "information_schema.`TABLES` WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users'; "
        "IF NOT (v_ai <=> 3) THEN ALTER TABLE `users` AUTO_INCREMENT = 3; END IF;  "
        "WHEN 'A1' THEN ALTER TABLE `users` AUTO_INCREMENT = 3; ELSE BEGIN END; END CASE;"
    ) in reset.splitlines()
    assert (
        "    BEGIN DECLARE EXIT HANDLER FOR 1146 SET v_schema = TRUE; SELECT COUNT(*), "
        "COALESCE(SUM(CRC32(TABLE_NAME)), 0), (SELECT MAX(`id`) FROM `dbrewind_marks`), "
        "NOT EXISTS (SELECT 1 FROM `users`) INTO v_count, v_sum, v_max, v_emptied "
        "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE "
        "'dbrewind\\_%'; SET v_schema = v_count <> 1 OR v_sum <> 99; END; IF v_emptied AND NOT "
        "v_schema THEN IF NOT EXISTS (SELECT 1 FROM `users`) THEN INSERT INTO `dbrewind_marks` "
        "(`tbl`) VALUES ('users'); END IF; SELECT MAX(`id`) INTO v_max FROM `dbrewind_marks`; "
        "END IF;"
    ) in rewind.splitlines()
