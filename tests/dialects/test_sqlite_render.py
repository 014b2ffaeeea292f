"""The SQL the SQLite dialect renders from a schema, without a database: the tracking
triggers, the baseline copies, the static ``.sql`` files (then run on an in-memory
database, to show they are valid SQLite)."""

from __future__ import annotations

import sqlite3

import pytest

from dbrewind.dialects import Table
from dbrewind.dialects.base import short_name
from dbrewind.dialects.sqlite import LAYERS, LIFECYCLE, MARKS, META, REGISTRY, STATE
from dbrewind.dialects.sqlite._sql import _MARK_CREATED, _ident, _literal
from dbrewind.dialects.sqlite.tracking import baseline_sql, own_tables_sql, trigger_sql

HOSTILE = ['we"ird', "it's", "[br]ack", "ünïcödé 表", "a b; DROP TABLE x --", "L" * 80]


def test_triggers_of_a_plain_table_snapshot() -> None:
    when = "WHEN NOT EXISTS (SELECT 1 FROM \"dbrewind_marks\" WHERE tbl = 'orders')"
    body = (
        "BEGIN INSERT INTO \"dbrewind_marks\" (tbl) VALUES ('orders') ON CONFLICT DO NOTHING; END"
    )
    assert trigger_sql("orders") == (
        f'CREATE TRIGGER "dbrewind_i_orders_9658403816" AFTER INSERT ON "orders" '
        f"FOR EACH ROW {when} {body}",
        f'CREATE TRIGGER "dbrewind_u_orders_9658403816" AFTER UPDATE ON "orders" '
        f"FOR EACH ROW {when} {body}",
        f'CREATE TRIGGER "dbrewind_d_orders_9658403816" AFTER DELETE ON "orders" '
        f"FOR EACH ROW {when} {body}",
    )


@pytest.mark.parametrize("name", HOSTILE)
def test_triggers_quote_hostile_names(name: str) -> None:
    statements = trigger_sql(name)
    assert [s.split(" AFTER ")[1].split(" ")[0] for s in statements] == [
        "INSERT",
        "UPDATE",
        "DELETE",
    ]
    for statement in statements:
        assert f"ON {_ident(name)} FOR EACH ROW" in statement
        assert f"WHERE tbl = {_literal(name)})" in statement
        assert f"VALUES ({_literal(name)}) ON CONFLICT DO NOTHING; END" in statement
    names = [s.split('"')[1] for s in statements]
    assert all(n.startswith("dbrewind_") and len(n) <= 64 for n in names)
    assert len(set(names)) == 3


def test_quoting_doubles_quotes() -> None:
    assert _ident('we"ird') == '"we""ird"'
    assert _literal("it's") == "'it''s'"


def test_rendered_sql_runs_and_marks_the_right_table() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    for statement in own_tables_sql():
        db.execute(statement)
    for name in HOSTILE:
        db.execute(f"CREATE TABLE {_ident(name)} (id INTEGER PRIMARY KEY, {_ident(name)} TEXT)")
        for statement in trigger_sql(name):
            db.execute(statement)
    for name in HOSTILE[:3]:
        db.execute(f"INSERT INTO {_ident(name)} VALUES (1, 'x')")
        db.execute(f"INSERT INTO {_ident(name)} VALUES (2, 'y')")  # marked once
    assert sorted(row[0] for row in db.execute(f"SELECT tbl FROM {_ident(MARKS)}")) == sorted(
        HOSTILE[:3]
    )
    db.close()


def test_baseline_copy_keeps_the_rowid_under_a_free_name() -> None:
    table = Table(key="t", name='we"ird', columns=("rowid", 'co"l'))
    plan = baseline_sql(table, ["rowid", 'co"l', "hidden"], without_rowid=False)
    assert plan.copy == short_name("dbrewind_b_", 'we"ird')
    assert plan.drop == f'DROP TABLE IF EXISTS "{plan.copy}"'
    assert plan.create == (
        f'CREATE TABLE "{plan.copy}" AS SELECT oid AS "dbrewind_rowid", "rowid", "co""l" '
        'FROM "we""ird"'
    )
    assert (
        plan.restore == f'INSERT INTO "we""ird" (oid, "rowid", "co""l") SELECT * FROM "{plan.copy}"'
    )


def test_baseline_copy_of_a_without_rowid_table_and_of_a_layer() -> None:
    table = Table(key="k", name="[br]ack", columns=("k", "v"))
    plan = baseline_sql(table, ["k", "v"], without_rowid=True, prefix="dbrewind_b2_")
    assert plan.copy.startswith("dbrewind_b2_")
    assert plan.create == f'CREATE TABLE "{plan.copy}" AS SELECT "k", "v" FROM "[br]ack"'
    assert plan.restore == f'INSERT INTO "[br]ack" ("k", "v") SELECT * FROM "{plan.copy}"'


def test_static_sql_files_name_the_objects_the_code_uses() -> None:
    created = [s.split('"')[1] for s in own_tables_sql()]
    assert created == [MARKS, REGISTRY, STATE, LIFECYCLE, LAYERS]
    assert all(not s.endswith(";") and not s.startswith("--") for s in own_tables_sql())
    assert [s.split('"')[1] for s in _MARK_CREATED] == [META, META]
