"""PostgreSQL-only behaviour of the dialect: partitions, identities, sequences,
user triggers, TRUNCATE, schemas, a role without superuser rights, databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

from conftest import SERVER_URLS, drop_database, make_database, require_backend
from dbrewind import DbrewindError, NotPreparedError, Rewinder, parse_url
from dbrewind.dialects.postgresql import CREATED_COMMENT, PostgreSQLDialect


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
            with pytest.raises(DbrewindError, match="Close the other sessions"):
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
