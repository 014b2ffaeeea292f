"""dbrewind.testing inside the pytest plugin's rollback sandbox, through ``pytester``.

Inner suites on every backend: statements are counted as the code under test sends them
(the application's BEGIN/COMMIT become dbrewind's SAVEPOINT/RELEASE, which never count);
the seed's ``async def db(db_session)`` fixture gives awaitable helpers; failures show the
rows found and the statements sent, with the helpers' frames hidden.
"""

from __future__ import annotations

import textwrap

import pytest
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS

# pytester restores sys.modules after each test; load the dialects once up front (as
# tests/pytest_plugin does) so SQLAlchemy does not register them twice
for _url in (*SERVER_URLS.values(), "sqlite://"):
    make_url(_url).get_dialect().import_dbapi()

MODELS = """
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(200))
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


def setup(conn):
    Base.metadata.create_all(conn)
"""

CONFTEST = """
import pytest
import models
from dbrewind.testing import DatabaseTestCase


@pytest.fixture(scope="session")
def dbrewind_setup():
    return models.setup


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def db(db_session):
    return DatabaseTestCase(db_session)
"""

PASSING = """
import pytest
from sqlalchemy import select, text

from dbrewind.testing import AsyncDatabaseAssertions, DatabaseTestCase
from models import User


def kinds(capture):
    return [s.split()[0].upper() for s in capture.statements]


def test_commits_and_rollbacks_in_the_sandbox_are_not_counted(db_session, db_assert):
    with db_assert.capture_queries() as capture:
        db_session.add(User(name="Alice", email="alice@example.com"))
        db_session.commit()  # dbrewind: RELEASE and SAVEPOINT on the real connection
        db_session.add(User(name="Bob", email="bob@example.com"))
        db_session.flush()
        db_session.rollback()  # dbrewind: ROLLBACK TO SAVEPOINT
        db_session.execute(text("COMMIT"))  # the application's own, mapped by the sandbox
        db_session.execute(select(User)).all()
    assert kinds(capture) == ["INSERT", "INSERT", "SELECT"]
    assert not any("dbrewind_sp" in s for s in capture.statements)
    db_assert.assert_database_has(User, {"name": "Alice"})
    db_assert.assert_database_missing(User, {"name": "Bob"})


def test_the_applications_own_savepoints_are_counted(db_session, db_assert):
    with db_assert.assert_num_queries(4) as capture:
        with db_session.begin_nested():
            db_session.add(User(name="Carol", email="carol@example.com"))
        db_session.execute(select(User.id)).all()
    assert kinds(capture) == ["SAVEPOINT", "INSERT", "RELEASE", "SELECT"]


def test_the_helpers_autoflush_is_not_counted(db_session):
    db = DatabaseTestCase(db_session)
    with db.assert_num_queries(0):
        db_session.add(User(name="Dave", email="dave@example.com"))
        db.assert_database_has(User, {"name": "Dave"})
        db.assert_database_count("users", 1)
        db.seed([User(name="Eve", email="eve@example.com")])
    db.assert_database_count(User, 2)


@pytest.mark.db
@pytest.mark.anyio
async def test_seed_and_assert(db):
    assert isinstance(db, AsyncDatabaseAssertions)
    await db.seed([User(name="Alice", email="alice@example.com")])
    await db.assert_database_has("users", {"email": "alice@example.com"})
    await db.assert_database_count("users", 1)
    async with db.assert_max_num_queries(1):
        await db.assert_database_has(User, [{"name": "Alice"}])


@pytest.mark.anyio
async def test_the_next_test_starts_empty(db):
    await db.assert_database_empty("users")


@pytest.mark.anyio
async def test_async_session_commits_are_not_counted(async_db_session, db_assert):
    async with db_assert.capture_queries() as capture:
        async_db_session.add(User(name="Fay", email="fay@example.com"))
        await async_db_session.commit()
        (await async_db_session.execute(select(User))).all()
    assert kinds(capture) == ["INSERT", "SELECT"]
    await db_assert.assert_database_count(User, 1)
"""


