"""PostgreSQL-only behaviour of the dialect: partitions, identities, sequences,
user triggers, TRUNCATE, schemas, a role without superuser rights, databases,
and the lifecycle primitives beyond the conformance tests: installations read
by name, state, baseline layers, tables created again, advisory locks."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

from conftest import SERVER_URLS, drop_database, make_database, require_backend
from dbrewind import (
    ConfigurationError,
    DatabaseCreationError,
    DbrewindError,
    NotPreparedError,
    Rewinder,
    parse_url,
)
from dbrewind.dialects import Installation, RewindResult
from dbrewind.dialects.postgresql import CREATED_COMMENT, PostgreSQLDialect, _lock_key
from dbrewind.exceptions import LockTimeoutError, SchemaChangedError


@pytest.fixture
def backend() -> str:
    """This module runs on PostgreSQL only."""
    require_backend("postgresql")
    return "postgresql"


def run(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def prepared(url: URL, *statements: str, **options: Any) -> Rewinder:
    rw = Rewinder(url, **options)
    rw.prepare(lambda conn: [conn.execute(text(sql)) for sql in statements])
    return rw


# -------------------------------------------------------------- partitions
PARTITIONED = (
    "CREATE TABLE measurement (id bigserial, day date NOT NULL, v int) PARTITION BY RANGE (day)",
    "CREATE TABLE measurement_2024 PARTITION OF measurement "
    "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
    "CREATE TABLE measurement_2025 PARTITION OF measurement "
    "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY RANGE (day)",
    "CREATE TABLE measurement_2025_h1 PARTITION OF measurement_2025 "
    "FOR VALUES FROM ('2025-01-01') TO ('2025-07-01')",
    "CREATE TABLE measurement_2025_h2 PARTITION OF measurement_2025 "
    "FOR VALUES FROM ('2025-07-01') TO ('2026-01-01')",
    "INSERT INTO measurement (day, v) VALUES ('2024-03-01', 1), ('2025-09-01', 2)",
)


def test_partitions_are_not_tables_but_writes_to_them_mark_the_parent(
    db_url: URL, engine: Engine
) -> None:
    with prepared(db_url, *PARTITIONED) as rw:
        assert rw.schema.tables.keys() == {"public.measurement"}
        assert len(rw.schema.tables["public.measurement"].partitions) == 4
        baseline = rows(engine, "SELECT * FROM measurement ORDER BY id")

        run(engine, "INSERT INTO measurement_2025_h1 (day, v) VALUES ('2025-02-02', 3)")
        assert rw.dirty_tables() == ["public.measurement"]
        run(engine, "DELETE FROM measurement_2024")
        result = rw.rewind()

        assert result.tables == ("public.measurement",)
        assert rows(engine, "SELECT * FROM measurement ORDER BY id") == baseline
        run(engine, "INSERT INTO measurement (day, v) VALUES ('2024-05-05', 9)")
        assert rows(engine, "SELECT max(id) FROM measurement") == [(3,)]


# --------------------------------------------- identities, generated, sequences
def test_identity_always_generated_columns_and_shared_sequences_come_back(
    db_url: URL, engine: Engine
) -> None:
    setup = (
        "CREATE SEQUENCE shared_seq",
        'CREATE TABLE "Ident" (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
        "n int NOT NULL, twice int GENERATED ALWAYS AS (n * 2) STORED, "
        "ticket bigint NOT NULL DEFAULT nextval('shared_seq'))",
        'INSERT INTO "Ident" (n) VALUES (1), (2)',
        'ALTER TABLE "Ident" DROP COLUMN n CASCADE',
        'ALTER TABLE "Ident" ADD COLUMN n int NOT NULL DEFAULT 5',
    )
    with prepared(db_url, *setup) as rw:
        table = rw.schema.tables["public.Ident"]
        assert table.identity_always
        assert table.columns == ("id", "ticket", "n")
        assert set(table.sequences) == {'"public"."Ident_id_seq"', '"public"."shared_seq"'}
        baseline = rows(engine, 'SELECT * FROM "Ident" ORDER BY id')

        run(engine, 'INSERT INTO "Ident" (n) VALUES (7)', 'UPDATE "Ident" SET n = 8')
        first = rows(engine, 'SELECT max(id), max(ticket) FROM "Ident"')
        rw.rewind()
        assert rows(engine, 'SELECT * FROM "Ident" ORDER BY id') == baseline
        run(engine, 'INSERT INTO "Ident" (n) VALUES (7)')
        assert rows(engine, 'SELECT max(id), max(ticket) FROM "Ident"') == first


# --------------------------------------------------- user triggers, cascades
def test_user_triggers_do_not_fire_while_rewinding(db_url: URL, engine: Engine) -> None:
    setup = (
        "CREATE TABLE audit (what text)",
        "CREATE TABLE item (id serial PRIMARY KEY, name text)",
        "CREATE FUNCTION audit_item() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO audit VALUES (TG_OP); RETURN NULL; END $$",
        "CREATE TRIGGER item_audit AFTER INSERT OR DELETE ON item "
        "FOR EACH ROW EXECUTE FUNCTION audit_item()",
        "INSERT INTO item (name) VALUES ('seed')",
    )
    with prepared(db_url, *setup) as rw:
        run(engine, "INSERT INTO item (name) VALUES ('new')")
        assert rw.dirty_tables() == ["public.audit", "public.item"]
        rw.rewind()
        assert rows(engine, "SELECT what FROM audit") == [("INSERT",)]
        assert rw.dirty_tables() == []


def test_a_dirty_parent_does_not_cascade_into_a_clean_child(db_url: URL, engine: Engine) -> None:
    setup = (
        "CREATE TABLE parent (id int PRIMARY KEY, name text)",
        "CREATE TABLE child (id int PRIMARY KEY, "
        "parent_id int REFERENCES parent ON DELETE CASCADE)",
        "INSERT INTO parent VALUES (1, 'p')",
        "INSERT INTO child VALUES (1, 1)",
    )
    with prepared(db_url, *setup) as rw:
        run(engine, "UPDATE parent SET name = 'changed'")
        assert rw.rewind().tables == ("public.parent",)
        assert rows(engine, "SELECT * FROM child") == [(1, 1)]
        assert rows(engine, "SELECT * FROM parent") == [(1, "p")]


# ------------------------------------------------------------------ truncate
def test_large_tables_are_truncated_unless_a_table_outside_the_set_references_them(
    db_url: URL, engine: Engine
) -> None:
    setup = (
        "CREATE TABLE big (id int PRIMARY KEY)",
        "CREATE TABLE ref (id int PRIMARY KEY)",
        "CREATE TABLE refd_by (id int PRIMARY KEY, ref_id int REFERENCES ref)",
        "INSERT INTO big VALUES (0)",
    )
    with prepared(db_url, *setup, truncate_threshold=5) as rw:
        fill = (
            "INSERT INTO big SELECT g FROM generate_series(1, 50) g",
            "INSERT INTO ref SELECT g FROM generate_series(1, 50) g",
        )
        run(engine, *fill)
        first = rw.rewind()
        assert first.truncated == frozenset()
        assert first.deleted == {"public.big": 51, "public.ref": 50}

        run(engine, *fill)
        second = rw.rewind()
        assert second.truncated == {"public.big"}  # ref is referenced by clean refd_by
        assert second.deleted == {"public.big": -1, "public.ref": 50}
        assert rows(engine, "SELECT * FROM big") == [(0,)]
        assert rows(engine, "SELECT count(*) FROM ref") == [(0,)]
        assert rw.dirty_tables() == []


# ------------------------------------------------------------------- schemas
def test_other_schemas_awkward_names_and_what_is_never_a_table(db_url: URL, engine: Engine) -> None:
    long_name = "x" * 63
    setup = (
        'CREATE SCHEMA "App Schema"',
        f'CREATE TABLE "App Schema"."{long_name}" (id serial PRIMARY KEY, "select" text)',
        f'INSERT INTO "App Schema"."{long_name}" ("select") VALUES (\'seed\')',
        "CREATE TABLE public.ignored (id int)",
        f'CREATE VIEW "App Schema".v AS SELECT * FROM "App Schema"."{long_name}"',
        f'CREATE MATERIALIZED VIEW "App Schema".mv AS SELECT * FROM "App Schema"."{long_name}"',
    )
    with prepared(db_url, *setup, schemas=["App Schema"]) as rw:
        key = f"App Schema.{long_name}"
        assert list(rw.schema.tables) == [key]
        run(engine, f'INSERT INTO "App Schema"."{long_name}" ("select") VALUES (\'x\')')
        run(engine, "INSERT INTO public.ignored VALUES (1)")
        assert rw.dirty_tables() == [key]
        rw.rewind()
        assert rows(engine, f'SELECT * FROM "App Schema"."{long_name}"') == [(1, "seed")]
        assert rows(engine, "SELECT * FROM public.ignored") == [(1,)]


def test_tracking_is_not_installed_means_not_prepared(db_url: URL) -> None:
    dialect = PostgreSQLDialect()
    with Rewinder(db_url) as rw, rw.connection() as conn:
        assert not dialect.is_installed(conn)
        with pytest.raises(NotPreparedError, match="prepare"):
            dialect.dirty_tables(conn)
        with pytest.raises(NotPreparedError, match="prepare"):
            rw.rewind()


def test_install_is_idempotent_and_adds_one_trigger_per_table(db_url: URL, engine: Engine) -> None:
    with prepared(db_url, "CREATE TABLE a (id int)", "CREATE TABLE b (id int)") as rw:
        rw.install()
        rw.install()
        assert rows(engine, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dbrewind%'") == [
            (2,)
        ]
        assert rows(engine, "SELECT evtname FROM pg_event_trigger") == [("dbrewind_ddl",)]
        with rw.connection() as conn:
            assert rw.dialect.tracked_tables(conn) == ["public.a", "public.b"]


# --------------------------------------------- a role that is not superuser
@pytest.fixture
def owner_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """A database owned by a fresh non-superuser role, and a URL logging in as it."""
    role = f"dbrewind_{uuid.uuid4().hex[:8]}_test_role"
    admin = create_engine(SERVER_URLS["postgresql"], isolation_level="AUTOCOMMIT")
    run(admin, f"CREATE ROLE {role} LOGIN")
    url = make_database("postgresql", tmp_path)
    try:
        run(admin, f"ALTER DATABASE {url.database} OWNER TO {role}")
        yield url.set(username=role)
    finally:
        drop_database("postgresql", url)
        run(admin, f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def test_without_superuser_rights_the_rewind_keeps_fk_checks_and_takes_children_along(
    owner_url: URL,
) -> None:
    setup = (
        "CREATE TABLE parent (id serial PRIMARY KEY, name text)",
        "CREATE TABLE child (id serial PRIMARY KEY, parent_id int NOT NULL REFERENCES parent)",
        "INSERT INTO parent (name) VALUES ('p')",
        "INSERT INTO child (parent_id) VALUES (1)",
    )
    engine = create_engine(owner_url)
    try:
        with prepared(owner_url, *setup) as rw:
            assert rows(engine, "SELECT count(*) FROM pg_event_trigger") == [(0,)]
            run(
                engine,
                "UPDATE parent SET name = 'changed'",
                "INSERT INTO child (parent_id) VALUES (1)",
            )
            result = rw.rewind()
            assert set(result.tables) == {"public.parent", "public.child"}
            assert rows(engine, "SELECT * FROM parent") == [(1, "p")]
            assert rows(engine, "SELECT * FROM child") == [(1, 1)]

            run(engine, "UPDATE parent SET name = 'again'")
            assert rw.rewind().tables == ("public.child", "public.parent")

            # Without the event trigger, created tables are still found.
            run(engine, "CREATE TABLE scratch (id int)")
            assert rw.rewind().created_tables == ("public.scratch",)
    finally:
        engine.dispose()


def test_without_superuser_rights_a_blocking_cycle_says_how_to_grant_the_role(
    owner_url: URL,
) -> None:
    setup = (
        "CREATE TABLE a (id int PRIMARY KEY, b_id int)",
        "CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a)",
        "ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b",
        "INSERT INTO a VALUES (1, NULL)",
        "INSERT INTO b VALUES (1, 1)",
        "UPDATE a SET b_id = 1",
    )
    engine = create_engine(owner_url)
    try:
        with prepared(owner_url, *setup) as rw:
            run(engine, "UPDATE a SET b_id = 1 WHERE id = 1")
            with pytest.raises(DbrewindError, match="GRANT SET ON PARAMETER"):
                rw.rewind()
    finally:
        engine.dispose()


# ----------------------------------------------------------------- databases
@pytest.fixture
def spare_url(backend: str) -> Iterator[URL]:
    """A database name nobody uses yet; dropped afterwards if something created it."""
    url = parse_url(SERVER_URLS["postgresql"]).url.set(
        database=f"dbrewind_{uuid.uuid4().hex[:10]}_clone_test"
    )
    try:
        yield url
    finally:
        drop_database("postgresql", url)


def test_create_clone_and_drop_databases(db_url: URL, spare_url: URL, engine: Engine) -> None:
    dialect = PostgreSQLDialect()
    with prepared(db_url, "CREATE TABLE t (id serial PRIMARY KEY)", "INSERT INTO t DEFAULT VALUES"):
        pass  # closed: the template has no dbrewind session left
    template, clone = parse_url(db_url), parse_url(spare_url)
    assert not dialect.database_exists(clone)

    # An idle dbrewind session on the template is ended, not waited for.
    idle = create_engine(db_url, connect_args={"application_name": "dbrewind worker"})
    with idle.connect() as conn:
        conn.execute(text("SELECT 1"))
        conn.commit()
        dialect.create_database(clone, template=template)
    idle.dispose()

    assert dialect.database_exists(clone)
    with Rewinder(clone) as rw:
        with rw.connection() as conn:
            assert dialect.created_by_dbrewind(conn)
        cloned = create_engine(spare_url)
        run(cloned, "INSERT INTO t DEFAULT VALUES")
        assert rw.dirty_tables() == ["public.t"]
        rw.rewind()
        assert rows(cloned, "SELECT * FROM t") == [(1,)]
        cloned.dispose()
    dialect.drop_database(clone)
    assert not dialect.database_exists(clone)
    dialect.drop_database(clone)  # dropping what is gone is fine


def test_a_template_held_by_another_session_is_waited_for_then_named(
    db_url: URL, spare_url: URL
) -> None:
    dialect = PostgreSQLDialect()
    dialect.template_wait = 0.3
    other = create_engine(db_url, connect_args={"application_name": "someone else"})
    try:
        with other.connect() as conn:
            conn.execute(text("SELECT 1"))
            with pytest.raises(DatabaseCreationError, match="Close the other sessions"):
                dialect.create_database(parse_url(spare_url), template=parse_url(db_url))
    finally:
        other.dispose()


def test_mark_created_is_what_created_by_dbrewind_reads(db_url: URL) -> None:
    dialect = PostgreSQLDialect()
    with Rewinder(db_url) as rw, rw.connection() as conn:
        assert not dialect.created_by_dbrewind(conn)
        dialect.mark_created(conn)
        assert dialect.created_by_dbrewind(conn)
        comment = conn.execute(
            text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = current_database()"
            )
        ).scalar()
        assert comment == CREATED_COMMENT


# ----------------------------------------------------------------- lifecycle
def installation(rw: Rewinder) -> Installation:
    with rw.connection() as conn:
        return rw.dialect.installation(conn)


def push(rw: Rewinder) -> tuple[str, ...]:
    with rw.connection() as conn:
        return rw.dialect.push_baseline(conn)


def pop(rw: Rewinder, depth: int) -> RewindResult:
    with rw.connection() as conn:
        return rw.dialect.pop_baseline(conn, depth)


def tracking_tables(engine: Engine) -> list[str]:
    """The tables in dbrewind's schema (baseline copies among them)."""
    return [
        r[0]
        for r in rows(
            engine,
            "SELECT tablename FROM pg_tables WHERE schemaname = "
            "'dbrewind' ORDER BY tablename COLLATE \"C\"",
        )
    ]


