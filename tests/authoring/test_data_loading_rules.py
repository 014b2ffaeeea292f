"""Rules of loading test data, on SQLite, PostgreSQL and MariaDB.

A ``.sql`` file leaves the caller's connection as it was; rows that leave their id to
the database go in after the rows that give one; a key given twice is an error; the
boolean words only fill boolean columns; a ``Z`` timestamp is UTC; on MySQL a table of
another database is refused.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    event,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dbrewind.data import load_data
from dbrewind.exceptions import DataLoadError

__all__: list[str] = []

DATA = Path(__file__).parents[1] / "data"

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(60)),
)
stock = Table(
    "stock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("qty", Integer),
    Column("active", Boolean),
)
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True)),
)


class Base(DeclarativeBase):
    pass


class ShopUser(Base):
    """A model whose table is in schema (on MySQL: database) ``shop``."""

    __tablename__ = "users"
    __table_args__ = {"schema": "shop"}  # noqa: RUF012 - SQLAlchemy's declarative form
    id: Mapped[int] = mapped_column(primary_key=True)


@pytest.fixture
def tables(engine: Engine) -> Engine:
    metadata.create_all(engine)
    return engine


def write(folder: Path, name: str, content: Any) -> Path:
    path = folder / name
    text_ = json.dumps(content) if not isinstance(content, str) else content
    path.write_text(text_, encoding="utf-8")
    return path


def inserts(engine: Engine) -> list[str]:
    """The INSERT statements sent through ``engine`` from now on."""
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            sent.append(statement)

    return sent


def failure(engine: Engine, folder: Path, *names: str) -> str:
    with engine.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, *names, base_dir=folder)
    return str(info.value)


# --------------------------------------------------------------------------- .sql files
def test_a_sql_file_leaves_later_percent_signs_on_the_connection_alone(engine: Engine) -> None:
    with engine.connect() as conn:
        load_data(conn, "notes.sql", base_dir=DATA)
        # text() doubles a literal % for the drivers that interpolate; sent without
        # parameters, the doubled %% would reach the server and match nothing
        found = conn.execute(text("SELECT id FROM notes WHERE body LIKE '100% sure%'"))
        assert found.scalars().all() == [2]
        assert "no_parameters" not in conn.get_execution_options()


# --------------------------------------------------------------------------- numbered rows
def test_rows_without_an_id_are_numbered_past_the_given_ids(tables: Engine, tmp_path: Path) -> None:
    write(
        tmp_path,
        "users.json",
        {
            "users": [
                {"id": None, "name": "first, numbered"},
                {"id": 1, "name": "one"},
                {"id": 2, "name": "two"},
                {"id": None, "name": "last, numbered"},
            ]
        },
    )
    with tables.begin() as conn:
        result = load_data(conn, "users.json", base_dir=tmp_path)
        conn.execute(users.insert().values(name="after"))
    assert result.rows == {"users": 4}
    with tables.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(users).order_by(users.c.id))]
    assert rows == [
        (1, "one"),
        (2, "two"),
        (3, "first, numbered"),
        (4, "last, numbered"),
        (5, "after"),
    ]


# --------------------------------------------------------------------------- keys given twice
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        pytest.param(
            "users.json",
            '{"users": [{"id": 1}], "users": [{"id": 2}]}',
            "users.json': table 'users' is given twice; JSON keeps only the last",
            id="json-table",
        ),
        pytest.param(
            "users.json",
            '{"users": [{"id": 1, "name": "a"}, {"id": 2, "name": "b", "name": "c"}]}',
            "users.json', row 1 of table 'users': column 'name' is given twice; JSON keeps",
            id="json-column",
        ),
        pytest.param(
            "users.yaml",
            "users:\n  - {id: 1}\nusers:\n  - {id: 2}\n",
            "users.yaml', line 3: table 'users' is given a second time (first at line 1)",
            id="yaml-table",
        ),
        pytest.param(
            "users.yaml",
            "users:\n  - {id: 1, name: a}\n  - {id: 2, name: b, name: c}\n",
            "users.yaml', row 1 (line 3) of table 'users': column 'name' is given twice",
            id="yaml-column",
        ),
        pytest.param(
            "users.yaml",
            "users:\n  - id: 1\n    name: a\n    name: b\n",
            "users.yaml', row 0 (line 4) of table 'users': column 'name' is given twice",
            id="yaml-block-column",
        ),
        pytest.param(
            "users.csv",
            "id,name,name\n1,a,b\n",
            "users.csv', line 1: the header names column 'name' twice",
            id="csv-header",
        ),
    ],
)
def test_a_table_or_column_given_twice_is_an_error_before_anything_is_sent(
    tables: Engine, tmp_path: Path, name: str, content: str, expected: str
) -> None:
    write(tmp_path, name, content)
    sent = inserts(tables)
    assert expected in failure(tables, tmp_path, name)
    assert sent == []


def test_yaml_merge_keys_may_be_overridden(tables: Engine, tmp_path: Path) -> None:
    write(
        tmp_path,
        "users.yaml",
        "users:\n  - &ann {id: 1, name: Ann}\n  - <<: *ann\n    id: 2\n",
    )
    with tables.begin() as conn:
        load_data(conn, "users.yaml", base_dir=tmp_path)
    with tables.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(users).order_by(users.c.id))]
    assert rows == [(1, "Ann"), (2, "Ann")]


def test_a_csv_record_over_several_lines_is_named_by_its_first_line(
    tables: Engine, tmp_path: Path
) -> None:
    write(tmp_path, "users.csv", 'id,name\n1,"spans\ntwo lines",extra\n')
    message = failure(tables, tmp_path, "users.csv")
    assert "users.csv', line 2: 3 fields, but the header names 2 columns" in message


# --------------------------------------------------------------------------- values
def test_boolean_words_fill_boolean_columns(tables: Engine, tmp_path: Path) -> None:
    write(tmp_path, "stock.csv", "id,qty,active\n1,3,yes\n2,0,off\n")
    with tables.begin() as conn:
        load_data(conn, "stock.csv", base_dir=tmp_path)
    with tables.connect() as conn:
        rows = conn.execute(select(stock).order_by(stock.c.id)).all()
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [(1, 3, True), (2, 0, False)]


@pytest.mark.parametrize(
    ("name", "content", "where", "value"),
    [
        pytest.param("stock.csv", "id,qty,active\n1,n,yes\n", "line 2", "'n'", id="csv"),
        pytest.param(
            "stock.json", {"stock": [{"id": 1, "qty": "yes"}]}, "row 0", "'yes'", id="json"
        ),
    ],
)
def test_boolean_words_in_an_integer_column_are_an_error(
    tables: Engine, tmp_path: Path, name: str, content: Any, where: str, value: str
) -> None:
    write(tmp_path, name, content)
    sent = inserts(tables)
    message = failure(tables, tmp_path, name)
    assert f"{name}', {where} of table 'stock', column 'qty': {value} is not an integer" in message
    assert "is not an integer; yes/no words fill boolean columns only" in message
    assert sent == []


@pytest.mark.parametrize("zulu", ["Z", "z"])
def test_a_timestamp_ending_in_z_is_utc(tables: Engine, tmp_path: Path, zulu: str) -> None:
    write(tmp_path, "events.json", {"events": [{"id": 1, "at": f"2024-01-02T03:04:05{zulu}"}]})
    with tables.begin() as conn:
        load_data(conn, "events.json", base_dir=tmp_path)
    with tables.connect() as conn:
        at = conn.execute(select(events.c.at)).scalar_one()
    if at.tzinfo is not None:  # PostgreSQL: a timestamptz, in the session's time zone
        at = at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    assert at == dt.datetime(2024, 1, 2, 3, 4, 5)


# --------------------------------------------------------------------------- other databases
@pytest.mark.backends("mysql")
def test_mysql_refuses_a_table_of_another_database_before_any_insert(
    tables: Engine, tmp_path: Path
) -> None:
    own = tables.url.database
    write(tmp_path, "keyed.json", {"users": [{"id": 1}], "shop.users": [{"id": 2}]})
    write(tmp_path, "model.json", {"ShopUser": [{"id": 3}]})
    sent = inserts(tables)
    message = failure(tables, tmp_path, "keyed.json")
    assert (
        "keyed.json' names table 'shop.users' (the key), which is in database 'shop', not in "
        f"the test database {own!r}"
    ) in message
    assert "name it without 'shop.'" in message
    with tables.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, "model.json", base_dir=tmp_path, models=[ShopUser])
    assert (
        "model.json' names model 'ShopUser' (table 'shop.users'), which is in database 'shop'"
    ) in str(info.value)
    assert sent == []
    # the test database's own name is its own
    write(tmp_path, "own.json", {f"{own}.users": [{"id": 4, "name": "mine"}]})
    with tables.begin() as conn:
        assert load_data(conn, "own.json", base_dir=tmp_path).rows == {f"{own}.users": 1}
    with tables.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(users))] == [(4, "mine")]
