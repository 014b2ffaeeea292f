"""Adopting dbrewind in an existing application: the shapes an app's own code has.

An application's Alembic ``env.py`` often sets ``sqlalchemy.url`` from the
app's settings and ignores the connection dbrewind hands it: the setup must
then stop before any migration runs, leave the app's database untouched, say
which lines of ``env.py`` to change, and leave no template behind.
"""

from __future__ import annotations

import re
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, make_url

from conftest import drop_database, make_database
from helpers.runs import databases_named, pytest_args, start

ENV_PY_OWN_ENGINE = """
from alembic import context
from sqlalchemy import engine_from_config, pool

from app_settings import DATABASE_URL

config = context.config
config.set_main_option("sqlalchemy.url", DATABASE_URL)


def run_migrations_online():
    connectable = engine_from_config(
        config.get_section(config.config_ini_section), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
"""

# What the error message tells the user to write (kept in step with it below).
ENV_PY_FIXED = ENV_PY_OWN_ENGINE.replace(
    "def run_migrations_online():\n",
    """def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
        return
""",
)

VERSION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "account", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(80), unique=True),
    )
    op.execute("INSERT INTO account (email) VALUES ('admin@example.com')")


def downgrade():
    op.drop_table("account")
"""

CONFTEST = """
import pytest
from dbrewind.setup import alembic_setup


@pytest.fixture(scope="session")
def dbrewind_setup():
    return alembic_setup("alembic.ini")
"""

TESTS = """
from sqlalchemy import text


def test_the_migrated_row_is_there(db):
    assert db.execute(text("SELECT email FROM account")).scalars().all() == [
        "admin@example.com"
    ]


def test_commits_are_rewound(transactional_db):
    transactional_db.execute(text("INSERT INTO account (email) VALUES ('x@example.com')"))
    transactional_db.commit()
"""


@pytest.fixture
def app_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """The application's own database: a name dbrewind would never take for a test one."""
    name = f"dbrewind_app_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'app.db'}")
        return
    url = make_database(backend, tmp_path, name)
    try:
        yield url
    finally:
        drop_database(backend, url)