LONG = "L" + "o" * 62  # 63 characters: PostgreSQL's identifier limit
AWKWARD = (
    'CREATE SCHEMA "Sales Dept"',
    f'CREATE TABLE "Sales Dept"."{LONG}" (id serial PRIMARY KEY, "select" text NOT NULL)',
    'CREATE TABLE "Sales Dept"."order" '
    '(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Item Name" text)',
    f'INSERT INTO "Sales Dept"."{LONG}" ("select") VALUES (\'seed\')',
    'INSERT INTO "Sales Dept"."order" ("Item Name") VALUES (\'first\')',
)


def test_installation_compares_awkward_names_by_name(db_url: URL, engine: Engine) -> None:
    with prepared(db_url, *AWKWARD, schemas=["Sales Dept"]) as rw:
        long_key, order_key = f"Sales Dept.{LONG}", "Sales Dept.order"
        found = installation(rw)
        assert found.intact
        assert found.tracked == (long_key, order_key)
        assert found == Installation(installed=True, tracked=(long_key, order_key))

        run(engine, f'INSERT INTO "Sales Dept"."{LONG}" ("select") VALUES (\'x\')')
        assert installation(rw).dirty == (long_key,)
        rw.rewind()
        rw.close()
        run(
            engine,
            f'DROP TABLE "Sales Dept"."{LONG}"',
            f'CREATE TABLE "Sales Dept"."{LONG}" (id serial PRIMARY KEY, "select" text NOT NULL)',
            'DROP TABLE "Sales Dept"."order"',
            'CREATE VIEW "Sales Dept"."order" AS SELECT 1 AS id',  # a name, but not a table
            'CREATE TABLE "Sales Dept"."New Table" (id int)',
            "CREATE TABLE public.elsewhere (id int)",  # not in a tracked schema
        )
        found = installation(rw)
        assert found.untracked == (long_key,)
        assert found.missing == (order_key,)
        assert found.created == ("Sales Dept.New Table",)
        assert found.tracked == (long_key, order_key)
        assert not found.intact


