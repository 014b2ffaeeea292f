"""Loading .sql, .json and .csv test data into real SQLite, PostgreSQL and MariaDB.

YAML, models, cycles, value checks and located errors: test_data_*.py beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    event,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from dbrewind import parse_url
from dbrewind.data import LoadResult, aload_data, load_data, split_sql
from dbrewind.exceptions import DataLoadError

__all__: list[str] = []

DATA = Path(__file__).parents[1] / "data"
LONG = "line_items_with_a_rather_long_name_that_goes_on_and_on_and_o"
assert len(LONG) == 60

metadata = MetaData()
authors = Table(
    "Author People",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100)),
    Column("select", String(50)),
    Column("active", Boolean),
    Column("profile", JSON),
)
orders = Table(
    "order",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("author_id", Integer, ForeignKey("Author People.id"), nullable=False),
    Column("user", String(100)),
    Column("note", String(200)),
)
line_items = Table(
    LONG,
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("order.id", name="fk_line_order"), nullable=False),
    Column("qty", Integer),
)
categories = Table(
    "category",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
    Column("parent_id", Integer, ForeignKey("category.id")),
)


@pytest.fixture
def shop(engine: Engine, backend: str) -> Engine:
    """The shop schema on ``backend``, with foreign keys enforced (SQLite too)."""
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _fk_on(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    metadata.create_all(engine)
    return engine


def _rows(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]


# --------------------------------------------------------------------------- JSON
def test_json_inserts_tables_parents_first_whatever_the_file_order(shop: Engine) -> None:
    with shop.begin() as conn:
        result = load_data(conn, "shop.json", base_dir=DATA)
    assert isinstance(result, LoadResult)
    assert result.files == (DATA / "shop.json",)
    assert result.rows == {"Author People": 2, "order": 2, LONG: 1, "category": 2}
    assert list(result.rows).index("Author People") < list(result.rows).index("order")
    assert list(result.rows).index("order") < list(result.rows).index(LONG)
    assert _rows(shop, orders) == [
        (10, 1, "alice", "first; with a semicolon"),
        (11, 2, "bob", None),
    ]
    assert _rows(shop, line_items) == [(1, 10, 3)]
    assert _rows(shop, categories) == [(1, "root", None), (2, "child", 1)]
    people = _rows(shop, authors)
    assert [(r[0], r[1], r[2], bool(r[3])) for r in people] == [
        (1, "Ann", "x", True),
        (2, "Ben", "y", False),
    ]
    profile = people[0][4]
    assert (json.loads(profile) if isinstance(profile, str) else profile) == {"tags": ["a", "b"]}


def test_json_data_stays_in_the_callers_transaction(shop: Engine) -> None:
    with shop.connect() as conn:
        load_data(conn, "shop.json", base_dir=DATA)
        assert conn.execute(select(orders.c.id)).scalars().all() == [10, 11]
        conn.rollback()
    assert _rows(shop, orders) == []


def test_next_insert_after_loading_gets_a_fresh_id(shop: Engine) -> None:
    with shop.begin() as conn:
        load_data(conn, "shop.json", base_dir=DATA)
        # every backend must hand out a fresh id after explicit ones were loaded
        conn.execute(orders.insert().values(author_id=1, user="next"))
        new_id = conn.execute(select(orders.c.id).where(orders.c.user == "next")).scalar_one()
    assert new_id > 11


# --------------------------------------------------------------------------- CSV
def test_csv_file_stem_names_the_table_and_empty_fields_are_null(shop: Engine) -> None:
    with shop.begin() as conn:
        result = load_data(conn, f"{LONG}.csv", "order.csv", "authors_only.json", base_dir=DATA)
    # one batch across the three files, parents first
    assert list(result.rows) == ["Author People", "order", LONG]
    assert _rows(shop, orders) == [
        (20, 5, "carol, the second", "multi\nline"),
        (21, 5, "dave", None),
    ]
    assert _rows(shop, line_items) == [(7, 20, 2)]


def test_csv_booleans_and_nulls_reach_boolean_columns(shop: Engine) -> None:
    with shop.begin() as conn:
        load_data(conn, DATA / "Author People.csv")
    assert [(r[0], r[1], r[2], bool(r[3])) for r in _rows(shop, authors)] == [
        (8, "Hal", "z", True),
        (9, "Ivy", None, False),
    ]


# --------------------------------------------------------------------------- SQL
def test_sql_file_runs_every_statement_despite_semicolons_in_strings_and_comments(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        result = load_data(conn, "notes.sql", base_dir=DATA)
    assert result.statements == 4
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, body FROM notes ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        (1, "it's; fine"),
        (2, "100% sure :name %s %(x)s"),
        (3, "spans\ntwo lines"),
    ]


def test_sql_then_data_files_load_in_the_order_given(engine: Engine) -> None:
    data_file = DATA / "notes_rows.json"
    with engine.begin() as conn:
        result = load_data(conn, "notes.sql", "notes_rows.json", base_dir=DATA)
    assert data_file.exists()
    assert result.rows == {"notes": 1}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT body FROM notes WHERE id = 4")).scalar_one() == "four"


@pytest.mark.backends("postgresql")
def test_postgresql_dollar_quoted_bodies_and_escape_strings(engine: Engine) -> None:
    with engine.begin() as conn:
        load_data(conn, "postgresql_function.sql", base_dir=DATA)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, body FROM notes ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(1, "a;b $$ c;"), (100, "back\\slash'; quote")]


@pytest.mark.backends("sqlite")
def test_sqlite_trigger_bodies_are_one_statement(engine: Engine) -> None:
    with engine.begin() as conn:
        result = load_data(conn, "sqlite_trigger.sql", base_dir=DATA)
    assert result.statements == 4
    with engine.connect() as conn:
        log = conn.execute(text("SELECT note_id, what FROM notes_log ORDER BY what")).all()
    assert [tuple(r) for r in log] == [(1, "insert;"), (1, "x")]


@pytest.mark.backends("mysql")
def test_mysql_delimiter_lines_and_backslash_escapes(engine: Engine) -> None:
    with engine.begin() as conn:
        result = load_data(conn, "mysql_procedure.sql", base_dir=DATA)
    assert result.statements == 4
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, body FROM notes ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(1, "first;"), (100, "back\\slash'; quote")]


# --------------------------------------------------------------------------- async
@pytest.mark.asyncio
async def test_aload_data_loads_through_an_async_connection(shop: Engine) -> None:
    async_engine = create_async_engine(parse_url(shop.url).async_url())
    try:
        async with async_engine.begin() as conn:
            result = await aload_data(conn, "shop.json", base_dir=DATA)
    finally:
        await async_engine.dispose()
    assert result.rows["order"] == 2
    assert [r[0] for r in _rows(shop, orders)] == [10, 11]


# --------------------------------------------------------------------------- errors
def test_missing_file_names_the_path_and_the_base_directory(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "nope.json", base_dir=DATA)
    message = str(info.value)
    assert "nope.json" in message
    assert str(DATA) in message
    assert "base_dir" in message


def test_unknown_file_type_is_refused_before_anything_runs(shop: Engine) -> None:
    with (
        shop.connect() as conn,
        pytest.raises(DataLoadError, match=r"\.xml.*\.sql, \.json, \.yaml"),
    ):
        load_data(conn, "shop.json", "rows.xml", base_dir=DATA)
    assert _rows(shop, orders) == []


def test_bad_json_names_file_line_and_column(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "bad_syntax.json", base_dir=DATA)
    assert "bad_syntax.json" in str(info.value)
    assert "line 2 column 27" in str(info.value)


def test_json_of_the_wrong_shape_says_what_shape_is_expected(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "wrong_shape.json", base_dir=DATA)
    assert "'Author People'" in str(info.value)
    assert "list of row objects" in str(info.value)


def test_unknown_table_is_named_with_a_suggestion(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "unknown_table.json", base_dir=DATA)
    message = str(info.value)
    assert "'Author Peeple'" in message
    assert "Did you mean 'Author People'?" in message
    assert "unknown_table.json" in message


def test_unknown_column_names_file_row_table_and_columns(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "unknown_column.json", base_dir=DATA)
    message = str(info.value)
    assert "unknown_column.json" in message
    assert "row 1" in message
    assert "column 'nmae'" in message
    assert "Did you mean 'name'?" in message


def test_rejected_rows_name_the_table_and_keep_the_driver_error(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "duplicate.json", base_dir=DATA)
    assert "'Author People'" in str(info.value)
    assert "duplicate.json" in str(info.value)
    assert info.value.__cause__ is not None


def test_failing_sql_statement_names_file_and_line(engine: Engine) -> None:
    with engine.connect() as conn:
        load_data(conn, "notes.sql", base_dir=DATA)
        conn.commit()
        with pytest.raises(DataLoadError) as info:
            load_data(conn, "broken.sql", base_dir=DATA)
    message = str(info.value)
    assert "broken.sql" in message
    assert "statement at line 3" in message
    assert "no_such_table_here" in message


def test_unclosed_string_in_sql_file_is_reported_with_its_line(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(DataLoadError, match=r"unclosed\.sql.*line 1"):
        load_data(conn, "unclosed.sql", base_dir=DATA)


# --------------------------------------------------------------------------- splitting
@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql", "mysql"])
def test_split_keeps_statement_start_lines(backend_name: str) -> None:
    script = "SELECT 1;\n\n-- note; here\nSELECT\n 2 ;  SELECT 3"
    assert split_sql(script, backend_name) == [(1, "SELECT 1"), (4, "SELECT\n 2"), (5, "SELECT 3")]


@pytest.mark.parametrize(
    ("backend_name", "script", "expected"),
    [
        pytest.param(
            "postgresql", "SELECT $$;$$; SELECT 2", ["SELECT $$;$$", "SELECT 2"], id="pg-$$"
        ),
        pytest.param(
            "postgresql",
            "SELECT $a$ $$; $a$;SELECT 2",
            ["SELECT $a$ $$; $a$", "SELECT 2"],
            id="pg-tag",
        ),
        pytest.param("postgresql", "SELECT $1; SELECT 2", ["SELECT $1", "SELECT 2"], id="pg-param"),
        pytest.param(
            "postgresql",
            "/* a /* b; */ c; */ SELECT 1; SELECT 2",
            ["SELECT 1", "SELECT 2"],
            id="pg-nest",
        ),
        pytest.param(
            "postgresql", r"SELECT E'\';'; SELECT 2", [r"SELECT E'\';'", "SELECT 2"], id="pg-E"
        ),
        pytest.param(
            "postgresql", r"SELECT '\'; SELECT 2", [r"SELECT '\'", "SELECT 2"], id="pg-std"
        ),
        pytest.param("mysql", r"SELECT '\';'; SELECT 2", [r"SELECT '\';'", "SELECT 2"], id="my-bs"),
        pytest.param("mysql", "SELECT `a;b`; SELECT 2", ["SELECT `a;b`", "SELECT 2"], id="my-tick"),
        pytest.param("mysql", "SELECT 5--1; SELECT 2", ["SELECT 5--1", "SELECT 2"], id="my-dashes"),
        pytest.param(
            "mysql", "SELECT 1 /*! ; */; SELECT 2", ["SELECT 1 /*! ; */", "SELECT 2"], id="my-exec"
        ),
        pytest.param(
            "sqlite", 'SELECT "a;""b"; SELECT 2', ['SELECT "a;""b"', "SELECT 2"], id="sq-dq"
        ),
        pytest.param(
            "sqlite", "SELECT [a;b]; SELECT 2", ["SELECT [a;b]", "SELECT 2"], id="sq-bracket"
        ),
        pytest.param("sqlite", "-- only a comment;\n/* and; this */", [], id="comments-only"),
    ],
)
def test_split_respects_quoting_rules_of_each_backend(
    backend_name: str, script: str, expected: list[str]
) -> None:
    assert [s for _, s in split_sql(script, backend_name)] == expected


@pytest.mark.parametrize(
    ("script", "what"),
    [
        pytest.param("SELECT 'x;\nSELECT 2", "A string opened on line 1", id="string"),
        pytest.param("SELECT 1;\n/* x", "A /* comment opened on line 2", id="comment"),
        pytest.param("SELECT 1;\n\nSELECT $q$ x", "$q$ opened on line 3", id="dollar"),
    ],
)
def test_split_reports_unclosed_quotes_with_their_line(script: str, what: str) -> None:
    with pytest.raises(ValueError, match=what.replace("$", r"\$").replace("*", r"\*")):
        split_sql(script, "postgresql")


@pytest.mark.backends("postgresql")
def test_postgresql_generated_always_identity_accepts_loaded_ids(
    engine: Engine, tmp_path: Path
) -> None:
    local = MetaData()
    tickets = Table(
        "Tickets",
        local,
        Column("id", Integer, Identity(always=True), primary_key=True),
        Column("title", String(50)),
    )
    local.create_all(engine)
    (tmp_path / "tickets.json").write_text(
        json.dumps({"Tickets": [{"id": 41, "title": "loaded"}]}), encoding="utf-8"
    )
    with engine.begin() as conn:
        load_data(conn, "tickets.json", base_dir=tmp_path)
        conn.execute(tickets.insert().values(title="next"))
    with engine.connect() as conn:
        rows = conn.execute(select(tickets).order_by(tickets.c.id)).all()
    assert [tuple(r) for r in rows] == [(41, "loaded"), (42, "next")]


def test_names_with_colons_and_percents_load(engine: Engine, tmp_path: Path) -> None:
    """A table or column named with ``:x`` or ``%`` is an identifier, never a parameter."""
    odd = MetaData()
    table = Table(
        "t:x %s",
        odd,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("v:alue%", String(20)),
    )
    odd.create_all(engine)
    (tmp_path / "odd.json").write_text(json.dumps({"t:x %s": [{"id": 1, "v:alue%": "a"}]}))
    with engine.begin() as conn:
        load_data(conn, "odd.json", base_dir=tmp_path)
    with engine.begin() as conn:
        conn.execute(table.insert().values({"v:alue%": "b"}))
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))] == [
            (1, "a"),
            (2, "b"),
        ]
