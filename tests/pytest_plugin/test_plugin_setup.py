"""Schema-setup helpers, the template fingerprint and lock, and marker parsing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Engine

from dbrewind._url import parse_url
from dbrewind.exceptions import ConfigurationError
from dbrewind.provision.fingerprint import fingerprint
from dbrewind.provision.naming import clone_candidates, template_name
from dbrewind.pytest_plugin.config import DbrewindMark, derive_test_url, load_callable, mark_for
from dbrewind.setup import alembic_setup, chain, metadata_setup, split_sql, sql_files_setup


def _metadata(extra_column: bool = False) -> sa.MetaData:
    metadata = sa.MetaData()
    columns = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("Title", sa.String(50)),
    ]
    if extra_column:
        columns.append(sa.Column("pages", sa.Integer))
    sa.Table("order", metadata, *columns)
    return metadata


# ------------------------------------------------------------------ helpers


def test_metadata_setup_creates_the_tables(engine: Engine) -> None:
    setup = metadata_setup(_metadata())
    with engine.begin() as conn:
        setup(conn)
    assert inspect(engine).get_table_names() == ["order"]


def test_metadata_setup_accepts_a_declarative_base_and_rejects_other_things() -> None:
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        pass

    assert metadata_setup(Base).metadata is Base.metadata
    with pytest.raises(ConfigurationError, match="needs a sqlalchemy MetaData"):
        metadata_setup(object())


def test_sql_files_setup_runs_every_statement_in_file_order(
    engine: Engine, tmp_path: Path, backend: str
) -> None:
    first = tmp_path / "01_schema.sql"
    first.write_text(
        "-- a comment; with a semicolon\n"
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, note VARCHAR(40));\n'
        "/* block; comment */\n"
    )
    second = tmp_path / "02_rows.sql"
    second.write_text(
        "INSERT INTO \"user\" (id, note) VALUES (1, 'a;b');\n"
        "INSERT INTO \"user\" (id, note) VALUES (2, '100% it''s');\n"
    )
    setup = sql_files_setup(first, second)
    with engine.begin() as conn:
        if backend == "mysql":
            conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        setup(conn)
    with engine.connect() as conn:
        quoted = conn.dialect.identifier_preparer.quote_identifier("user")
        rows = conn.execute(text(f"SELECT note FROM {quoted} ORDER BY id")).scalars().all()
    assert rows == ["a;b", "100% it's"]


def test_sql_files_setup_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing\.sql"):
        sql_files_setup(tmp_path / "missing.sql")


def test_split_sql_keeps_dollar_quoted_bodies_whole() -> None:
    script = textwrap.dedent(
        """
        CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
        CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 2; END; $body$ LANGUAGE plpgsql;
        SELECT 'x;y'
        """
    )
    parts = split_sql(script)
    assert len(parts) == 3
    assert parts[0].endswith("LANGUAGE sql")
    assert "RETURN 2; END;" in parts[1]
    assert parts[2] == "SELECT 'x;y'"


ALEMBIC_ENV = """
from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    connection = create_engine(config.get_main_option("sqlalchemy.url")).connect()
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
"""

ALEMBIC_VERSION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

def upgrade():
    op.create_table("order", sa.Column("id", sa.Integer, primary_key=True))

def downgrade():
    op.drop_table("order")
"""


def _alembic_project(root: Path) -> Path:
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(ALEMBIC_ENV)
    (root / "migrations" / "script.py.mako").write_text("")
    (root / "migrations" / "versions" / "0001_order.py").write_text(ALEMBIC_VERSION)
    ini = root / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {root / 'migrations'}\n")
    return ini