def test_layers_and_tables_created_again_with_awkward_names(db_url: URL, engine: Engine) -> None:
    long_table, order = f'"Sales Dept"."{LONG}"', '"Sales Dept"."order"'

    def both() -> list[list[tuple[Any, ...]]]:
        return [rows(engine, f"SELECT * FROM {t} ORDER BY id") for t in (long_table, order)]

    with prepared(db_url, *AWKWARD, schemas=["Sales Dept"]) as rw:
        base = both()
        run(
            engine,
            f"INSERT INTO {long_table} (\"select\") VALUES ('module')",
            f"INSERT INTO {order} (\"Item Name\") VALUES ('module')",
        )
        assert push(rw) == (f"Sales Dept.{LONG}", "Sales Dept.order")
        layer = both()
        rw.close()
        run(engine, f"DROP TABLE {long_table}", AWKWARD[1], f"DELETE FROM {order}")
        result = rw.rewind()
        assert result.recreated_tables == (f"Sales Dept.{LONG}",)
        assert both() == layer
        run(engine, f"INSERT INTO {order} (\"Item Name\") VALUES ('test')")
        assert rows(engine, f"SELECT max(id) FROM {order}") == [(3,)]
        pop(rw, 0)
        assert both() == base
        assert installation(rw).intact


def test_an_installation_an_older_dbrewind_made_counts_as_not_installed(
    db_url: URL, engine: Engine
) -> None:
    with prepared(db_url, "CREATE TABLE t (id int)") as rw:
        run(engine, "DROP TABLE dbrewind.state, dbrewind.layers, dbrewind.layer_sequences")
        with rw.connection() as conn:
            assert not rw.dialect.is_installed(conn)
            assert rw.dialect.installation(conn) == Installation(installed=False)
            with pytest.raises(NotPreparedError, match="prepare"):
                rw.dialect.write_state(conn, {"k": "v"})
        rw.prepare()  # installs this version again
        assert installation(rw).intact


