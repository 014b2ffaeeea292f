"""What every dialect gives the one lifecycle (``dbrewind.provision``), on every backend.

The lifecycle trusts nothing a previous run left, so each dialect must be able
to read its installation by table name, keep state with it, stack baselines
for fixture scopes, lease databases across processes, and clone a template
exactly. These tests are the contract; each dialect module implements it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
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
    insert,
    select,
)
from sqlalchemy.engine import URL, Connection, Engine

from conftest import drop_database, make_database
from dbrewind import Rewinder, parse_url
from dbrewind.dialects import Installation

metadata = MetaData()
parent = Table(
    "parent",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False),
    sqlite_autoincrement=True,
)
child = Table(
    "child",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, ForeignKey("parent.id"), nullable=False),
    Column("note", String(50), nullable=False),
    sqlite_autoincrement=True,
)
# a reserved word, to keep generated SQL honest
order = Table(
    "order",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item", String(50), nullable=False),
    sqlite_autoincrement=True,
)
TABLES = (parent, child, order)


def setup_schema(conn: Connection) -> None:
    """Three tables; ``parent`` holds two baseline rows, ``child`` one."""
    metadata.create_all(conn)
    conn.execute(insert(parent), [{"name": "p1"}, {"name": "p2"}])
    conn.execute(insert(child).values(parent_id=1, note="c1"))


def key(backend: str, name: str) -> str:
    return f"public.{name}" if backend == "postgresql" else name


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in TABLES}


def next_id(engine: Engine, table: Table, **values: Any) -> int:
    """Insert one row, committed, and return the id it got."""
    with engine.begin() as conn:
        return int(conn.execute(insert(table).values(**values)).inserted_primary_key[0])


@pytest.fixture
def rewinder(db_url: URL) -> Iterator[Rewinder]:
    """A prepared Rewinder on a fresh database: schema, baseline rows, tracking; its
    rewinds put counters back on every database (the default, "auto", leaves them on
    MySQL/MariaDB), since these tests compare counters with the baseline's."""
    rw = Rewinder(db_url, reset_sequences="always")
    rw.prepare(setup_schema)
    try:
        yield rw
    finally:
        rw.close()


def installation(rw: Rewinder) -> Installation:
    with rw.connection() as conn:
        return rw.dialect.installation(conn)


def push(rw: Rewinder) -> tuple[str, ...]:
    with rw.connection() as conn:
        return rw.dialect.push_baseline(conn)


def pop(rw: Rewinder, depth: int) -> Any:
    with rw.connection() as conn:
        return rw.dialect.pop_baseline(conn, depth)


