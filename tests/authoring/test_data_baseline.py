"""Data files in the baseline: ini ``dbrewind_data`` and ``data_setup``, across whole runs.

The files are loaded once, when a run prepares its template, after the schema
setup; the tests start from them, a test that deletes or changes those rows
is rewound, nothing is reloaded per test; a second run with the same files
loads nothing, a run after a file changed builds a new template. Each run is
a real pytest run of an inner suite; after each, the database is read.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from dbrewind.data import data_setup
from dbrewind.exceptions import DataLoadError
from helpers.runs import observe, pytest_args, start

__all__: list[str] = []

SCHEMA = """
import sqlalchemy as sa

metadata = sa.MetaData()
authors = sa.Table(
    "authors", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(60), nullable=False),
)
books = sa.Table(
    "books", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("authors.id"), nullable=False),
    sa.Column("title", sa.String(60), nullable=False),
)


def setup(conn):
    metadata.create_all(conn)
"""

CONFTEST = """
import json
import os
import pathlib

import pytest
import yaml

import dbrewind.data
import schema

HERE = pathlib.Path(__file__).parent
_load = dbrewind.data.load_data


def counting_load(conn, *paths, **options):
    # every load, with what it loaded, for the outer test to count
    with open(os.environ["LOADS"], "a", encoding="utf-8") as log:
        log.write(json.dumps([str(p) for p in paths]) + "\\n")
    return _load(conn, *paths, **options)


dbrewind.data.load_data = counting_load


@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup


def expected():
    authors = json.loads((HERE / "data" / "authors.json").read_text())["authors"]
    books = yaml.safe_load((HERE / "data" / "books.yaml").read_text())["books"]
    return (
        sorted((a["id"], a["name"]) for a in authors),
        sorted((b["id"], b["author_id"], b["title"]) for b in books),
    )


def contents(conn):
    from sqlalchemy import select

    return (
        sorted(tuple(r) for r in conn.execute(select(schema.authors))),
        sorted(tuple(r) for r in conn.execute(select(schema.books))),
    )
"""

TESTS = """
import pytest
from sqlalchemy import delete, insert, update

from conftest import contents, expected
from schema import authors, books


def test_1_the_baseline_holds_the_data_files(db):
    assert contents(db) == expected()


def test_2_a_committed_delete_of_baseline_rows(transactional_db):
    transactional_db.execute(delete(books))
    transactional_db.execute(delete(authors).where(authors.c.id == 1))
    transactional_db.execute(insert(authors).values(id=99, name="New"))
    transactional_db.commit()
    assert contents(transactional_db)[1] == []


def test_3_the_deleted_rows_are_back(transactional_db):
    assert contents(transactional_db) == expected()


def test_4_a_sandboxed_change(db_session):
    db_session.execute(update(authors).values(name="Changed"))
    db_session.commit()
    assert {name for _id, name in contents(db_session)[0]} == {"Changed"}


@pytest.mark.dbrewind(data=["data/extra.yaml"])
def test_5_per_test_data_on_top_of_the_baseline(db):
    authors_now, books_now = contents(db)
    assert (7, "Extra") in authors_now
    assert len(books_now) == len(expected()[1]) + 1


@pytest.mark.asyncio
@pytest.mark.dbrewind(data=["data/extra.yaml"])
async def test_6_per_test_data_in_the_async_sandbox(async_db_session):
    authors_now, _ = await async_db_session.run_sync(lambda s: contents(s.connection()))
    assert (7, "Extra") in authors_now


def test_7_the_baseline_is_intact(db):
    assert contents(db) == expected()
