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
