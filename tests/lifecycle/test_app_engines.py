"""ini ``dbrewind_engines``: the application's own engines, sandboxed with no change to it.

The inner application makes its engines at import time from its own
settings, which name the application's database; its services commit. With
one ini line, every test's writes through those engines land in the test
database and are rolled back with the test's sandbox (or, under the clean
strategy, committed for real and rewound), the application's database is
never reached, and the run can be repeated.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, make_url

from conftest import drop_database, make_database
from dbrewind import parse_url
from helpers.runs import observe, pytest_args, start

APP_DB = """
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.orm import sessionmaker

from app.settings import DATABASE_URL
from app.models import users

engine = create_engine(DATABASE_URL)
SessionLocal = sessionmaker(bind=engine)


def create_user(email):
    with SessionLocal() as session:
        session.execute(insert(users).values(email=email))
        session.commit()


def count_users():
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(users)).scalar()
"""

APP_ADB = """
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from app.settings import ASYNC_DATABASE_URL
from app.models import users

async_engine = create_async_engine(ASYNC_DATABASE_URL, poolclass=NullPool)
async_session_maker = async_sessionmaker(async_engine, expire_on_commit=False)


async def acreate_user(email):
    async with async_session_maker() as session:
        await session.execute(insert(users).values(email=email))
        await session.commit()


async def acount_users():
    async with async_engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(users))).scalar()
"""

APP_MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(80), unique=True, nullable=False),
)
"""

CONFTEST = """
import pytest
from dbrewind.setup import metadata_setup

from app.models import metadata


@pytest.fixture(scope="session")
def dbrewind_setup():
    return metadata_setup(metadata)
"""

TESTS = """
import asyncio
import threading

import pytest
from sqlalchemy import text

from app.adb import acount_users, acreate_user
from app.db import count_users, create_user


def test_the_app_commits_into_the_sandbox(db_session):
    create_user("ada@example.com")
    assert count_users() == 1
    # the test's own session is in the same sandbox: it sees the app's commit
    assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 1


def test_a_test_without_db_fixtures_is_sandboxed_too():
    create_user("ada@example.com")  # the same email: the earlier test's row is gone
    assert count_users() == 1


def test_a_thread_of_the_app_runs_in_the_sandbox():
    worker = threading.Thread(target=create_user, args=("thread@example.com",))
    worker.start()
    worker.join()
    assert count_users() == 1


@pytest.mark.dbrewind(transactional=True)
def test_real_commits_under_the_clean_strategy(transactional_db):
    create_user("real@example.com")
    assert transactional_db.execute(text("SELECT count(*) FROM users")).scalar() == 1


async def test_the_async_app_commits_into_the_async_sandbox(async_db_session):
    await acreate_user("async@example.com")
    assert await acount_users() == 1
    found = await async_db_session.execute(text("SELECT count(*) FROM users"))
    assert found.scalar() == 1


async def test_an_async_test_without_db_fixtures():
    await acreate_user("async@example.com")
    assert await acount_users() == 1


def test_the_async_engine_from_a_sync_test():
    # as a sync test client runs an async app: real commits, rewound after
    asyncio.run(acreate_user("loop@example.com"))
    assert asyncio.run(acount_users()) == 1


def test_every_test_started_clean():
    assert count_users() == 0
"""


@pytest.fixture
def app_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """The application's own database, empty: it must stay so."""
    if backend == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'app.db'}")
        return
    url = make_database(backend, tmp_path, f"dbrewind_app_{uuid.uuid4().hex[:8]}")
    try:
        yield url
    finally:
        drop_database(backend, url)


def _project(where: Path, app_url: URL) -> None:
    (where / "app").mkdir(parents=True)
    (where / "app" / "__init__.py").write_text("")
    sync = app_url.render_as_string(hide_password=False)
    asynchronous = parse_url(app_url).async_url().render_as_string(hide_password=False)
    (where / "app" / "settings.py").write_text(
        f"DATABASE_URL = {sync!r}\nASYNC_DATABASE_URL = {asynchronous!r}\n"
    )
    (where / "app" / "models.py").write_text(textwrap.dedent(APP_MODELS))
    (where / "app" / "db.py").write_text(textwrap.dedent(APP_DB))
    (where / "app" / "adb.py").write_text(textwrap.dedent(APP_ADB))
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "test_app.py").write_text(textwrap.dedent(TESTS))
    (where / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "dbrewind_engines =\n    app.db:engine\n    app.adb:async_session_maker\n"
    )


def test_the_apps_engines_are_sandboxed_by_one_ini_line(
    backend: str, tmp_path: Path, app_url: URL, suite_url: URL
) -> None:
    project = tmp_path / "project"
    _project(project, app_url)
    for seed in (None, 1, 2):  # file order, then two random orders; the same database
        code, out = start(project, pytest_args(suite_url, "--dbrewind-strict", seed=seed)).finish()
        assert code == 0, out
        assert "8 passed" in out, out
        assert "(-)" not in out, out  # "slowest rewinds" names only tests that rewound
        # the hint counts only the test that chose the clean strategy; the sync test that
        # ran the async engine gets its own
        assert "hint: 1 tests under the clean strategy touched only 1-2 tables" in out, out
        assert (
            "hint: 1 sync tests used an async engine of dbrewind_engines "
            "(test_app.py::test_the_async_engine_from_a_sync_test)"
        ) in out, out
        seen = observe(suite_url, ["users"])
        assert seen.rows["users"] == [], seen.rows
        assert seen.at_rest, seen.tracking
    # the application's database was never reached
    if backend == "sqlite":
        assert not Path(str(app_url.database)).exists()
    else:
        engine = create_engine(app_url)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_an_engine_of_another_kind_is_refused_with_the_fix(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    project = tmp_path / "project"
    other = "postgresql" if backend != "postgresql" else "mysql"
    driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}[other]
    _project(project, make_url(f"{driver}://nobody@127.0.0.1/app"))
    (project / "test_app.py").write_text("def test_it(db):\n    pass\n")
    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert f"dbrewind_engines = 'app.db:engine' is a {other}" in out, out
    assert "Give dbrewind_url a URL of that kind" in out, out


def test_something_that_is_no_engine_is_refused(tmp_path: Path, suite_url: URL) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "things.py").write_text("engine = 'postgresql://app@localhost/app'\n")
    (project / "pytest.ini").write_text("[pytest]\ndbrewind_engines = things:engine\n")
    (project / "test_app.py").write_text("def test_it(db):\n    pass\n")
    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert "dbrewind_engines = 'things:engine' is str, not a SQLAlchemy Engine" in out, out