def test_state_outlives_rewinds_and_layers_and_goes_with_uninstall(
    db_url: URL, engine: Engine
) -> None:
    with prepared(db_url, "CREATE TABLE t (id int)") as rw:
        with rw.connection() as conn:
            rw.dialect.write_state(conn, {"fingerprint": "f1", "50%_done": "a\\b"})
            rw.dialect.write_state(conn, {})
        run(engine, "INSERT INTO t VALUES (1)")
        push(rw)
        run(engine, "INSERT INTO t VALUES (2)")
        rw.rewind()
        pop(rw, 0)
        assert dict(installation(rw).state) == {"fingerprint": "f1", "50%_done": "a\\b"}
        rw.uninstall()
        assert installation(rw) == Installation(installed=False)
        with rw.connection() as conn, pytest.raises(NotPreparedError):
            rw.dialect.write_state(conn, {"k": "v"})


CYCLE = (
    "CREATE TABLE a (id serial PRIMARY KEY, b_id int)",
    "CREATE TABLE b (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a_id int REFERENCES a)",
    "ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b",
    'CREATE TABLE "empty" (id bigserial PRIMARY KEY, note text)',
    "INSERT INTO a (b_id) VALUES (NULL)",
    "INSERT INTO b (a_id) VALUES (1)",
    "UPDATE a SET b_id = 1",
)


