"""Seed 002's examples, with only their imports changed, on all three databases.

The inner suite is seed 002's own code: its ``db`` fixture (an async fixture
wrapping ``db_session`` in ``DatabaseTestCase``), its ``test_seed_and_assert``
(``@pytest.mark.db``, ``@pytest.mark.anyio``), its ``UserFactory`` with a
``state_admin``, ``UserFactory.state("admin").make()`` and ``await
UserFactory.create_many(5, session=session)``. Around it, tests a user of those
helpers writes: a test's first user is ``user1`` whatever ran before it, a
factory given no session uses the test's, and a module-scoped fixture's users
stay counted for its module. Run in random order, twice on the same database,
and under ``-n 2``; the database is at its baseline after each run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from helpers.runs import databases_named, pytest_args

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
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


def setup(conn):
    Base.metadata.create_all(conn)
"""

# seed 002, "DatabaseTestCase": the fixture as the page writes it
CONFTEST = """
import pytest
from dbrewind.testing import DatabaseTestCase


@pytest.fixture
async def db(db_session):
    return DatabaseTestCase(db_session)
"""

FACTORIES = """
from typing import Any, ClassVar
from dbrewind.testing import ModelFactory
from myapp.models import User


class UserFactory(ModelFactory[User]):
    __model__ = User

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {
            "name": f"User {seq}",
            "email": f"user{seq}@test.invalid",
        }

    @classmethod
    def state_admin(cls) -> dict[str, Any]:
        return {"name": "Admin", "is_admin": True}
"""

TESTS = """
import pytest
from sqlalchemy import func, select

from dbrewind.testing import DatabaseTestCase
from factories import UserFactory
from myapp.models import User


@pytest.mark.db
@pytest.mark.anyio
async def test_seed_and_assert(db: DatabaseTestCase):
    await db.seed([User(name="Alice", email="alice@example.com")])
    await db.assert_database_has("users", {"email": "alice@example.com"})
    await db.assert_database_count("users", 1)


@pytest.mark.anyio
async def test_factory_lines_on_an_async_session(async_db_session):
    session = async_db_session
    admin = UserFactory.state("admin").make()
    users = await UserFactory.create_many(5, session=session)
    assert admin.is_admin and admin.name == "Admin"
    assert [u.email for u in users] == [f"user{n}@test.invalid" for n in range(2, 7)]
    count = await session.scalar(select(func.count()).select_from(User))
    assert count == 5


@pytest.mark.anyio
async def test_factory_lines_on_the_sync_session(db_session):
    session = db_session
    users = await UserFactory.create_many(5, session=session)
    assert [u.email for u in users] == [f"user{n}@test.invalid" for n in range(1, 6)]


@pytest.mark.anyio
async def test_await_create_with_no_session_uses_the_tests_async_session(async_db_session):
    user = await UserFactory.create()
    assert user.email == "user1@test.invalid"
    assert user in async_db_session


@pytest.mark.db
@pytest.mark.parametrize("n", range(4))
def test_a_tests_first_user_is_user1_in_any_order(db_session, n):
    first = UserFactory.create(session=db_session)
    second = UserFactory.create()  # no session: the test's db_session
    assert (first.email, second.email) == ("user1@test.invalid", "user2@test.invalid")
    assert db_session.scalar(select(func.count()).select_from(User)) == 2


def test_a_test_that_asks_for_no_fixture_gets_its_db_session_on_demand():
    from dbrewind.testing import current_session

    user = UserFactory.create()
    assert user.email == "user1@test.invalid"
    session = current_session()
    assert user in session
    assert session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.anyio
async def test_db_assert_fixture_in_an_async_test(async_db_session, db_assert):
    await UserFactory.create_many(2)
    await db_assert.assert_database_count(User, 2)
    await db_assert.assert_database_has(User, {"email": "user2@test.invalid"})



def test_db_assert_sees_what_the_tests_db_session_has_not_flushed(db_session, db_assert):
    db_session.add(User(name="Zed", email="zed@test.invalid"))
    db_assert.assert_database_has(User, {"email": "zed@test.invalid"})
"""

MODULE_DATA = """
import pytest
from sqlalchemy import func, select

from factories import UserFactory
from myapp.models import User


@pytest.fixture(scope="module")
def team(module_db_session):
    return UserFactory.create_many(3, session=module_db_session)


@pytest.mark.parametrize("n", range(3))
def test_the_modules_users_stay_counted(team, db_session, n):
    assert [u.email for u in team] == [f"user{i}@test.invalid" for i in (1, 2, 3)]
    newcomer = UserFactory.create(session=db_session)
    assert newcomer.email == "user4@test.invalid"  # not a second user1
    assert db_session.scalar(select(func.count()).select_from(User)) == 4
"""

OUTSIDE = """
import pytest

from dbrewind.exceptions import ConfigurationError
from factories import UserFactory


@pytest.fixture(scope="module")
def too_wide():
    with pytest.raises(ConfigurationError) as info:
        UserFactory.create()
    return str(info.value)


def test_a_fixture_wider_than_a_test_is_told_what_to_pass(too_wide):
    assert "has no session" in too_wide
    assert "session=module_db_session" in too_wide
"""

PASSED = 15


def _write(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("myapp")
    pytester.path.joinpath("myapp", "models.py").write_text(MODELS)
    pytester.makepyfile(
        conftest=CONFTEST,
        factories=FACTORIES,
        test_seed_002=TESTS,
        test_module_data=MODULE_DATA,
        test_outside=OUTSIDE,
    )
    pytester.makeini(
        "[pytest]\ndbrewind_setup = myapp.models:setup\nasyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\nfilterwarnings =\n    error\n"
    )


def _users(url: URL) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM users")).scalar_one())
    finally:
        engine.dispose()


def _users_everywhere(backend: str, url: URL) -> dict[str, int]:
    """The users in each database derived from ``url`` (xdist's per-worker clones)."""
    where = Path(str(url.database)).parent if backend == "sqlite" else None
    stem = Path(str(url.database)).stem if backend == "sqlite" else str(url.database)
    found = {}
    for name in databases_named(backend, stem, where):
        target = (
            url.set(database=str(where / name)) if where is not None else url.set(database=name)
        )
        found[name] = _users(target)
    return found


def test_seed_002_runs_as_written_in_random_order_run_after_run(
    pytester: pytest.Pytester, backend: str, suite_url: URL
) -> None:
    _write(pytester)
    for seed in (1, 2, 3):  # three orders, on the same database
        result = pytester.runpytest_subprocess(
            *pytest_args(suite_url, "--strict-markers", seed=seed)
        )
        result.assert_outcomes(passed=PASSED)
        assert "shadows dbrewind's" not in result.stdout.str()
        assert _users(suite_url) == 0


def test_seed_002_under_xdist(pytester: pytest.Pytester, backend: str, suite_url: URL) -> None:
    _write(pytester)
    result = pytester.runpytest_subprocess(*pytest_args(suite_url, "-n", "2", seed=4))
    result.assert_outcomes(passed=PASSED)
    counts = _users_everywhere(backend, suite_url)
    assert len(counts) >= 2  # each worker's clone, and what they were cloned from
    assert set(counts.values()) == {0}, counts


def test_tests_selected_by_the_db_marker(pytester: pytest.Pytester, suite_url: URL) -> None:
    _write(pytester)
    result = pytester.runpytest_subprocess(*pytest_args(suite_url, "-m", "db", "--strict-markers"))
    result.assert_outcomes(passed=5, deselected=PASSED - 5)
