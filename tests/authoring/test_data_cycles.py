"""Foreign-key order the data cannot follow: cycles and rows pointing further down.

A nullable key is inserted NULL and set once its target is in; a cycle of NOT
NULL keys is refused with a message that says why. On every backend.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, event, text
from sqlalchemy.engine import Engine

from dbrewind.data import load_data
from dbrewind.exceptions import DataLoadError

__all__: list[str] = []


def build() -> MetaData:
    """The schema, made anew for each test: creating tables with ``use_alter`` keys on one
    backend changes what SQLAlchemy later creates on SQLite from the same MetaData."""
    metadata = MetaData()
    Table(
        "teams",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", String(40)),
        Column("captain_id", Integer, ForeignKey("players.id", use_alter=True, name="fk_captain")),
    )
    Table(
        "players",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", String(40)),
        Column("team_id", Integer, ForeignKey("teams.id"), nullable=False),
    )
    Table(
        "nodes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("parent_id", Integer, ForeignKey("nodes.id")),
        Column("label", String(20)),
    )
    Table(
        "eggs",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column(
            "hen_id",
            Integer,
            ForeignKey("hens.id", use_alter=True, name="fk_egg_hen"),
            nullable=False,
        ),
    )
    Table(
        "hens",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("egg_id", Integer, ForeignKey("eggs.id"), nullable=False),
    )
    return metadata


@pytest.fixture
def schema(engine: Engine, backend: str) -> Engine:
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _fk_on(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    build().create_all(engine)
    return engine


def write(folder: Path, name: str, content: str) -> str:
    (folder / name).write_text(textwrap.dedent(content), encoding="utf-8")
    return name


def _rows(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]


def _statements(engine: Engine) -> list[str]:
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()))

    return sent


def test_a_cycle_through_a_nullable_key_loads_whatever_the_file_order(
    schema: Engine, tmp_path: Path
) -> None:
    name = write(
        tmp_path,
        "league.yaml",
        """
        players:
          - {id: 1, name: Ann, team_id: 10}
          - {id: 2, name: Ben, team_id: 10}
        teams:
          - {id: 10, name: Reds, captain_id: 2}
          - {id: 11, name: Blues, captain_id: null}
        """,
    )
    with schema.begin() as conn:
        result = load_data(conn, name, base_dir=tmp_path)
    # players.team_id is NOT NULL, so teams go first and their captain is set after
    assert list(result.rows) == ["teams", "players"]
    assert _rows(schema, "teams") == [(10, "Reds", 2), (11, "Blues", None)]
    assert _rows(schema, "players") == [(1, "Ann", 10), (2, "Ben", 10)]


def test_a_cycle_split_over_two_files_loads_too(schema: Engine, tmp_path: Path) -> None:
    write(tmp_path, "players.json", '{"players": [{"id": 1, "name": "Ann", "team_id": 10}]}')
    write(tmp_path, "teams.csv", "id,name,captain_id\n10,Reds,1\n")
    with schema.begin() as conn:
        load_data(conn, "players.json", "teams.csv", base_dir=tmp_path)
    assert _rows(schema, "teams") == [(10, "Reds", 1)]


def test_only_rows_that_point_further_down_are_updated_after(
    schema: Engine, tmp_path: Path
) -> None:
    name = write(
        tmp_path,
        "tree.yaml",
        """
        nodes:
          - {id: 3, parent_id: 1, label: leaf}
          - {id: 1, parent_id: null, label: root}
          - {id: 2, parent_id: 1, label: branch}
          - {id: 4, parent_id: 2, label: twig}
        """,
    )
    sent = _statements(schema)
    with schema.begin() as conn:
        load_data(conn, name, base_dir=tmp_path)
    assert _rows(schema, "nodes") == [
        (1, None, "root"),
        (2, 1, "branch"),
        (3, 1, "leaf"),
        (4, 2, "twig"),
    ]
    updates = [s for s in sent if s.startswith("UPDATE")]
    assert len(updates) == 1  # the leaf, listed before its root; the others were in order


def test_a_tree_in_file_order_is_inserted_without_updates(schema: Engine, tmp_path: Path) -> None:
    name = write(
        tmp_path,
        "tree.json",
        '{"nodes": [{"id": 1, "label": "root"}, {"id": 2, "parent_id": 1, "label": "kid"}]}',
    )
    sent = _statements(schema)
    with schema.begin() as conn:
        load_data(conn, name, base_dir=tmp_path)
    assert not [s for s in sent if s.startswith("UPDATE")]
    assert _rows(schema, "nodes") == [(1, None, "root"), (2, 1, "kid")]


def test_a_cycle_of_not_null_keys_is_refused_and_the_message_says_why(
    schema: Engine, tmp_path: Path
) -> None:
    name = write(
        tmp_path,
        "farm.yaml",
        """
        hens:
          - {id: 1, egg_id: 1}
        eggs:
          - {id: 1, hen_id: 1}
        """,
    )
    with schema.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, name, base_dir=tmp_path)
    message = str(info.value)
    assert "farm.yaml', row 0 (line " in message
    assert "The tables eggs, hens reference each other through NOT NULL columns" in message
    assert "a .sql file that defers the constraints" in message


def test_a_deferred_key_whose_target_never_comes_names_its_row(
    schema: Engine, tmp_path: Path
) -> None:
    name = write(
        tmp_path,
        "league.yaml",
        """
        teams:
          - {id: 10, name: Reds, captain_id: 7}
        players:
          - {id: 1, name: Ann, team_id: 10}
        """,
    )
    with schema.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, name, base_dir=tmp_path)
    message = str(info.value)
    assert "league.yaml', row 0 (line 3) of table 'teams', column 'captain_id'" in message
    assert "reference each other, so this column was set after" in message