def cycle_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    return {t: rows(engine, f'SELECT * FROM "{t}" ORDER BY id') for t in ("a", "b", "empty")}


def cycle_next_ids(engine: Engine) -> tuple[int, int, int]:
    """Insert one row into each table (committed) and return the ids they got."""
    with engine.begin() as conn:
        a = conn.execute(text("INSERT INTO a (b_id) VALUES (NULL) RETURNING id")).scalar_one()
        b = conn.execute(text("INSERT INTO b (a_id) VALUES (NULL) RETURNING id")).scalar_one()
        e = conn.execute(text('INSERT INTO "empty" DEFAULT VALUES RETURNING id')).scalar_one()
    return a, b, e


def test_layers_over_a_foreign_key_cycle_and_an_empty_baseline_pop_back(
    db_url: URL, engine: Engine
) -> None:
    with prepared(db_url, *CYCLE) as rw:
        base = cycle_rows(engine)
        base_ids = cycle_next_ids(engine)
        rw.rewind()

        # the module fixture: a second a/b pair pointing at each other, one "empty" row
        run(
            engine,
            "INSERT INTO a (b_id) VALUES (NULL)",
            "INSERT INTO b (a_id) VALUES (2)",
            "UPDATE a SET b_id = 2 WHERE id = 2",
            "INSERT INTO \"empty\" (note) VALUES ('module')",
        )
        assert push(rw) == ("public.a", "public.b", "public.empty")
        layer = cycle_rows(engine)
        copies = [t for t in tracking_tables(engine) if t.startswith("b_")]
        assert len(copies) == 5  # a and b from the install, all three for layer 1
        assert len([c for c in copies if c.endswith("_1") and c.count("_") == 2]) == 3
        layer_ids = cycle_next_ids(engine)
        assert layer_ids == (base_ids[0] + 1, base_ids[1] + 1, base_ids[2] + 1)

        # a test inside the layer breaks the cycle and empties everything
        run(engine, "UPDATE a SET b_id = NULL", "DELETE FROM b", 'DELETE FROM "empty"')
        rw.rewind()
        assert cycle_rows(engine) == layer
        assert cycle_next_ids(engine) == layer_ids

        result = pop(rw, 0)
        assert set(result.tables) == {"public.a", "public.b", "public.empty"}
        assert cycle_rows(engine) == base
        assert base["empty"] == []
        assert cycle_next_ids(engine) == base_ids
        rw.rewind()
        copies = [t for t in tracking_tables(engine) if t.startswith("b_")]
        assert len(copies) == 2
        assert all(c.count("_") == 1 for c in copies)  # the layer's copies are gone
        assert installation(rw).depth == 0


def test_pushing_nothing_and_popping_to_the_current_depth_change_no_layer(
    db_url: URL, engine: Engine
) -> None:
    with prepared(db_url, "CREATE TABLE t (id serial PRIMARY KEY)") as rw:
        run(engine, "INSERT INTO t DEFAULT VALUES")
        assert push(rw) == ("public.t",)
        assert push(rw) == ()  # nothing dirty since
        # the baseline copy it made is dbrewind's own DDL: no "!ddl" mark for the next rewind
        assert rows(engine, "SELECT tbl FROM dbrewind.marks") == []
        assert installation(rw).depth == 1
        run(engine, "INSERT INTO t DEFAULT VALUES")
        result = pop(rw, 1)  # a plain rewind to the layer
        assert result.tables == ("public.t",)
        assert rows(engine, "SELECT id FROM t") == [(1,)]
        assert installation(rw).depth == 1
        assert pop(rw, 1).clean
        assert rows(engine, "SELECT tbl FROM dbrewind.marks") == []
        with pytest.raises(DbrewindError, match="layers 0 to 1"):
            pop(rw, 2)
        with pytest.raises(ConfigurationError, match="depth=-1"):
            pop(rw, -1)
        assert installation(rw).depth == 1
        pop(rw, 0)
        assert rows(engine, "SELECT id FROM t") == []


def test_a_push_that_fails_midway_leaves_no_layer_behind(db_url: URL, engine: Engine) -> None:
    setup = ("CREATE TABLE first (id serial PRIMARY KEY)", "CREATE TABLE second (id int)")
    with prepared(db_url, *setup, lock_timeout=0.3) as rw:
        run(engine, "INSERT INTO first DEFAULT VALUES", "INSERT INTO second VALUES (1)")
        copies_before = tracking_tables(engine)
        with engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE second IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(LockTimeoutError, match="Pushing a baseline layer onto"):
                push(rw)
            blocker.rollback()
        found = installation(rw)
        assert (found.depth, found.dirty) == (0, ("public.first", "public.second"))
        assert tracking_tables(engine) == copies_before
        rw.rewind()
        assert rows(engine, "SELECT count(*) FROM first") == [(0,)]
        assert rows(engine, "SELECT count(*) FROM second") == [(0,)]


