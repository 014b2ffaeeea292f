"""Bad test data: every error names the file, the record and the column, on every backend.

Unknown tables and columns, values their column cannot take, rows the database
refuses (NOT NULL, a missing parent row, a duplicate key, text too long), in
JSON, YAML and CSV, sync and async.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from dbrewind import parse_url
from dbrewind.data import aload_data, load_data
from dbrewind.exceptions import DataLoadError

__all__: list[str] = []

metadata = MetaData()
authors = Table(
    "authors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(20), nullable=False),
    Column("email", String(60), unique=True),
    Column("active", Boolean),
)
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("author_id", Integer, ForeignKey("authors.id"), nullable=False),
    Column("qty", Integer),
    Column("placed", Date),
)


@pytest.fixture
def schema(engine: Engine, backend: str) -> Engine:
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _fk_on(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    metadata.create_all(engine)
    return engine


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Where each test writes its data files."""
    return tmp_path


def write(folder: Path, name: str, content: Any) -> Path:
    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps(content), encoding="utf-8")
    else:
        path.write_text(content, encoding="utf-8")
    return path


def failure(engine: Engine, folder: Path, *names: str) -> str:
    """The message of the DataLoadError loading ``names`` raises (rolled back after)."""
    with engine.connect() as conn:
        with pytest.raises(DataLoadError) as info:
            load_data(conn, *names, base_dir=folder)
        conn.rollback()
    return str(info.value)


ANN = {"id": 1, "name": "Ann", "email": "ann@example.com"}


# --------------------------------------------------------------------------- names
def test_an_unknown_table_in_yaml_is_named_with_the_file_and_a_suggestion(
    schema: Engine, files: Path
) -> None:
    write(files, "rows.yaml", "author:\n  - {id: 1, name: Ann}\n")
    message = failure(schema, files, "rows.yaml")
    assert f"{str(files / 'rows.yaml')!r} names table 'author'" in message
    assert "Did you mean 'authors'?" in message


def test_an_unknown_csv_table_says_the_name_comes_from_the_file_name(
    schema: Engine, files: Path
) -> None:
    write(files, "writers.csv", "id,name\n1,Ann\n")
    message = failure(schema, files, "writers.csv")
    assert "names table 'writers' (its file name)" in message


def test_an_unknown_csv_column_names_the_line(schema: Engine, files: Path) -> None:
    write(files, "authors.csv", "id,name,mail\n1,Ann,a@example.com\n")
    message = failure(schema, files, "authors.csv")
    assert "authors.csv', line 2: table 'authors' has no column 'mail'" in message
    assert "Did you mean 'email'?" in message


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize(
    ("name", "content", "where", "expected"),
    [
        pytest.param(
            "rows.json",
            {"authors": [ANN], "orders": [{"id": 1, "author_id": 1, "qty": "three"}]},
            "row 0 of table 'orders', column 'qty'",
            "'three' is not an integer (the column is INTEGER)",
            id="json-integer",
        ),
        pytest.param(
            "rows.yaml",
            "authors:\n  - {id: 1, name: Ann}\norders:\n"
            "  - {id: 1, author_id: 1, placed: 2024-01-02}\n"
            "  - {id: 2, author_id: 1, placed: yesterday}\n",
            "row 1 (line 5) of table 'orders', column 'placed'",
            "'yesterday' is not an ISO 8601 date (YYYY-MM-DD)",
            id="yaml-date",
        ),
        pytest.param(
            "authors.csv",
            "id,name,active\n1,Ann,yes\n2,Ben,maybe\n",
            "line 3 of table 'authors', column 'active'",
            "'maybe' is not a",  # a boolean (MySQL: an integer, TINYINT)
            id="csv-boolean",
        ),
        pytest.param(
            "rows.json",
            {"authors": [{"id": 1, "name": True}]},
            "row 0 of table 'authors', column 'name'",
            "True is a boolean; the column holds text",
            id="json-boolean-as-text",
        ),
        pytest.param(
            "rows.json",
            {"authors": [ANN, {"id": 2, "name": None}]},
            "row 1 of table 'authors', column 'name'",
            "null, but the column is NOT NULL",
            id="json-null",
        ),
    ],
)
def test_a_value_its_column_cannot_take_is_named_before_anything_is_sent(
    schema: Engine, files: Path, name: str, content: Any, where: str, expected: str
) -> None:
    write(files, name, content)
    sent: list[str] = []

    @event.listens_for(schema, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    message = failure(schema, files, name)
    assert f"Test-data file {str(files / name)!r}, {where}" in message
    assert expected in message
    assert not [s for s in sent if s.lstrip().upper().startswith("INSERT")]


# --------------------------------------------------------------------------- refused rows
def test_a_missing_parent_row_names_the_csv_line_and_the_foreign_key(
    schema: Engine, files: Path
) -> None:
    write(files, "authors.json", {"authors": [ANN]})
    write(files, "orders.csv", "id,author_id,qty\n1,1,2\n2,99,3\n3,1,4\n")
    message = failure(schema, files, "orders.csv", "authors.json")
    assert "orders.csv', line 3 of table 'orders', column 'author_id'" in message
    assert "the database rejected the row" in message


def test_a_duplicate_key_within_the_file_names_the_second_row(schema: Engine, files: Path) -> None:
    write(files, "rows.json", {"authors": [ANN, {"id": 2, "name": "Ben"}, {"id": 1, "name": "X"}]})
    message = failure(schema, files, "rows.json")
    assert "rows.json', row 2 of table 'authors', column 'id'" in message


def test_a_key_an_earlier_file_loaded_names_the_row_that_repeats_it(
    schema: Engine, files: Path
) -> None:
    write(files, "first.json", {"authors": [ANN]})
    write(
        files,
        "second.yaml",
        "authors:\n  - {id: 2, name: Ben, email: ben@example.com}\n"
        "  - {id: 3, name: Cy, email: ann@example.com}\n",
    )
    with schema.connect() as conn:
        load_data(conn, "first.json", base_dir=files)
        with pytest.raises(DataLoadError) as info:
            load_data(conn, "second.yaml", base_dir=files)
        conn.rollback()
    assert "second.yaml', row 1 (line 3) of table 'authors', column 'email'" in str(info.value)


def test_a_missing_not_null_column_names_the_row_and_the_column(
    schema: Engine, files: Path
) -> None:
    write(files, "rows.yaml", "authors:\n  - {id: 1, name: Ann}\n  - {id: 2, email: b@x.org}\n")
    message = failure(schema, files, "rows.yaml")
    assert "rows.yaml', row 1 (line 3) of table 'authors', column 'name'" in message


@pytest.mark.backends("postgresql", "mysql")  # SQLite does not enforce lengths
def test_text_too_long_for_its_column_names_the_row_and_the_column(
    schema: Engine, files: Path
) -> None:
    write(files, "rows.json", {"authors": [ANN, {"id": 2, "name": "x" * 21}]})
    message = failure(schema, files, "rows.json")
    assert "rows.json', row 1 of table 'authors', column 'name'" in message


def test_a_refused_row_past_the_first_statement_is_still_named(schema: Engine, files: Path) -> None:
    """Many rows go in several INSERT statements; the row named is the file's own."""
    rows: list[dict[str, Any]] = [{"id": i, "author_id": 1, "qty": i} for i in range(1, 1201)]
    rows[1000]["author_id"] = 7  # no such author
    write(files, "rows.json", {"authors": [ANN], "orders": rows})
    message = failure(schema, files, "rows.json")
    assert "rows.json', row 1000 of table 'orders', column 'author_id'" in message


def test_the_error_keeps_the_driver_error_as_its_cause(schema: Engine, files: Path) -> None:
    write(files, "rows.json", {"authors": [ANN, ANN]})
    with schema.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "rows.json", base_dir=files)
    assert info.value.__cause__ is not None