def test_alembic_setup_upgrades_to_head_on_the_given_connection(
    engine: Engine, tmp_path: Path
) -> None:
    setup = alembic_setup(_alembic_project(tmp_path))
    with engine.begin() as conn:
        setup(conn)
    assert set(inspect(engine).get_table_names()) == {"order", "alembic_version"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"


def test_alembic_fingerprint_follows_the_migration_files(tmp_path: Path) -> None:
    ini = _alembic_project(tmp_path)
    before = alembic_setup(ini).dbrewind_fingerprint()
    assert alembic_setup(ini).dbrewind_fingerprint() == before
    version = tmp_path / "migrations" / "versions" / "0001_order.py"
    version.write_text(version.read_text().replace('"order"', '"orders"'))
    assert alembic_setup(ini).dbrewind_fingerprint() != before


def test_alembic_setup_names_a_missing_config(tmp_path: Path, db_url: URL) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn, pytest.raises(ConfigurationError, match="not found"):
            alembic_setup(tmp_path / "nope.ini")(conn)
    finally:
        engine.dispose()


# ------------------------------------------------------------------ fingerprint


def test_fingerprint_changes_with_the_model_metadata_a_plain_callable_uses() -> None:
    first = _metadata()

    def setup(conn: object) -> None:
        first.create_all(conn)  # type: ignore[arg-type]

    before = fingerprint([setup])
    assert fingerprint([setup]) == before
    first.tables["order"].append_column(sa.Column("pages", sa.Integer))
    assert fingerprint([setup]) != before


def test_fingerprint_follows_helpers_paths_and_extras(tmp_path: Path) -> None:
    base = fingerprint([metadata_setup(_metadata())])
    assert fingerprint([metadata_setup(_metadata(extra_column=True))]) != base
    assert fingerprint([chain(metadata_setup(_metadata()))]) != base
    models = tmp_path / "models"
    models.mkdir()
    (models / "a.py").write_text("x = 1\n")
    with_paths = fingerprint([], paths=[models])
    (models / "a.py").write_text("x = 2\n")
    assert fingerprint([], paths=[models]) != with_paths
    assert fingerprint([], extra=["postgresql"]) != fingerprint([], extra=["mysql"])
    with pytest.raises(ConfigurationError, match="does not exist"):
        fingerprint([], paths=[tmp_path / "missing"])


def test_template_and_clone_names_fit_the_identifier_limit() -> None:
    assert template_name("app_test", "0123456789abcdef") == "app_test_tmpl_01234567"
    long = "x" * 60 + "_test"
    assert len(template_name(long, "0123456789abcdef")) == 63
    assert template_name(long, "0123456789abcdef").endswith("_tmpl_01234567")
    assert template_name(long, "ffff") != template_name(long[:-1] + "t2", "ffff")
    url = parse_url("postgresql://u@h/app_test")
    first = [c.database for c, _ in zip(clone_candidates(url, None), range(3), strict=False)]
    assert first == ["app_test", "app_test_r1", "app_test_r2"]
    worker = [c.database for c, _ in zip(clone_candidates(url, "gw0"), range(2), strict=False)]
    assert worker == ["app_test_gw0", "app_test_gw0_r1"]
    names = [c.database for c in clone_candidates(parse_url(f"postgresql://u@h/{long}"), "gw12")]
    assert all(len(n) <= 63 for n in names)
    assert len(set(names)) == len(names)


def test_sqlite_clones_are_files_beside_the_database() -> None:
    url = parse_url("sqlite:////tmp/x/app_test.db")
    clones = [c.database for c, _ in zip(clone_candidates(url, "gw1"), range(2), strict=False)]
    assert clones == ["/tmp/x/app_test_gw1.db", "/tmp/x/app_test_gw1_r1.db"]


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/app", "app_test"),
        ("postgresql://u@h/app_test", "app_test"),
        ("mysql://root@h/Shop", "Shop_test"),
        ("sqlite:////tmp/x/app.db", "/tmp/x/app_test.db"),
        ("sqlite:////tmp/x/test.db", "/tmp/x/test.db"),
    ],
)
def test_an_application_database_name_derives_a_test_database(given: str, expected: str) -> None:
    assert derive_test_url(parse_url(given)).database == expected


def test_load_callable_errors_name_the_spec() -> None:
    assert load_callable("os.path:join") is __import__("os").path.join
    with pytest.raises(ConfigurationError, match="not of the form"):
        load_callable("os.path.join")
    with pytest.raises(ConfigurationError, match="cannot import module 'no_such_mod'"):
        load_callable("no_such_mod:setup")
    with pytest.raises(ConfigurationError, match="has no attribute 'nope'"):
        load_callable("os:nope")


def test_marks_merge_closest_first_and_reject_bad_options(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_marks="""
        import pytest

        pytestmark = pytest.mark.dbrewind(transactional=True, data="a.json")

        class TestX:
            pytestmark = pytest.mark.dbrewind(backends=["mariadb", "sqlite"])

            @pytest.mark.dbrewind(transactional=False)
            def test_f(self):
                pass

        @pytest.mark.dbrewind(backends=["oracle"])
        def test_bad():
            pass

        @pytest.mark.dbrewind(transactional="yes")
        def test_bad_bool():
            pass
        """
    )
    items, _ = pytester.inline_genitems("-p", "no:randomly")
    by_name = {item.name: item for item in items}
    assert mark_for(by_name["test_f"]) == DbrewindMark(
        transactional=False, data=("a.json",), backends=("mysql", "sqlite")
    )
    with pytest.raises(ConfigurationError, match="unknown backend 'oracle'"):
        mark_for(by_name["test_bad"])
    with pytest.raises(ConfigurationError, match="must be True or False, got 'yes'"):
        mark_for(by_name["test_bad_bool"])
