"""Seed 000's usage of ``TransactionTestCase``, run again and again, on every backend.

The suite's session fixture drops and recreates its tables and inserts a
baseline row, as peewee-async suites do; every run must pass, and an escaped
sync write must be rewound on the second run as on the first. On a database
whose name does not say test, the drop-in classes still run, as a pure
rollback sandbox, with one warning.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from conftest import drop_database, make_database, require_backend
from dbrewind import Rewinder
from helpers.runs import pytest_args, start, wait_for_file

CONFTEST = """
import os

import peewee
import peewee_async
import pytest
from sqlalchemy.engine import make_url

from {module} import TransactionTestCase

url = make_url(os.environ["SUITE_DB_URL"])
backend = url.get_backend_name()
params = dict(host=url.host, port=url.port, user=url.username, password=url.password or "")
if backend == "sqlite":
    database = peewee_async.SqliteDatabase(url.database)
elif backend == "postgresql":
    database = peewee_async.Psycopg3Database(
        url.database, **params, pool_params={{"min_size": 1, "max_size": 4}}
    )
else:
    database = peewee_async.MySQLDatabase(
        url.database, **params, pool_params={{"minsize": 1, "maxsize": 4}}
    )
database.set_allow_sync(True)


class TestModel(peewee_async.AioModel):
    __test__ = False
    text = peewee.CharField(max_length=100, unique=True)

    class Meta:
        database = database


all_your_models = [TestModel]


@pytest.fixture(scope="session", autouse=True)
def create_tables():
    database.drop_tables(all_your_models, safe=True)
    database.create_tables(all_your_models)
    TestModel.create(text="baseline")
    yield
    database.close()


@pytest.fixture(autouse=True)
async def aio_pool():  # set up before in_transaction (autouse fixtures go by name)
    # each test runs on an event loop of its own: no pooled connection may outlive it
    await database.aio_connect()
    yield
    await database.aio_close()


@pytest.fixture
async def clear_tables():
    yield
    for model in all_your_models:
        await model.delete().aio_execute()


@pytest.fixture(autouse=True)
async def in_transaction(request):
    # In some cases, TransactionTestCase cannot be used,
    # so we fall back to the clear_tables fixture.
    if "clear_tables" in request.fixturenames:
        yield
    else:
        async with TransactionTestCase(database):
            yield
"""

TESTS = """
import peewee
import pytest

from conftest import TestModel, database


async def test_model_created() -> None:
    # This test runs inside a transaction and is rolled back on exit.
    await TestModel.aio_create(text="Test 1")
    assert await TestModel.select().aio_exists()
    assert await TestModel.select().aio_count() == 2


async def test_model_sync_created(clear_tables: None) -> None:
    TestModel.create(text="Test 1")
    assert TestModel.select().exists()


async def test_nested_atomic_and_a_database_error() -> None:
    async with database.aio_atomic():
        async with database.aio_atomic():
            await TestModel.aio_create(text="inner")
    with pytest.raises(peewee.IntegrityError):
        await TestModel.aio_create(text="baseline")
    assert await TestModel.select().aio_count() == 2


async def test_an_escaped_sync_write() -> None:
    TestModel.create(text="sync, escaped")  # peewee's sync path: its own connection


async def test_only_the_baseline_is_left() -> None:
    assert [m.text for m in await TestModel.select().aio_execute()] == ["baseline"]
"""

SYNC_CONFTEST = """
import os

import peewee
import pytest
from sqlalchemy.engine import make_url

from dbrewind.peewee import TransactionTestCase

url = make_url(os.environ["SUITE_DB_URL"])
backend = url.get_backend_name()
params = dict(host=url.host, port=url.port, user=url.username, password=url.password or "")
if backend == "sqlite":
    database = peewee.SqliteDatabase(url.database)
elif backend == "postgresql":
    database = peewee.PostgresqlDatabase(url.database, **params)
else:
    database = peewee.MySQLDatabase(url.database, **params)


class Author(peewee.Model):
    name = peewee.CharField(max_length=100, unique=True)

    class Meta:
        database = database


@pytest.fixture(scope="session", autouse=True)
def create_tables():
    database.drop_tables([Author], safe=True)
    database.create_tables([Author])
    Author.create(name="baseline")
    yield


@pytest.fixture(autouse=True)
def in_transaction():
    with TransactionTestCase(database):
        yield
"""

SYNC_TESTS = """
import threading

import peewee
import pytest

from conftest import Author, database


def test_writes_are_rolled_back():
    Author.create(name="ada")
    with database.atomic():
        Author.create(name="nested")
    assert Author.select().count() == 3


def test_an_integrity_error_does_not_poison_the_test():
    with pytest.raises(peewee.IntegrityError):
        Author.create(name="baseline")
    assert Author.select().count() == 1


def test_a_write_from_another_thread_escapes():
    thread = threading.Thread(target=lambda: Author.create(name="other thread"))
    thread.start()
    thread.join()


def test_only_the_baseline_is_left():
    assert [a.name for a in Author.select()] == ["baseline"]
