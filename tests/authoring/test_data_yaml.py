"""YAML test data (.yaml, .yml) on real SQLite, PostgreSQL and MariaDB, sync and async."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from dbrewind import parse_url
from dbrewind.data import aload_data, load_data
from dbrewind.exceptions import DataLoadError

__all__: list[str] = []

DATA = Path(__file__).parents[1] / "data"
LONG = "line_items_with_a_rather_long_name_that_goes_on_and_on_and_o"

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
    Column("order_id", Integer, ForeignKey("order.id", name="fk_yaml_line_order"), nullable=False),
    Column("qty", Integer),
)
categories = Table(
    "category",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
    Column("parent_id", Integer, ForeignKey("category.id")),
)
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("on_day", Date),
    Column("at", DateTime),
    Column("price", Numeric(8, 2)),
    Column("label", String(40)),
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


def test_yaml_inserts_parents_first_whatever_order_the_file_lists_them(shop: Engine) -> None:
    with shop.begin() as conn:
        result = load_data(conn, "shop.yaml", base_dir=DATA)
    assert result.files == (DATA / "shop.yaml",)
    order = list(result.rows)
    assert order.index("Author People") < order.index("order") < order.index(LONG)
    assert result.rows == {"Author People": 2, "order": 2, LONG: 1, "category": 2}
    assert _rows(shop, orders) == [
        (10, 1, "alice", "first; with a semicolon"),
        (11, 2, "bob", None),
    ]
    assert _rows(shop, line_items) == [(1, 10, 3)]
    assert _rows(shop, categories) == [(1, "root", None), (2, "child", 1)]
    people = _rows(shop, authors)
    assert [(r[0], r[1], r[2], bool(r[3])) for r in people] == [
        (1, "Ann", "x", True),
        (2, "Ben", "y", False),  # YAML's "no"
    ]
    profile = people[0][4]
    assert (json.loads(profile) if isinstance(profile, str) else profile) == {"tags": ["a", "b"]}


def test_yaml_and_json_files_of_the_same_rows_load_the_same(shop: Engine) -> None:
    tables = (authors, orders, line_items, categories)
    seen = []
    with shop.connect() as conn:
        for name in ("shop.json", "shop.yaml"):
            load_data(conn, name, base_dir=DATA)
            seen.append({t.name: [tuple(r) for r in conn.execute(select(t))] for t in tables})
            conn.rollback()
    assert seen[0] == seen[1]
    assert seen[0]["order"]


def test_yml_csv_and_json_files_form_one_batch_in_foreign_key_order(shop: Engine) -> None:
    with shop.begin() as conn:
        result = load_data(conn, "line_items.yml", "order.csv", "authors_only.json", base_dir=DATA)
    assert list(result.rows) == ["Author People", "order", LONG]
    assert _rows(shop, line_items) == [(7, 20, 2), (8, 21, 4)]  # "4" became 4


def test_yaml_dates_and_timestamps_reach_date_columns(shop: Engine, tmp_path: Path) -> None:
    (tmp_path / "events.yaml").write_text(
        "events:\n"
        "  - {id: 1, on_day: 2024-02-29, at: 2024-02-29 10:30:00, price: 9.5, label: 12}\n"
        "  - {id: 2, on_day: '2024-03-01', at: '2024-03-01T08:00:00', price: '1.25'}\n",
        encoding="utf-8",
    )
    with shop.begin() as conn:
        load_data(conn, "events.yaml", base_dir=tmp_path)
    rows = _rows(shop, events)
    assert [(r[0], r[1], r[2], float(r[3]), r[4]) for r in rows] == [
        (1, dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 10, 30), 9.5, "12"),
        (2, dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 8, 0), 1.25, None),
    ]


def test_a_yaml_timestamp_is_found_by_the_orm_as_it_would_store_it(
    shop: Engine, tmp_path: Path
) -> None:
    """On SQLite a timestamp is text: loaded values are written in SQLAlchemy's own format,
    so a query comparing with a datetime finds them."""
    (tmp_path / "events.yaml").write_text(
        "events:\n  - {id: 1, at: 2024-02-29 10:30:00}\n", encoding="utf-8"
    )
    with shop.begin() as conn:
        load_data(conn, "events.yaml", base_dir=tmp_path)
    with shop.connect() as conn:
        found = conn.execute(
            select(events.c.id).where(events.c.at == dt.datetime(2024, 2, 29, 10, 30))
        ).scalars()
        assert list(found) == [1]


@pytest.mark.asyncio
async def test_aload_data_loads_yaml_through_an_async_connection(shop: Engine) -> None:
    async_engine = create_async_engine(parse_url(shop.url).async_url())
    try:
        async with async_engine.begin() as conn:
            result = await aload_data(conn, "shop.yaml", base_dir=DATA)
    finally:
        await async_engine.dispose()
    assert result.rows["order"] == 2
    assert [r[0] for r in _rows(shop, line_items)] == [1]


# --------------------------------------------------------------------------- bad files
def test_bad_yaml_names_the_file_line_and_column(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "bad_syntax.yaml", base_dir=DATA)
    message = str(info.value)
    assert "bad_syntax.yaml" in message
    assert "is not valid YAML" in message
    assert "line 4 column 7" in message
    assert "{table: [{column: value, ...}, ...]}" in message


def test_yaml_that_is_not_a_mapping_of_tables_says_the_shape(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "wrong_shape.yaml", base_dir=DATA)
    message = str(info.value)
    assert "wrong_shape.yaml" in message
    assert "holds a YAML list, not a mapping of tables" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            "order: {id: 1}\n",
            "the value of table 'order' is a YAML mapping; it must be a list of row objects",
            id="table-not-a-list",
        ),
        pytest.param(
            "order:\n  - {id: 1}\n  - just text\n",
            "row 1 (line 3) of table 'order': a YAML str; each row must be an object",
            id="row-not-a-mapping",
        ),
        pytest.param(
            "2024: []\n", "the key 2024 is a int; table and model names must be text", id="key"
        ),
        pytest.param(
            "order:\n  - {1: x}\n",
            "row 0 (line 2) of table 'order': the column 1 is a int",
            id="column-name",
        ),
        pytest.param("", "holds a YAML null, not a mapping of tables", id="empty"),
    ],
)
def test_yaml_of_the_wrong_shape_names_the_file_and_the_record(
    tmp_path: Path, content: str, expected: str
) -> None:
    (tmp_path / "rows.yaml").write_text(content, encoding="utf-8")
    engine = create_engine("sqlite://")
    with engine.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "rows.yaml", base_dir=tmp_path)
    assert str(tmp_path / "rows.yaml") in str(info.value)
    assert expected in str(info.value)


def test_yaml_is_read_safely_and_a_python_tag_is_refused(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "unsafe.yaml", base_dir=DATA)
    assert "unsafe.yaml" in str(info.value)
    assert "python/object/apply" in str(info.value)
    assert _rows(shop, authors) == []


def test_an_unknown_yaml_column_is_named_with_its_row_and_line(shop: Engine) -> None:
    with shop.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "unknown_column.yaml", base_dir=DATA)
    message = str(info.value)
    assert "unknown_column.yaml', row 1 (line 5)" in message
    assert "column 'nmae'" in message
    assert "Did you mean 'name'?" in message


def test_without_pyyaml_a_yaml_file_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    engine = create_engine("sqlite://")
    with engine.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "shop.yaml", base_dir=DATA)
    message = str(info.value)
    assert str(DATA / "shop.yaml") in message
    assert "needs PyYAML" in message
    assert "pip install dbrewind[yaml]" in message


def test_without_pyyaml_json_files_still_load(
    shop: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with shop.begin() as conn:
        load_data(conn, "shop.json", base_dir=DATA)
    assert len(_rows(shop, orders)) == 2


@pytest.mark.asyncio
async def test_aload_data_stays_in_the_callers_async_transaction(shop: Engine) -> None:
    async_engine = create_async_engine(parse_url(shop.url).async_url())
    try:
        async with async_engine.connect() as conn:
            await aload_data(conn, "shop.yaml", base_dir=DATA)  # several INSERTs
            found = await conn.run_sync(lambda c: c.execute(select(orders.c.id)).scalars().all())
            assert found == [10, 11]
            await conn.rollback()
    finally:
        await async_engine.dispose()
    assert _rows(shop, orders) == []
    assert _rows(shop, authors) == []