@pytest.mark.asyncio
async def test_aload_data_names_the_refused_row_and_column(
    schema: Engine, files: Path, backend: str
) -> None:
    write(files, "authors.json", {"authors": [ANN]})
    write(files, "orders.yaml", "orders:\n  - {id: 1, author_id: 1}\n  - {id: 2, author_id: 5}\n")
    async_engine = create_async_engine(parse_url(schema.url).async_url())
    if backend == "sqlite":

        @event.listens_for(async_engine.sync_engine, "connect")
        def _fk_on(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    try:
        async with async_engine.connect() as conn:
            with pytest.raises(DataLoadError) as info:
                await aload_data(conn, "authors.json", "orders.yaml", base_dir=files)
            await conn.rollback()
    finally:
        await async_engine.dispose()
    assert "orders.yaml', row 1 (line 3) of table 'orders', column 'author_id'" in str(info.value)


def test_a_dotted_name_that_is_no_table_in_any_schema_is_named(
    schema: Engine, files: Path, backend: str
) -> None:
    write(files, "rows.json", {"nowhere.authors": [ANN]})
    message = failure(schema, files, "rows.json")
    if backend == "mysql":  # a schema is another database there: refused, whatever it holds
        assert "names table 'nowhere.authors' (the key), which is in database 'nowhere'" in message
    else:
        assert "names table 'nowhere.authors' (the key), which does not exist" in message


def test_a_null_id_lets_the_database_number_the_row(engine: Engine, files: Path) -> None:
    numbered = MetaData()
    notes = Table(
        "notes",
        numbered,
        Column("id", Integer, primary_key=True),
        Column("body", String(20)),
    )
    numbered.create_all(engine)
    write(files, "rows.yaml", "notes:\n  - {id: null, body: first}\n  - {id: null, body: next}\n")
    with engine.begin() as conn:
        load_data(conn, "rows.yaml", base_dir=files)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(notes.select().order_by(notes.c.id))] == [
            (1, "first"),
            (2, "next"),
        ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            "id,name\n1,Ann\n2,Ben,extra\n",
            "authors.csv', line 3: 3 fields, but the header names 2 columns",
            id="fields",
        ),
        pytest.param('id,name\n1,"Ann\n', "authors.csv', line 2:", id="unclosed-quote"),
        pytest.param("", "authors.csv' is empty", id="empty"),
    ],
)
def test_a_malformed_csv_file_names_its_line(
    schema: Engine, files: Path, content: str, expected: str
) -> None:
    write(files, "authors.csv", content)
    assert expected in failure(schema, files, "authors.csv")