def _project(where: Path, app_url: URL, env_py: str) -> None:
    (where / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    (where / "migrations" / "env.py").write_text(env_py)
    (where / "migrations" / "script.py.mako").write_text("")
    (where / "migrations" / "versions" / "0001_account.py").write_text(VERSION)
    (where / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    rendered = app_url.render_as_string(hide_password=False)
    (where / "app_settings.py").write_text(f"DATABASE_URL = {rendered!r}\n")
    (where / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (where / "test_app.py").write_text(textwrap.dedent(TESTS))


def _write_project(where: Path, files: dict[str, str]) -> Path:
    """An inner project: ``files`` by path under ``where`` (dedented), folders made."""
    for name, text in files.items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return where


def _tables(url: URL) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _templates(backend: str, suite_url: URL) -> list[str]:
    stem = Path(str(suite_url.database)).stem if backend == "sqlite" else str(suite_url.database)
    where = Path(str(suite_url.database)).parent if backend == "sqlite" else None
    return [n for n in databases_named(backend, stem, where) if n != f"{stem}.db" and n != stem]


def test_an_env_py_that_migrates_its_own_database_is_stopped_before_it_does(
    backend: str, tmp_path: Path, app_url: URL, suite_url: URL
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _project(project, app_url, ENV_PY_OWN_ENGINE)

    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert not re.search(r"\d+ passed", out), out
    assert "env.py configured Alembic with its own connection" in out, out
    assert str(project / "migrations" / "env.py") in out, out
    assert 'connection = config.attributes.get("connection")' in out, out
    assert "nothing was migrated" in out, out
    # the application's database was never migrated, and no half-made template is left
    if backend != "sqlite" or Path(str(app_url.database)).exists():
        assert _tables(app_url) == set(), "the application's database was migrated"
    assert _templates(backend, suite_url) == []

    # the fix the message shows, then two runs: both green, the app's database untouched
    (project / "migrations" / "env.py").write_text(ENV_PY_FIXED)
    for _ in range(2):
        code, out = start(project, pytest_args(suite_url)).finish()
        assert code == 0, out
        assert "2 passed" in out, out
    if backend != "sqlite" or Path(str(app_url.database)).exists():
        assert _tables(app_url) == set()


def test_an_env_py_that_runs_no_migration_fails_the_setup(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    """An ``env.py`` that takes the connection but never migrates it: the version table is
    missing afterwards, and the run stops before its tests, naming the revision."""
    project = tmp_path / "project"
    project.mkdir()
    _project(project, make_url("sqlite://"), "from alembic import context\n")
    (project / "conftest.py").write_text(
        textwrap.dedent(CONFTEST).replace(
            'return alembic_setup("alembic.ini")',
            'return [lambda conn: conn.exec_driver_sql("CREATE TABLE other (id INTEGER)"), '
            'alembic_setup("alembic.ini")]',
        )
    )
    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert not re.search(r"\d+ passed", out), out
    assert "is not at 'head' afterwards (no alembic_version row)" in out, out
    assert _templates(backend, suite_url) == []


def test_a_setup_that_makes_no_tables_fails_the_setup(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture(scope='session')\ndef dbrewind_setup():\n"
        "    def build_elsewhere(conn):\n        pass\n\n    return build_elsewhere\n"
    )
    (project / "test_app.py").write_text("def test_it(db):\n    pass\n")
    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert "has no tables afterwards" in out, out
    assert _templates(backend, suite_url) == []


# ---------------------------------------------------------------- no hangs

HANG_CONFTEST = """
import pytest
from sqlalchemy import text


@pytest.fixture(scope="session")
def dbrewind_setup():
    def schema(conn):
        conn.execute(text(
            "CREATE TABLE account (id INTEGER PRIMARY KEY, email VARCHAR(80) UNIQUE)"
        ))

    return schema
"""

HANG_TESTS = """
from sqlalchemy import create_engine, text


def test_the_app_writes_what_the_sandbox_holds(db_session, db_url):
    db_session.execute(text("INSERT INTO account (id, email) VALUES (1, 'same@example.com')"))
    db_session.flush()
    app_engine = create_engine(db_url)  # the application's own engine, not routed
    try:
        with app_engine.begin() as conn:
            conn.execute(text("INSERT INTO account (id, email) VALUES (2, 'same@example.com')"))
    finally:
        app_engine.dispose()


async def test_the_async_app_writes_what_the_sandbox_holds(async_db_session, db_url):
    from sqlalchemy.ext.asyncio import create_async_engine
    from dbrewind import parse_url

    await async_db_session.execute(
        text("INSERT INTO account (id, email) VALUES (3, 'async@example.com')")
    )
    await async_db_session.flush()
    app_engine = create_async_engine(parse_url(db_url).async_url())
    try:
        async with app_engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO account (id, email) VALUES (4, 'async@example.com')")
            )
    finally:
        await app_engine.dispose()


def test_the_next_test_starts_clean(db):
    assert db.execute(text("SELECT count(*) FROM account")).scalar() == 0
"""


def test_a_connection_waiting_on_the_sandbox_fails_the_test_instead_of_hanging(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    project = _write_project(
        tmp_path / "project",
        {
            "conftest.py": HANG_CONFTEST,
            "test_app.py": HANG_TESTS,
            "pytest.ini": "[pytest]\nasyncio_mode = auto\n",
        },
    )
    started = time.monotonic()
    code, out = start(project, pytest_args(suite_url)).finish(timeout=120)
    took = time.monotonic() - started
    assert code == 1, out
    assert "2 failed, 1 passed" in out, out
    assert took < 40, f"the run took {took:.0f} s\n{out}"
    if backend == "sqlite":
        # one writer at a time: the app's connection gives up after its busy timeout
        assert "database is locked" in out, out
        assert out.count("the sandbox holds the database's one write lock") == 2, out
        assert "dbrewind_engines" in out, out
        return
    assert "waited" in out, out
    assert "for a lock the sandbox" in out, out
    assert out.count("dbrewind cancelled that statement") >= 2, out  # sync and async
    assert "INSERT INTO account (id, email) VALUES (2" in out, out
    assert "INSERT INTO account (id, email) VALUES (4" in out, out
    assert "dbrewind_engines" in out, out


# ------------------------------------------------- the fingerprint follows the setup

INIT_DB = """
from sqlalchemy import text


def init_db(conn):
    conn.execute(text("CREATE TABLE setting (name VARCHAR(20) PRIMARY KEY, value VARCHAR(20))"))
    conn.execute(text("INSERT INTO setting VALUES ('version', '{version}')"))
"""

INIT_CONFTEST = """
import pytest

from app.init import init_db


@pytest.fixture(scope="session")
def dbrewind_setup():
    def setup(conn):
        init_db(conn)

    return setup
"""

INIT_TESTS = """
from sqlalchemy import text


def test_the_setup_ran(db):
    version = db.execute(text("SELECT value FROM setting")).scalar()
    assert version == open("expected.txt").read().strip()
"""


def test_changing_code_the_setup_calls_rebuilds_the_template_and_says_why(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text("")
    (project / "app" / "init.py").write_text(textwrap.dedent(INIT_DB.format(version="v1")))
    (project / "conftest.py").write_text(textwrap.dedent(INIT_CONFTEST))
    (project / "test_app.py").write_text(textwrap.dedent(INIT_TESTS))
    (project / "expected.txt").write_text("v1")
    outs = []
    for version in ("v1", "v1", "v2", "v2"):
        (project / "app" / "init.py").write_text(textwrap.dedent(INIT_DB.format(version=version)))
        (project / "expected.txt").write_text(version)
        code, out = start(project, pytest_args(suite_url)).finish()
        assert code == 0, out
        outs.append(out)
    assert "templates built 1, reused 0" in outs[0], outs[0]
    assert "templates built 0, reused 1" in outs[1], outs[1]
    assert "templates built 1, reused 0" in outs[2], outs[2]
    assert "the setup's code changed in app/init.py" in outs[2], outs[2]
    assert "templates built 0, reused 1" in outs[3], outs[3]


# ------------------------------------------------------------ names

SHADOW_CONFTEST = (
    HANG_CONFTEST
    + """

@pytest.fixture
def db():
    return "the project's own db"


@pytest.fixture
def db_session(dbrewind_db_session):  # kept on purpose, built on the alias: no warning
    dbrewind_db_session.info["project"] = True
    return dbrewind_db_session
"""
)

SHADOW_TESTS = """
from sqlalchemy import text


def test_the_projects_db(db):
    assert db == "the project's own db"


def test_dbrewinds_under_its_alias(dbrewind_db, dbrewind_db_session):
    dbrewind_db.execute(text("INSERT INTO account (id, email) VALUES (1, 'a@example.com')"))
    assert dbrewind_db_session.execute(text("SELECT count(*) FROM account")).scalar() == 1


def test_and_rolled_back(dbrewind_db):
    assert dbrewind_db.execute(text("SELECT count(*) FROM account")).scalar() == 0


def test_the_projects_session_on_dbrewinds(db_session):
    assert db_session.info["project"] is True
    assert db_session.execute(text("SELECT count(*) FROM account")).scalar() == 0
"""


def test_a_project_fixture_shadowing_dbrewinds_is_named_with_the_alias(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    project = _write_project(
        tmp_path / "project",
        {
            "conftest.py": SHADOW_CONFTEST,
            "test_app.py": SHADOW_TESTS,
        },
    )
    code, out = start(project, pytest_args(suite_url, "--dbrewind-strict")).finish()
    assert code == 0, out
    assert "4 passed" in out, out
    assert f"the fixture 'db' of {project / 'conftest.py'}" in out, out
    assert "the fixture 'db_session'" not in out, out
    assert "dbrewind's is also there as 'dbrewind_db'" in out, out
    assert out.count("FixtureShadowedWarning") == 1, out


SETTINGS_CONFTEST = HANG_CONFTEST

SETTINGS_TESTS = """
import asyncio

from sqlalchemy import text

from app.sessions import AppAsyncSession, AppSession


def test_db_session_is_of_the_configured_class(db_session, db_url):
    assert type(db_session) is AppSession
    assert db_session.exec_count() == 0
    assert open("expected.txt").read() in db_url  # the database the settings name


async def test_async_db_session_too(async_db_session):
    assert type(async_db_session) is AppAsyncSession
"""

SESSIONS = """
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session


class AppSession(Session):
    def exec_count(self):
        return self.execute(text("SELECT count(*) FROM account")).scalar()


class AppAsyncSession(AsyncSession):
    pass
"""


def test_the_url_from_the_apps_settings_and_the_apps_session_class(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text("")
    (project / "app" / "sessions.py").write_text(textwrap.dedent(SESSIONS))
    # the settings name the database the tests derive theirs from (it ends in _test here,
    # so the derived name is the same one)
    rendered = suite_url.render_as_string(hide_password=False)
    (project / "app" / "config.py").write_text(
        f"class Settings:\n    SQLALCHEMY_DATABASE_URI = {rendered!r}\n\n\nsettings = Settings()\n"
    )
    (project / "expected.txt").write_text(Path(str(suite_url.database)).stem)
    (project / "conftest.py").write_text(textwrap.dedent(SETTINGS_CONFTEST))
    (project / "test_app.py").write_text(textwrap.dedent(SETTINGS_TESTS))
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "pythonpath = .\n"
        "dbrewind_url = app.config:settings.SQLALCHEMY_DATABASE_URI\n"
        "dbrewind_session_class = app.sessions:AppSession\n"
        "dbrewind_async_session_class = app.sessions:AppAsyncSession\n"
    )
    code, out = start(project, pytest_args(None)).finish()
    assert code == 0, out
    assert "2 passed" in out, out


# ------------------------------------------------------------ leftovers


def test_a_database_dbrewind_did_not_make_is_not_replaced_unless_allowed(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    """An existing test database (migrated by the application's own prestart script) is
    refused, naming it, and left as it was; --dbrewind-replace lets dbrewind replace it."""
    if backend != "sqlite":
        make_database(backend, tmp_path, str(suite_url.database))
    engine = create_engine(suite_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE precious (id INTEGER PRIMARY KEY)")
            conn.exec_driver_sql("INSERT INTO precious (id) VALUES (7)")
    finally:
        engine.dispose()
    project = _write_project(
        tmp_path / "project",
        {
            "conftest.py": HANG_CONFTEST,
            "test_app.py": "def test_it(db):\n    pass\n",
        },
    )

    code, out = start(project, pytest_args(suite_url)).finish()
    assert code != 0, out
    assert re.search(r"holds tables \((public\.)?precious\) and was not made by dbrewind", out), out
    assert "--dbrewind-replace" in out, out
    engine = create_engine(suite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id FROM precious").scalars().all() == [7]
    finally:
        engine.dispose()

    for args in (("--dbrewind-replace",), ()):
        code, out = start(project, pytest_args(suite_url, *args)).finish()
        assert code == 0, out
        assert "1 passed" in out, out


# ------------------------------------------------------------ threads

THREADS_TESTS = """
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

POOL = ThreadPoolExecutor(2, thread_name_prefix="app-pool")


@pytest.fixture(scope="module")
def portal():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="module-portal")
    thread.start()
    yield thread
    stop.set()
    thread.join()


def test_uses_the_modules_thread_and_a_pool(db, portal):
    assert POOL.submit(lambda: 1 + 1).result() == 2
    assert portal.is_alive()
    db.execute(text("INSERT INTO account (id, email) VALUES (1, 'a@example.com')"))


def test_the_modules_thread_goes_on(db, portal):
    assert portal.is_alive()


def test_leaves_a_busy_thread(db):
    threading.Thread(target=time.sleep, args=(4,), name="still-busy", daemon=True).start()
"""


def test_a_modules_threads_and_idle_pool_workers_are_not_the_tests(
    backend: str, tmp_path: Path, suite_url: URL
) -> None:
    """A thread a module-scoped fixture started (a TestClient's portal) belongs to the
    module, and a pool's idle worker has finished: neither is waited for nor named; a
    thread still busy after its test is."""
    project = _write_project(
        tmp_path / "project", {"conftest.py": HANG_CONFTEST, "test_threads.py": THREADS_TESTS}
    )
    began = time.monotonic()
    code, out = start(project, pytest_args(suite_url)).finish()
    took = time.monotonic() - began
    assert code == 0, out
    assert "3 passed" in out, out
    assert out.count("left thread(s)") == 1, out
    assert "test_leaves_a_busy_thread left thread(s) 'still-busy' running" in out, out
    assert "module-portal" not in out, out
    assert "app-pool" not in out, out
    assert took < 30, out
