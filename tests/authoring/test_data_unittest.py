"""The unittest classes' ``fixtures`` with YAML, several files and models, on every backend.

``database_setup`` with :func:`dbrewind.data.data_setup` puts data in the
baseline of the classes, loaded once and rewound after each test.
"""

from __future__ import annotations

import textwrap
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, delete, select
from sqlalchemy.engine import URL, Connection

import dbrewind._context as dbrewind_context
import dbrewind.unittest as dbu
from dbrewind.data import data_setup

__all__: list[str] = []

metadata = MetaData()
authors = Table(
    "authors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)
books = Table(
    "books",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("author_id", Integer, ForeignKey("authors.id"), nullable=False),
    Column("title", String(50), nullable=False),
)

BOOKS = """
books:
  - {id: 10, author_id: 1, title: First}
  - {id: 11, author_id: 2, title: Second}
"""
AUTHORS = '{"authors": [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Ben"}]}'


@pytest.fixture
def url(db_url: URL) -> Iterator[str]:
    """The fresh test database's URL (not an xdist worker's clone); closed afterwards."""
    worker = dbrewind_context.worker()
    dbrewind_context.set_worker(None)
    try:
        yield db_url.render_as_string(hide_password=False)
    finally:
        dbu.close_databases()
        dbrewind_context.set_worker(worker)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "books.yaml").write_text(textwrap.dedent(BOOKS), encoding="utf-8")
    (folder / "authors.json").write_text(AUTHORS, encoding="utf-8")
    return folder


def run(*classes: type[unittest.TestCase]) -> unittest.TestResult:
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(cls) for cls in classes)
    result = unittest.TestResult()
    suite.run(result)
    return result


def problems(result: unittest.TestResult) -> list[str]:
    return [text for _, text in result.errors + result.failures]


def contents(conn: Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return (
        [tuple(r) for r in conn.execute(select(authors).order_by(authors.c.id))],
        [tuple(r) for r in conn.execute(select(books).order_by(books.c.id))],
    )


EXPECTED = ([(1, "Ann"), (2, "Ben")], [(10, 1, "First"), (11, 2, "Second")])


def test_testcase_loads_yaml_and_json_fixtures_in_foreign_key_order(url: str, data: Path) -> None:
    seen: list[Any] = []

    class Cases(dbu.TestCase):
        database_url = url
        database_setup = metadata.create_all
        fixtures = ("books.yaml", "authors.json")  # children first
        fixtures_dir = data

        def test_a_changes_them(self) -> None:
            seen.append(contents(self.db))
            self.db.execute(delete(books))

        def test_b_sees_them_again(self) -> None:
            seen.append(contents(self.db))

    result = run(Cases)
    assert not problems(result), problems(result)
    assert seen == [EXPECTED, EXPECTED]


def test_transactiontestcase_loads_yaml_fixtures_before_each_test(url: str, data: Path) -> None:
    seen: list[Any] = []

    class Cases(dbu.TransactionTestCase):
        database_url = url
        database_setup = metadata.create_all
        fixtures = ("books.yaml", "authors.json")
        fixtures_dir = data

        def test_a_commits_a_delete(self) -> None:
            seen.append(contents(self.db))
            self.db.execute(delete(books))
            self.db.commit()

        def test_b_starts_from_the_fixtures(self) -> None:
            seen.append(contents(self.db))

    result = run(Cases)
    assert not problems(result), problems(result)
    assert seen == [EXPECTED, EXPECTED]


def test_asynctestcase_loads_yaml_fixtures(url: str, data: Path) -> None:
    seen: list[Any] = []

    class Cases(dbu.AsyncTestCase):
        database_url = url
        database_setup = metadata.create_all
        fixtures = ("books.yaml", "authors.json")
        fixtures_dir = data

        async def test_sees_them(self) -> None:
            seen.append(await self.db.run_sync(contents))

    result = run(Cases)
    assert not problems(result), problems(result)
    assert seen == [EXPECTED]


def test_a_bad_fixture_file_fails_the_class_naming_file_row_and_column(
    url: str, data: Path
) -> None:
    (data / "books.yaml").write_text("books:\n  - {id: 10, author_id: 1, title: null}\n")

    class Cases(dbu.TestCase):
        database_url = url
        database_setup = metadata.create_all
        fixtures = ("books.yaml", "authors.json")
        fixtures_dir = data

        def test_never_runs(self) -> None:
            raise AssertionError("the fixtures could not be loaded")

    text = "\n".join(problems(run(Cases)))
    assert "books.yaml', row 0 (line 2) of table 'books', column 'title'" in text
    assert "null, but the column is NOT NULL" in text


def test_data_setup_puts_data_in_the_classes_baseline(url: str, data: Path) -> None:
    seen: list[Any] = []
    setup = [metadata.create_all, data_setup("books.yaml", "authors.json", base_dir=data)]

    class Commits(dbu.TransactionTestCase):
        database_url = url
        database_setup = setup

        def test_a_deletes_baseline_rows(self) -> None:
            seen.append(contents(self.db))
            self.db.execute(delete(books))
            self.db.execute(delete(authors))
            self.db.commit()

        def test_b_has_them_back(self) -> None:
            seen.append(contents(self.db))

    class Sandboxed(dbu.TestCase):
        database_url = url
        database_setup = setup

        def test_sees_the_baseline(self) -> None:
            seen.append(contents(self.db))

    result = run(Commits, Sandboxed)
    assert not problems(result), problems(result)
    assert seen == [EXPECTED, EXPECTED, EXPECTED]
