"""peewee-async's drop-in under the pytest plugin: one safety-net check a test, not two.

A block of ``dbrewind.peewee_async.TransactionTestCase`` that a fixture ends (as
peewee-async's own suite does) checks for escaped writes as it ends; when that
found nothing, the plugin's check after the test is counted, not sent. A block
that ends in the test's own code is not taken at its word: a write committed
after it is rewound by the plugin's check after that test; a write that escaped
during a block is rewound and reported by the block's own check; every run ends
at the baseline. On every backend.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from conftest import drop_database, make_database, require_backend
from helpers.runs import pytest_args, start

CONFTEST = """
import os

import peewee
import peewee_async
import pytest
from sqlalchemy.engine import make_url

from dbrewind import Rewinder
from dbrewind.peewee_async import TransactionTestCase

url = make_url(os.environ["SUITE_DB_URL"])
backend = url.get_backend_name()
params = dict(host=url.host, port=url.port, user=url.username, password=url.password or "")


def make_database():
    if backend == "sqlite":
        return peewee_async.SqliteDatabase(url.database)
    if backend == "postgresql":
        return peewee_async.PostgresqlDatabase(
            url.database, **params, pool_params={"minsize": 0, "maxsize": 4}
        )
    return peewee_async.MySQLDatabase(
        url.database, **params, pool_params={"minsize": 0, "maxsize": 4}
    )


class TestModel(peewee_async.AioModel):
    __test__ = False
    text = peewee.CharField(max_length=100, unique=True)


SENT = []
_rewind = Rewinder.rewind


def counted(self, *args, **kwargs):
    SENT.append(os.environ.get("PYTEST_CURRENT_TEST", ""))
    return _rewind(self, *args, **kwargs)


Rewinder.rewind = counted


@pytest.fixture(scope="session", autouse=True)
def create_tables():
    database = make_database()
    TestModel._meta.database = database
    with database.allow_sync():
        database.drop_tables([TestModel], safe=True)
        database.create_tables([TestModel])
        TestModel.create(text="baseline")
    yield


@pytest.fixture
async def db():
    database = make_database()  # a database object per test, as peewee-async's suite
    TestModel._meta.database = database
    database.set_allow_sync(True)
    async with TransactionTestCase(database):
        yield database
    await database.aio_close()
"""

TESTS = """
from conftest import SENT, TestModel, TransactionTestCase, backend


async def test_clean_blocks(db) -> None:
    await TestModel.aio_create(text="a")
    assert await TestModel.select().aio_count() == 2


async def test_again(db) -> None:
    await TestModel.aio_create(text="a")


async def test_one_check_was_sent_after_each_at_most() -> None:
    # none where the receipt rides on the rollback (PostgreSQL, SQLite); on MySQL the
    # block's own check, and not the plugin's after it
    own = 1 if backend == "mysql" else 0
    for name in ("test_clean_blocks", "test_again"):
        assert len([t for t in SENT if f"::{name} " in t]) == own, SENT


async def test_a_write_after_the_block() -> None:
    database = TestModel._meta.database
    try:
        async with TransactionTestCase(database):
            await TestModel.aio_create(text="sandboxed")
        with database.allow_sync():
            TestModel.create(text="after the block")  # a real commit, in the test's own code
    finally:
        await database.aio_close()  # its pool was opened on this test's loop


async def test_the_plugin_rewound_it(db) -> None:
    assert sorted(m.text for m in await TestModel.select().aio_execute()) == ["baseline"]


async def test_escaped_during_the_block(db) -> None:
    TestModel.create(text="escaped, sync")  # peewee's sync path: its own connection
"""


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def suite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[URL]:
    backend: str = request.param
    require_backend(backend)
    url = make_database(backend, tmp_path)
    try:
        yield url
    finally:
        drop_database(backend, url)


def test_one_check_a_test_and_every_write_rewound(tmp_path: Path, suite_db: URL) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (project / "test_models.py").write_text(textwrap.dedent(TESTS))
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    env = {"SUITE_DB_URL": suite_db.render_as_string(hide_password=False)}
    for _ in range(2):
        code, out = start(project, pytest_args(None), env=env).finish()
        assert code == 0, out
        assert "6 passed" in out, out
        assert "escaped" in out, out  # the block's own check reported the sync write
        assert "Event loop is closed" not in out, out  # no pool left open on a dead loop
    engine = create_engine(suite_db)
    try:
        with engine.connect() as conn:
            left = sorted(r[0] for r in conn.execute(text("SELECT text FROM testmodel")))
    finally:
        engine.dispose()
    assert left == ["baseline"]