"""


@pytest.fixture
def peewee_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    require_backend(backend)
    url = make_database(backend, tmp_path)
    try:
        yield url
    finally:
        drop_database(backend, url)


def run_twice(project: Path, url: URL, expected: str) -> list[str]:
    outputs = []
    env = {"SUITE_DB_URL": url.render_as_string(hide_password=False)}
    for seed in (None, 7):
        code, out = start(project, pytest_args(None, seed=seed), env=env).finish()
        assert code == 0, out
        assert expected in out, out
        outputs.append(out)
    return outputs


def write(project: Path, conftest: str, tests: str) -> None:
    project.mkdir()
    (project / "conftest.py").write_text(textwrap.dedent(conftest))
    (project / "test_models.py").write_text(textwrap.dedent(tests))
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )


def rows(url: URL, table: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote_identifier(table)
            return sorted(str(r[1]) for r in conn.execute(text(f"SELECT * FROM {quoted}")))
    finally:
        engine.dispose()


def test_seed_000_passes_on_every_run(tmp_path: Path, peewee_url: URL) -> None:
    project = tmp_path / "project"
    write(project, CONFTEST.format(module="dbrewind.peewee_async"), TESTS)
    for out in run_twice(project, peewee_url, "5 passed"):
        assert "SafetyNetWarning" not in out
    assert rows(peewee_url, "testmodel") == ["baseline"]


def test_the_sync_sandbox_passes_on_every_run(tmp_path: Path, peewee_url: URL) -> None:
    project = tmp_path / "project"
    write(project, SYNC_CONFTEST, SYNC_TESTS)
    for out in run_twice(project, peewee_url, "4 passed"):
        assert "Writes escaped the rollback sandbox" not in out or "rewound" in out
    assert rows(peewee_url, "author") == ["baseline"]


def test_a_database_not_named_test_runs_as_a_pure_rollback_sandbox_with_one_warning(
    tmp_path: Path, backend: str
) -> None:
    require_backend(backend)
    url = make_database(backend, tmp_path, name=f"dbrewind_{uuid.uuid4().hex[:8]}_app")
    project = tmp_path / "project"
    # the sandboxed tests only: nothing cleans up after the others there
    tests = TESTS.replace("async def test_an_escaped_sync_write", "async def not_a_test_1")
    tests = tests.replace("async def test_model_sync_created", "async def not_a_test_2")
    write(project, CONFTEST.format(module="dbrewind.peewee_async"), tests)
    try:
        for out in run_twice(project, url, "3 passed"):
            assert out.count("SafetyNetWarning") == 1, out
            assert "is not provably a test database" in out
        assert rows(url, "testmodel") == ["baseline"]
        with Rewinder(url) as rewinder, rewinder.connection() as conn:
            assert not rewinder.dialect.installation(conn).installed  # nothing installed there
    finally:
        drop_database(backend, url)


KEEPING_CONFTEST = CONFTEST.replace(
    """    database.drop_tables(all_your_models, safe=True)
    database.create_tables(all_your_models)
    TestModel.create(text="baseline")""",
    """    database.create_tables(all_your_models, safe=True)  # keeps what is there
    for text in os.environ.get("SUITE_SEEDS", "baseline").split():
        TestModel.get_or_create(text=text)""",
)

KEEPING_TESTS = """
import os
import pathlib
import time

from conftest import TestModel


async def test_escapes_then_waits() -> None:
    TestModel.create(text="escaped, then the run was killed")
    checkpoint = os.environ.get("SUITE_CHECKPOINT")
    if checkpoint:
        pathlib.Path(checkpoint).write_text("")
        time.sleep(120)


async def test_the_baseline_is_what_the_setup_left() -> None:
    texts = sorted(m.text for m in await TestModel.select().aio_execute())
    assert texts == sorted(os.environ.get("SUITE_SEEDS", "baseline").split())
"""


def test_a_killed_run_s_escaped_write_is_rewound_and_a_new_seed_is_kept(
    tmp_path: Path, peewee_url: URL
) -> None:
    project = tmp_path / "project"
    write(project, KEEPING_CONFTEST.format(module="dbrewind.peewee_async"), KEEPING_TESTS)
    url = peewee_url.render_as_string(hide_password=False)
    checkpoint = tmp_path / "reached"
    victim = start(
        project,
        pytest_args(None, "-k", "escapes"),
        env={"SUITE_DB_URL": url, "SUITE_CHECKPOINT": str(checkpoint)},
    )
    wait_for_file(checkpoint, victim)
    victim.kill()  # its escaped row is committed, and no rewind ran
    assert "escaped, then the run was killed" in rows(peewee_url, "testmodel")

    # the next run's setup finds the tables as they are: the killed run's row goes
    code, out = start(project, pytest_args(None), env={"SUITE_DB_URL": url}).finish()
    assert code == 0, out
    assert "2 passed" in out, out
    assert rows(peewee_url, "testmodel") == ["baseline"]

    # after a clean release, what the setup adds is the new baseline, not a leak
    env = {"SUITE_DB_URL": url, "SUITE_SEEDS": "baseline added-in-v2"}
    code, out = start(project, pytest_args(None), env=env).finish()
    assert code == 0, out
    assert "2 passed" in out, out
    assert rows(peewee_url, "testmodel") == ["added-in-v2", "baseline"]