def test_a_push_killed_midway_leaves_no_layer_behind(db_url: URL, engine: Engine) -> None:
    setup = ("CREATE TABLE first (id int)", "CREATE TABLE second (id int)")
    with prepared(db_url, *setup, lock_timeout=None) as rw:
        run(engine, "INSERT INTO first VALUES (1)", "INSERT INTO second VALUES (1)")
        errors: list[BaseException] = []

        def pushing() -> None:
            try:
                push(rw)
            except BaseException as exc:
                errors.append(exc)

        with engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE second IN ACCESS EXCLUSIVE MODE"))
            worker = threading.Thread(target=pushing)
            worker.start()
            deadline = time.monotonic() + 10
            killed: list[tuple[Any, ...]] = []
            while not killed and time.monotonic() < deadline:
                time.sleep(0.05)
                killed = rows(
                    engine,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE '%push_baseline%'",
                )
            worker.join(10)
            blocker.rollback()
        assert killed == [(True,)]
        assert len(errors) == 1
        assert isinstance(errors[0], DbrewindError)
    with Rewinder(db_url) as later:
        found = installation(later)
        assert (found.depth, found.dirty) == (0, ("public.first", "public.second"))
        later.rewind()
        assert rows(engine, "SELECT count(*) FROM first") == [(0,)]


def test_the_rollback_sandbox_puts_sequences_back_to_the_current_layer(
    db_url: URL, engine: Engine
) -> None:
    with prepared(db_url, "CREATE TABLE t (id serial PRIMARY KEY)") as rw:
        reset = rw.dialect.sandbox_rollback_sql()
        assert reset is not None

        def sandboxed_insert() -> int:
            with engine.connect() as conn:
                new_id = conn.execute(text("INSERT INTO t DEFAULT VALUES RETURNING id")).scalar()
                conn.execute(text(reset))
                conn.rollback()
            return int(new_id)

        run(engine, "INSERT INTO t DEFAULT VALUES", "INSERT INTO t DEFAULT VALUES")
        push(rw)
        assert sandboxed_insert() == 3
        assert sandboxed_insert() == 3  # the layer's value, not the install's
        pop(rw, 0)
        assert sandboxed_insert() == 1


# ------------------------------------------ tables dropped and created again
PARENT_CHILD = (
    "CREATE TABLE parent (id serial PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE child (id serial PRIMARY KEY, parent_id int NOT NULL REFERENCES parent)",
    "INSERT INTO parent (name) VALUES ('p1'), ('p2')",
    "INSERT INTO child (parent_id) VALUES (1)",
)
MIGRATE_DOWN_UP = (
    "DELETE FROM child",
    "DROP TABLE parent CASCADE",  # takes child's foreign key along
    "CREATE TABLE parent (id serial PRIMARY KEY, name text NOT NULL)",
    "ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent",
    "INSERT INTO parent (name) VALUES ('made by the migration test')",
)


def family(engine: Engine) -> list[list[tuple[Any, ...]]]:
    return [rows(engine, f"SELECT * FROM {t} ORDER BY id") for t in ("parent", "child")]


@pytest.mark.parametrize("role", ["superuser", "owner"])
def test_a_table_created_again_during_a_test_is_tracked_again_and_rewound(
    role: str, request: pytest.FixtureRequest
) -> None:
    """With the event trigger (superuser) and without it (the rewind always compares)."""
    url: URL = request.getfixturevalue("db_url" if role == "superuser" else "owner_url")
    engine = create_engine(url)
    try:
        with prepared(url, *PARENT_CHILD) as rw:
            events = rows(engine, "SELECT count(*) FROM pg_event_trigger")
            assert events == [(1,)] if role == "superuser" else [(0,)]
            base = family(engine)
            rw.close()
            run(engine, *MIGRATE_DOWN_UP)
            assert installation(rw).untracked == ("public.parent",)

            result = rw.rewind()
            assert result.recreated_tables == ("public.parent",)
            assert set(result.tables) == {"public.parent", "public.child"}
            assert (result.created_tables, result.dropped_tables) == ((), ())
            assert family(engine) == base
            assert installation(rw).intact
            # the new table's own sequence went back to the baseline's value
            run(engine, "INSERT INTO parent (name) VALUES ('next')")
            assert rows(engine, "SELECT max(id) FROM parent") == [(3,)]
            assert rw.dirty_tables() == ["public.parent"]
            assert rw.rewind().recreated_tables == ()
            assert family(engine) == base
    finally:
        engine.dispose()


def test_a_table_created_again_takes_the_sequence_its_new_column_draws_from(
    db_url: URL, engine: Engine
) -> None:
    setup = (
        "CREATE TABLE item (id serial PRIMARY KEY, name text)",
        "INSERT INTO item (name) VALUES ('seed')",
    )
    with prepared(db_url, *setup) as rw:
        rw.close()
        run(
            engine,
            "ALTER TABLE item RENAME TO item_old",  # keeps item_id_seq
            "CREATE TABLE item (id serial PRIMARY KEY, name text)",  # draws from item_id_seq1
            "INSERT INTO item (name) VALUES ('a'), ('b')",
        )
        assert rows(engine, "SELECT pg_get_serial_sequence('item', 'id')") == [
            ("public.item_id_seq1",)
        ]
        result = rw.rewind()
        assert result.recreated_tables == ("public.item",)
        assert result.created_tables == ("public.item_old",)  # renamed away: not tracked
        assert rows(engine, "SELECT * FROM item") == [(1, "seed")]
        run(engine, "INSERT INTO item (name) VALUES ('next')")
        assert rows(engine, "SELECT max(id) FROM item") == [(2,)]
        assert rows(engine, "SELECT last_value FROM item_id_seq") == [(1,)]  # untouched