"""

AUTHORS = {"authors": [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Ben"}]}
BOOKS = (
    "books:\n  - {id: 10, author_id: 2, title: Second}\n  - {id: 11, author_id: 1, title: First}\n"
)
EXTRA = (
    "books:\n  - {id: 70, author_id: 7, title: Extra book}\nauthors:\n  - {id: 7, name: Extra}\n"
)


def write_project(where: Path, *, ini_data: bool = True) -> None:
    (where / "data").mkdir(parents=True, exist_ok=True)
    (where / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "test_books.py").write_text(textwrap.dedent(TESTS))
    (where / "data" / "authors.json").write_text(json.dumps(AUTHORS))
    (where / "data" / "books.yaml").write_text(BOOKS)
    (where / "data" / "extra.yaml").write_text(EXTRA)
    # the books (children) listed before their authors: loaded in foreign-key order
    lines = "\n    data/books.yaml\n    data/authors.json" if ini_data else ""
    (where / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        + (f"dbrewind_data ={lines}\n" if ini_data else "")
    )


def run(project: Path, url: URL, loads: Path) -> str:
    """One whole run; its output, after checking that every test passed."""
    loads.unlink(missing_ok=True)
    code, out = start(project, pytest_args(url), env={"LOADS": str(loads)}).finish()
    assert code == 0, out
    assert "7 passed" in out, out
    return out


def baseline_loads(loads: Path) -> int:
    """How many loads of the ini's files the run made (the markers' loads not counted)."""
    if not loads.exists():
        return 0
    made = [json.loads(line) for line in loads.read_text().splitlines()]
    assert all(
        paths in (["data/books.yaml", "data/authors.json"], ["data/extra.yaml"]) for paths in made
    ), made
    return sum(paths == ["data/books.yaml", "data/authors.json"] for paths in made)


def assert_holds(
    url: URL, authors: list[tuple[int, str]], books: list[tuple[int, int, str]]
) -> None:
    seen = observe(url, ("authors", "books"))
    assert seen.rows["authors"] == authors, seen.rows
    assert seen.rows["books"] == books, seen.rows
    assert seen.at_rest, seen.tracking


ANN_BEN = [(1, "Ann"), (2, "Ben")]
TWO_BOOKS = [(10, 2, "Second"), (11, 1, "First")]


def test_baseline_data_is_loaded_once_and_reloaded_only_when_a_file_changes(
    tmp_path: Path, suite_url: URL, backend: str
) -> None:
    project = tmp_path / "project"
    write_project(project)
    loads = tmp_path / "loads.txt"

    first = run(project, suite_url, loads)
    assert "templates built 1, reused 0" in first
    assert baseline_loads(loads) == 1  # once for the run, not once per test
    assert_holds(suite_url, ANN_BEN, TWO_BOOKS)

    again = run(project, suite_url, loads)
    assert "templates built 0, reused 1" in again
    assert baseline_loads(loads) == 0  # the template holds them already
    assert_holds(suite_url, ANN_BEN, TWO_BOOKS)

    (project / "data" / "books.yaml").write_text(
        BOOKS + "  - {id: 12, author_id: 2, title: Third}\n"
    )
    edited = run(project, suite_url, loads)
    assert "templates built 1, reused 0" in edited
    assert baseline_loads(loads) == 1
    assert_holds(suite_url, ANN_BEN, [*TWO_BOOKS, (12, 2, "Third")])

    unchanged = run(project, suite_url, loads)
    assert "templates built 0, reused 1" in unchanged
    assert baseline_loads(loads) == 0
    assert_holds(suite_url, ANN_BEN, [*TWO_BOOKS, (12, 2, "Third")])


def test_a_bad_baseline_file_stops_the_run_naming_file_row_and_column(
    tmp_path: Path, suite_url: URL, backend: str
) -> None:
    project = tmp_path / "project"
    write_project(project)
    (project / "data" / "books.yaml").write_text(
        BOOKS + "  - {id: 12, author_id: 2}\n"  # no title
    )
    code, out = start(project, pytest_args(suite_url), env={"LOADS": str(tmp_path / "l")}).finish()
    assert code != 0
    assert "dbrewind: Test-data file" in out
    assert "books.yaml', row 2 (line 4) of table 'books', column 'title'" in out


def test_data_setup_in_dbrewind_setup_makes_baseline_data_too(
    tmp_path: Path, suite_url: URL, backend: str
) -> None:
    project = tmp_path / "project"
    write_project(project, ini_data=False)
    conftest = (
        (project / "conftest.py")
        .read_text()
        .replace(
            "    return schema.setup\n",
            "    from dbrewind.data import data_setup\n\n"
            "    files = data_setup('data/authors.json', 'data/books.yaml', base_dir=HERE)\n"
            "    return [schema.setup, files]\n",
        )
    )
    (project / "conftest.py").write_text(conftest)
    loads = tmp_path / "loads.txt"
    run(project, suite_url, loads)
    made = [json.loads(line) for line in loads.read_text().splitlines()]
    assert made.count(["data/authors.json", "data/books.yaml"]) == 1
    assert_holds(suite_url, ANN_BEN, TWO_BOOKS)
    run(project, suite_url, loads)
    made = [json.loads(line) for line in loads.read_text().splitlines()]
    assert all(paths == ["data/extra.yaml"] for paths in made), made  # the template was reused
    assert_holds(suite_url, ANN_BEN, TWO_BOOKS)


# --------------------------------------------------------------------------- the fingerprint
def test_the_fingerprint_follows_the_files_contents_not_their_place(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rows.json").write_text('{"t": [{"id": 1}]}')
    here = data_setup("rows.json", base_dir=tmp_path / "a")
    moved = data_setup("rows.json", base_dir=tmp_path / "b")
    assert here.dbrewind_fingerprint() == moved.dbrewind_fingerprint()
    (tmp_path / "b" / "rows.json").write_text('{"t": [{"id": 2}]}')
    assert here.dbrewind_fingerprint() != moved.dbrewind_fingerprint()
    assert repr(here) == "data_setup(rows.json)"


def test_a_missing_baseline_file_is_named_when_the_fingerprint_is_taken(tmp_path: Path) -> None:
    setup = data_setup("seed.yaml", base_dir=tmp_path)
    with pytest.raises(DataLoadError, match=r"seed\.yaml' does not exist"):
        setup.dbrewind_fingerprint()