def _run(pytester: pytest.Pytester, url: URL, tests: str) -> pytest.RunResult:
    pytester.makepyfile(models=MODELS, conftest=CONFTEST)
    pytester.makepyfile(test_inner=textwrap.dedent(tests))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    rendered = url.render_as_string(hide_password=False)
    return pytester.runpytest_subprocess(
        f"--dbrewind-url={rendered}", "-p", "no:randomly", "-p", "no:cacheprovider"
    )


def test_counts_and_helpers_inside_the_plugins_sandbox(
    pytester: pytest.Pytester, suite_url: URL
) -> None:
    result = _run(pytester, suite_url, PASSING)
    result.assert_outcomes(passed=6)


ONLY_DB_SESSION_IN_AN_ASYNC_TEST = """
import pytest

from dbrewind.testing import AsyncDatabaseAssertions
from models import User


@pytest.mark.anyio
async def test_db_assert_reads_through_the_tests_db_session(db_session, db_assert):
    assert isinstance(db_assert, AsyncDatabaseAssertions)  # awaitable, as in any async test
    assert db_assert.session is db_session  # not a second sandbox of its own
    db_session.add(User(name="Gus", email="gus@example.com"))
    db_session.flush()  # written, not committed: seen only through this session
    await db_assert.assert_database_has(User, {"name": "Gus"})
    await db_assert.assert_database_count("users", 1)


@pytest.mark.anyio
async def test_and_the_next_test_starts_empty(db_session, db_assert):
    await db_assert.assert_database_empty("users")
"""


def test_an_async_test_with_only_db_session_gets_db_assert_over_it(
    pytester: pytest.Pytester, suite_url: URL
) -> None:
    result = _run(pytester, suite_url, ONLY_DB_SESSION_IN_AN_ASYNC_TEST)
    result.assert_outcomes(passed=2)


FAILING = """
import pytest
from sqlalchemy import select

from models import User


def test_has_fails(db_session, db_assert):
    db_assert.seed([User(name="Alice", email="alice@example.com")])
    db_assert.assert_database_has(User, {"name": "Alice", "email": "alicia@example.com"})


@pytest.mark.anyio
async def test_has_fails_awaited(db):
    await db.seed([User(name="Bob", email="bob@example.com")])
    await db.assert_database_has("users", {"name": "Robert"})


def test_count_of_queries_fails(db_session, db_assert):
    with db_assert.assert_num_queries(1):
        db_session.execute(select(User)).all()
        db_session.execute(select(User.email)).all()


def test_soft_delete_fails(db_session, db_assert):
    (user,) = db_assert.seed([User(name="Carol", email="carol@example.com")])
    db_assert.assert_soft_deleted(user)
"""


def test_failures_show_what_is_there_and_hide_the_helpers_frames(
    pytester: pytest.Pytester, suite_url: URL
) -> None:
    result = _run(pytester, suite_url, FAILING)
    result.assert_outcomes(failed=4)
    output = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*db_assert.assert_database_has(User, {*",
            "E *  AssertionError: Table 'users' has no row matching "
            "{name: 'Alice', email: 'alicia@example.com'}.",
            "E *  Found 1 row; the 1 closest (most matching columns first):",
            "E *    {id: *, name: 'Alice', email: 'alice@example.com', deleted_at: None}",
            "E *      matches 1 of 2; differs: email: 'alice@example.com' "
            "(expected 'alicia@example.com')",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            '*await db.assert_database_has("users", {"name": "Robert"})*',
            "E *  AssertionError: Table 'users' has no row matching {name: 'Robert'}.",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*with db_assert.assert_num_queries(1):*", "E *  AssertionError: Expected 1 query, 2 ran:"]
    )
    result.stdout.fnmatch_lines(
        ["E *  AssertionError: Expected User(id=*) to be soft-deleted, but deleted_at is NULL."]
    )
    # the failing line is the test's own; no frame of dbrewind's helpers is shown
    assert "dbrewind/testing" not in output
    assert "_core.py" not in output
    assert "queries.py" not in output