@pytest.mark.parametrize(
    "new_table",
    [
        "CREATE TABLE item (id serial PRIMARY KEY)",  # a column the baseline holds is gone
        "CREATE TABLE item (id serial PRIMARY KEY, name date)",  # changed type
        "CREATE TABLE item (id serial PRIMARY KEY, name text, code text NOT NULL)",
        "CREATE TABLE item (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text)",
        "CREATE TABLE item (id int PRIMARY KEY, name text)",  # draws from no sequence
    ],
)
def test_a_table_created_again_that_its_baseline_no_longer_fits_is_reported_dropped(
    new_table: str, db_url: URL, engine: Engine
) -> None:
    setup = (
        "CREATE TABLE item (id serial PRIMARY KEY, name text)",
        "CREATE TABLE other (id int)",
        "INSERT INTO item (name) VALUES ('seed')",
    )
    with prepared(db_url, *setup) as rw:
        rw.close()
        run(engine, "DROP TABLE item", new_table, "INSERT INTO other VALUES (1)")
        with rw.connection() as conn:
            result = rw.dialect.rewind(conn)
        assert result.dropped_tables == ("public.item",)
        assert (result.recreated_tables, result.created_tables) == ((), ())
        assert result.tables == ("public.other",)  # the rest is rewound
        assert rows(engine, "SELECT * FROM other") == []
        found = installation(rw)
        assert (found.untracked, found.created) == (("public.item",), ())
        with pytest.raises(SchemaChangedError, match=r"'public\.item'"):
            rw.rewind()  # reported again until the schema is resolved


def test_a_table_created_again_with_an_extra_nullable_column_fits(
    db_url: URL, engine: Engine
) -> None:
    setup = (
        "CREATE TABLE item (id serial PRIMARY KEY, name text)",
        "INSERT INTO item (name) VALUES ('seed')",
    )
    with prepared(db_url, *setup) as rw:
        rw.close()
        run(
            engine,
            "DROP TABLE item",
            "CREATE TABLE item (id serial PRIMARY KEY, extra int, name text, "
            "flag boolean NOT NULL DEFAULT false)",
        )
        assert rw.rewind().recreated_tables == ("public.item",)
        assert rows(engine, "SELECT * FROM item") == [(1, None, "seed", False)]


def test_a_partitioned_table_created_again_is_tracked_again_partitions_included(
    db_url: URL, engine: Engine
) -> None:
    with prepared(db_url, *PARTITIONED) as rw:
        baseline = rows(engine, "SELECT * FROM measurement ORDER BY id")
        rw.close()
        run(
            engine,
            # partitions detached keep their trigger; attached again, they are the new parent's
            "ALTER TABLE measurement DETACH PARTITION measurement_2024",
            "ALTER TABLE measurement_2024 ALTER COLUMN id DROP DEFAULT",
            "DROP TABLE measurement",
            "CREATE TABLE measurement (id bigserial, day date NOT NULL, v int) "
            "PARTITION BY RANGE (day)",
            "ALTER TABLE measurement ATTACH PARTITION measurement_2024 "
            "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
            *PARTITIONED[2:5],
            "INSERT INTO measurement (day, v) VALUES ('2025-03-03', 7)",
        )
        result = rw.rewind()
        assert result.recreated_tables == ("public.measurement",)
        assert rows(engine, "SELECT * FROM measurement ORDER BY id") == baseline
        assert installation(rw).intact
        run(engine, "INSERT INTO measurement_2025_h2 (day, v) VALUES ('2025-08-08', 8)")
        assert rw.dirty_tables() == ["public.measurement"]
        run(engine, "INSERT INTO measurement_2024 (id, day, v) VALUES (99, '2024-08-08', 9)")
        rw.rewind()
        assert rows(engine, "SELECT * FROM measurement ORDER BY id") == baseline
        assert rows(engine, "SELECT count(*) FROM pg_trigger WHERE tgname = 'dbrewind_track'") == [
            (5,)
        ]


def test_a_table_created_again_inside_a_layer_comes_back_with_the_layer(
    db_url: URL, engine: Engine
) -> None:
    setup = (
        "CREATE TABLE item (id serial PRIMARY KEY, name text)",
        "INSERT INTO item (name) VALUES ('seed')",
    )
    with prepared(db_url, *setup) as rw:
        run(engine, "INSERT INTO item (name) VALUES ('module')")
        push(rw)
        rw.close()
        run(engine, "DROP TABLE item", setup[0])
        assert rw.rewind().recreated_tables == ("public.item",)
        assert rows(engine, "SELECT * FROM item ORDER BY id") == [(1, "seed"), (2, "module")]
        run(engine, "INSERT INTO item (name) VALUES ('test')")
        assert rows(engine, "SELECT max(id) FROM item") == [(3,)]
        pop(rw, 0)
        assert rows(engine, "SELECT * FROM item ORDER BY id") == [(1, "seed")]
        run(engine, "INSERT INTO item (name) VALUES ('after')")
        assert rows(engine, "SELECT max(id) FROM item") == [(2,)]