def ddl(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def quoted(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote_identifier(name)


# ------------------------------------------------------------- installation


def test_a_database_without_tracking_has_no_installation(engine: Engine, db_url: URL) -> None:
    metadata.create_all(engine)
    with Rewinder(db_url) as rw:
        found = installation(rw)
    assert found == Installation(installed=False)
    assert not found.intact


def test_a_fresh_installation_is_intact_clean_and_has_empty_state(
    rewinder: Rewinder, backend: str
) -> None:
    found = installation(rewinder)
    assert found.installed
    assert found.intact
    assert found.tracked == tuple(sorted(key(backend, t.name) for t in TABLES))
    assert found.dirty == ()
    assert found.depth == 0
    assert dict(found.state) == {}


def test_committed_writes_show_as_dirty_and_a_rewind_clears_them(
    rewinder: Rewinder, engine: Engine, backend: str
) -> None:
    next_id(engine, order, item="x")
    assert installation(rewinder).dirty == (key(backend, "order"),)
    rewinder.rewind()
    assert installation(rewinder).dirty == ()


def test_state_is_upserted_by_key_and_a_new_install_starts_it_empty(rewinder: Rewinder) -> None:
    with rewinder.connection() as conn:
        rewinder.dialect.write_state(conn, {"fingerprint": "abc", "holder": "1@a"})
        rewinder.dialect.write_state(conn, {"holder": "2@b", "quote'd": "va'lue\n"})
    assert dict(installation(rewinder).state) == {
        "fingerprint": "abc",
        "holder": "2@b",
        "quote'd": "va'lue\n",
    }
    rewinder.install()
    assert dict(installation(rewinder).state) == {}


def test_state_is_not_a_tracked_write(rewinder: Rewinder) -> None:
    with rewinder.connection() as conn:
        rewinder.dialect.write_state(conn, {"clean": "0"})
    assert installation(rewinder).dirty == ()
    assert rewinder.rewind().clean


def test_a_table_dropped_and_created_again_by_name_is_untracked(
    rewinder: Rewinder, engine: Engine, backend: str
) -> None:
    rewinder.close()  # no session of dbrewind's keeps the table open meanwhile
    order.drop(engine)
    order.create(engine)
    found = installation(rewinder)
    assert found.untracked == (key(backend, "order"),)
    assert found.missing == ()
    assert found.created == ()
    assert not found.intact


def test_dropped_and_new_tables_are_missing_and_created(
    rewinder: Rewinder, engine: Engine, backend: str
) -> None:
    rewinder.close()
    ddl(engine, f"DROP TABLE {quoted(engine, 'order')}", "CREATE TABLE extra (id INTEGER)")
    found = installation(rewinder)
    assert found.missing == (key(backend, "order"),)
    assert found.created == (key(backend, "extra"),)
    assert found.untracked == ()
    assert not found.intact


# ---------------------------------------------------------------- baselines


def test_a_pushed_layer_keeps_committed_rows_across_rewinds_and_pops_back(
    rewinder: Rewinder, engine: Engine, backend: str
) -> None:
    base = snapshot(engine)
    first_order = next_id(engine, order, item="module row")
    next_id(engine, parent, name="module parent")
    assert push(rewinder) == tuple(sorted([key(backend, "order"), key(backend, "parent")]))
    layer = snapshot(engine)
    assert installation(rewinder).depth == 1
    assert installation(rewinder).dirty == ()

    # a test inside the layer writes; the rewind goes back to the layer, ids included
    test_order = next_id(engine, order, item="test row")
    assert test_order == first_order + 1
    with engine.begin() as conn:
        conn.execute(parent.delete().where(parent.c.name == "p2"))
    rewinder.rewind()
    assert snapshot(engine) == layer
    assert next_id(engine, order, item="again") == test_order
    rewinder.rewind()

    result = pop(rewinder, 0)
    assert key(backend, "order") in result.tables
    assert key(backend, "parent") in result.tables
    assert snapshot(engine) == base
    assert installation(rewinder).depth == 0
    assert next_id(engine, order, item="after") == first_order


def test_pushing_with_nothing_dirty_adds_no_layer(rewinder: Rewinder) -> None:
    assert push(rewinder) == ()
    assert installation(rewinder).depth == 0


def test_layers_nest_and_pop_to_any_depth(rewinder: Rewinder, engine: Engine, backend: str) -> None:
    base = snapshot(engine)
    next_id(engine, order, item="session")
    assert push(rewinder)
    session = snapshot(engine)
    next_id(engine, order, item="module")
    next_id(engine, child, parent_id=2, note="module child")
    assert push(rewinder)
    assert installation(rewinder).depth == 2
    next_id(engine, child, parent_id=1, note="test child")

    pop(rewinder, 1)
    assert snapshot(engine) == session
    assert installation(rewinder).depth == 1
    pop(rewinder, 0)
    assert snapshot(engine) == base


def test_popping_also_rewinds_what_is_dirty_outside_the_layers(
    rewinder: Rewinder, engine: Engine
) -> None:
    base = snapshot(engine)
    next_id(engine, order, item="module")
    push(rewinder)
    next_id(engine, child, parent_id=1, note="teardown wrote this")
    pop(rewinder, 0)
    assert snapshot(engine) == base


def test_layers_outlive_the_process_that_pushed_them(
    rewinder: Rewinder, engine: Engine, db_url: URL
) -> None:
    base = snapshot(engine)
    next_id(engine, order, item="left by a killed run")
    push(rewinder)
    rewinder.close()
    with Rewinder(db_url) as later:
        assert installation(later).depth == 1
        pop(later, 0)
    assert snapshot(engine) == base


def test_an_empty_table_captured_in_a_layer_comes_back_empty(
    rewinder: Rewinder, engine: Engine
) -> None:
    next_id(engine, order, item="one")
    push(rewinder)
    with engine.begin() as conn:
        conn.execute(order.delete())
    rewinder.rewind()
    assert [r[1] for r in snapshot(engine)["order"]] == ["one"]
    pop(rewinder, 0)
    assert snapshot(engine)["order"] == []


# -------------------------------------------------------------------- locks


def test_a_lock_is_exclusive_and_free_again_after_release(rewinder: Rewinder) -> None:
    dialect, url = rewinder.dialect, rewinder.url
    held = dialect.acquire_lock(url, "lease", wait=0)
    assert held is not None
    try:
        assert dialect.acquire_lock(url, "lease", wait=0) is None
        assert dialect.lock_holder(url, "lease")
        other_purpose = dialect.acquire_lock(url, "build", wait=0)
        assert other_purpose is not None
        other_purpose.release()
    finally:
        held.release()
    assert dialect.lock_holder(url, "lease") is None
    again = dialect.acquire_lock(url, "lease", wait=0)
    assert again is not None
    again.release()
    again.release()  # idempotent


def test_a_lock_waits_for_its_holder_up_to_wait(rewinder: Rewinder) -> None:
    dialect, url = rewinder.dialect, rewinder.url
    held = dialect.acquire_lock(url, "build", wait=0)
    assert held is not None
    started = time.monotonic()
    try:
        assert dialect.acquire_lock(url, "build", wait=0.5) is None
    finally:
        held.release()
    assert 0.4 <= time.monotonic() - started < 5


def test_locks_on_two_databases_are_independent(
    rewinder: Rewinder, backend: str, tmp_path: Path
) -> None:
    other_url = make_database(backend, tmp_path, name=None)
    other = parse_url(other_url)
    try:
        a = rewinder.dialect.acquire_lock(rewinder.url, "lease", wait=0)
        b = rewinder.dialect.acquire_lock(other, "lease", wait=0)
        assert a is not None
        assert b is not None
        a.release()
        b.release()
    finally:
        drop_database(backend, other_url)


def test_a_lock_dies_with_the_process_that_holds_it(rewinder: Rewinder, tmp_path: Path) -> None:
    url = rewinder.url.url.render_as_string(hide_password=False)
    script = tmp_path / "hold.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from dbrewind import parse_url
            from dbrewind.dialects import get_dialect
            url = parse_url({url!r})
            lock = get_dialect(url.backend).acquire_lock(url, "lease", wait=0)
            print("held" if lock else "refused", flush=True)
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        assert rewinder.dialect.acquire_lock(rewinder.url, "lease", wait=0) is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        lock = rewinder.dialect.acquire_lock(rewinder.url, "lease", wait=5)
        assert lock is not None
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# ------------------------------------------------------------------- clones


def test_a_clone_is_identical_to_its_template_counters_included(
    rewinder: Rewinder, engine: Engine, backend: str, tmp_path: Path
) -> None:
    # counters that ran ahead of the rows: a template after deletes
    next_id(engine, order, item="gone")
    with engine.begin() as conn:
        conn.execute(order.delete())
    rewinder.install()  # baseline: order empty, its counter at 2
    rewinder.close()
    expected_order = next_id(engine, order, item="probe")
    expected_parent = next_id(engine, parent, name="probe")
    rewinder.rewind()
    rewinder.close()

    clone_url = make_database(backend, tmp_path, name=None)
    drop_database(backend, clone_url)
    if backend == "sqlite":
        clone_url = clone_url.set(database=str(tmp_path / "clone_test.db"))
    clone = Rewinder(clone_url)
    clone_engine = create_engine(clone_url)
    engine.dispose()  # PostgreSQL clones only a template nobody is connected to
    try:
        clone.create(template=rewinder.url)
        assert snapshot(clone_engine) == snapshot(engine)
        assert installation(clone).intact
        assert next_id(clone_engine, order, item="probe") == expected_order
        assert next_id(clone_engine, parent, name="probe") == expected_parent
        clone.rewind()
        assert snapshot(clone_engine) == snapshot(engine)
    finally:
        clone_engine.dispose()
        if clone.exists():
            clone.drop()
        clone.close()


def test_list_databases_finds_siblings_by_prefix(
    rewinder: Rewinder, backend: str, tmp_path: Path
) -> None:
    stem = Path(rewinder.url.database).stem if backend == "sqlite" else rewinder.url.database
    sibling_name = f"{stem}_tmpl_0123abcd"
    if backend == "sqlite":
        sibling = rewinder.url.with_database(
            str(Path(rewinder.url.database).with_name(sibling_name + ".db"))
        )
    else:
        sibling = rewinder.url.with_database(sibling_name)
    with Rewinder(sibling) as other:
        other.create()
        try:
            found = rewinder.dialect.list_databases(rewinder.url, f"{stem}_tmpl_")
            assert found == [sibling.database]
            assert rewinder.dialect.list_databases(rewinder.url, "no_such_prefix_") == []
        finally:
            other.drop()


# --------------------------------------------------- tables recreated in a test


@pytest.mark.backends("postgresql", "sqlite")
def test_a_table_dropped_and_recreated_during_a_test_is_rewound_and_tracked_again(
    rewinder: Rewinder, engine: Engine, backend: str
) -> None:
    base = snapshot(engine)
    rewinder.close()
    child_key = key(backend, "child")
    with engine.begin() as conn:  # a migration down and up
        child.drop(conn)
        child.create(conn)
        conn.execute(insert(child).values(parent_id=2, note="made by the migration test"))
    result = rewinder.rewind()
    assert result.recreated_tables == (child_key,)
    assert child_key in result.tables
    assert result.dropped_tables == ()
    assert snapshot(engine) == base
    assert installation(rewinder).intact
    # tracked again: a later write is seen and rewound, ids included
    next_id(engine, child, parent_id=1, note="later")
    assert rewinder.dirty_tables() == [child_key]
    rewinder.rewind()
    assert snapshot(engine) == base
    assert next_id(engine, child, parent_id=1, note="again") == 2