# ------------------------------------------------------------ locks, listing
def test_a_lock_is_an_advisory_lock_in_the_maintenance_database_naming_its_holder(
    db_url: URL,
) -> None:
    dialect, url = PostgreSQLDialect(), parse_url(db_url)
    admin = create_engine(SERVER_URLS["postgresql"])
    lock = dialect.acquire_lock(url, "lease", wait=0)
    assert lock is not None
    try:
        assert lock.name == f"lease:{url.database}"
        (held,) = rows(
            admin,
            "SELECT l.classid::bigint, l.objsubid, d.datname, a.application_name, a.pid "
            "FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
            " AND a.application_name LIKE 'dbrewind lock %'"
            f" AND l.objid::bigint = {_lock_key('lease', url.database)}",
        )
        me = f"dbrewind lock {os.getpid()}@{socket.gethostname()}"[:63]
        assert held[:4] == (0x64627277, 2, "postgres", me)
        assert dialect.lock_holder(url, "lease") == f"pid {held[4]} on 127.0.0.1, {me}"
        assert dialect.lock_holder(url, "build") is None
    finally:
        lock.release()
        admin.dispose()
    assert dialect.lock_holder(url, "lease") is None


def test_the_lock_key_is_stable_and_31_bits() -> None:
    assert _lock_key("lease", "app_test") == _lock_key("lease", "app_test")
    keys = {_lock_key(p, d) for p in ("lease", "build") for d in ("a_test", "b_test")}
    assert len(keys) == 4
    assert all(0 <= k < 2**31 for k in keys)


def test_a_refused_server_connection_names_the_server_for_locks_and_listing() -> None:
    url = parse_url("postgresql+psycopg://postgres@127.0.0.1:1/app_test")
    dialect = PostgreSQLDialect()
    with pytest.raises(DbrewindError, match="Cannot connect to the PostgreSQL server"):
        dialect.acquire_lock(url, "lease", wait=0)
    with pytest.raises(DbrewindError, match="Cannot connect to the PostgreSQL server"):
        dialect.lock_holder(url, "lease")
    with pytest.raises(DbrewindError, match="Cannot connect to the PostgreSQL server"):
        dialect.list_databases(url, "app_")


def test_list_databases_compares_the_prefix_literally() -> None:
    stem = f"dbrewind_{uuid.uuid4().hex[:8]}"
    names = [f"{stem}_x_test", f"{stem}_xy_test", f"{stem}_x%_test"]
    server = parse_url(SERVER_URLS["postgresql"])
    dialect = PostgreSQLDialect()
    try:
        for name in names:
            dialect.create_database(server.with_database(name))
        assert dialect.list_databases(server, f"{stem}_x_") == [names[0]]  # "_" is no wildcard
        assert dialect.list_databases(server, f"{stem}_x%") == [names[2]]  # nor is "%"
        assert dialect.list_databases(server, f"{stem}_x") == sorted(names)
        assert dialect.list_databases(server, f"{stem}_z") == []
    finally:
        for name in names:
            dialect.drop_database(server.with_database(name))


def test_a_clone_carries_the_state_and_the_layers(
    db_url: URL, spare_url: URL, engine: Engine
) -> None:
    with prepared(db_url, "CREATE TABLE t (id serial PRIMARY KEY, n int)") as rw:
        run(engine, "INSERT INTO t (n) VALUES (1)")
        push(rw)
        with rw.connection() as conn:
            rw.dialect.write_state(conn, {"fingerprint": "f1"})
    engine.dispose()  # the template must have no session left
    PostgreSQLDialect().create_database(parse_url(spare_url), template=parse_url(db_url))
    clone_engine = create_engine(spare_url)
    try:
        with Rewinder(spare_url) as clone:
            found = installation(clone)
            assert found.intact
            assert (dict(found.state), found.depth) == ({"fingerprint": "f1"}, 1)
            run(clone_engine, "INSERT INTO t (n) VALUES (2)")
            clone.rewind()
            assert rows(clone_engine, "SELECT * FROM t") == [(1, 1)]
            pop(clone, 0)
            assert rows(clone_engine, "SELECT * FROM t") == []
        assert rows(engine, "SELECT * FROM t") == [(1, 1)]  # the template keeps its layer
    finally:
        clone_engine.dispose()


def test_rewinds_vacuum_the_dead_rows_they_leave(
    db_url: URL, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewound tables do not bloat: dbrewind vacuums them (and its marks) when due."""
    import dbrewind.dialects.postgresql.rewind as pg

    monkeypatch.setattr(pg, "VACUUM_AFTER", 40)
    rewinder = prepared(
        db_url,
        "CREATE TABLE acc (id serial PRIMARY KEY, v text)",
        "INSERT INTO acc (v) SELECT 'b' || g FROM generate_series(1, 20) g",
    )
    try:
        for _ in range(12):
            run(engine, "INSERT INTO acc (v) VALUES ('n'), ('n')", "UPDATE acc SET v = 'u'")
            rewinder.rewind()
        vacuumed = rows(
            engine,
            "SELECT relname FROM pg_stat_all_tables WHERE vacuum_count > 0 "
            "AND relname IN ('acc', 'marks') ORDER BY relname",
        )
        assert vacuumed == [("acc",), ("marks",)]
        assert rows(engine, "SELECT count(*) FROM acc WHERE v LIKE 'b%'") == [(20,)]
    finally:
        rewinder.close()
