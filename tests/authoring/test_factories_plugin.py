"""Factories given no session under the pytest plugin: they use the running test's.

An inner suite (``pytester``) on every backend, run in random order twice on the
same database: ``create``/``create_many`` with ``for_``, ``has`` and hooks and no
``session=`` write through the test's ``db_session`` (set up on demand when the test
did not ask for it) or, in an async test that asked for it, its ``async_db_session``
(then they return awaitables); counters restart with every test; a test with no
session to offer is told what to ask for. The database is at its baseline after.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from helpers.runs import pytest_args

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    posts: Mapped[list["Post"]] = relationship(back_populates="author")


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    author: Mapped[User] = relationship(back_populates="posts")


def setup(conn):
    Base.metadata.create_all(conn)
"""

FACTORIES = """
from typing import Any

from dbrewind.factories import ModelFactory, lazy
from myapp.models import Post, User


class UserFactory(ModelFactory[User]):
    __model__ = User

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {"name": f"User {seq}", "email": lazy(lambda a: f"user{seq}@test.invalid")}

    @classmethod
    def state_admin(cls) -> dict[str, Any]:
        return {"name": "Admin", "is_admin": True}


class PostFactory(ModelFactory[Post]):
    __model__ = Post

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"title": f"Post {cls._next_seq()}", "author": UserFactory}
"""

TESTS = """
import inspect

import pytest
from sqlalchemy import func, select

from dbrewind.exceptions import ConfigurationError
from factories import PostFactory, UserFactory
from myapp.models import Post, User


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("n", range(3))
def test_sync_test_writes_through_its_db_session(db_session, n):
    admin = UserFactory.state("admin").create()
    assert admin in db_session and admin.email == "user1@test.invalid"
    posts = PostFactory.for_(admin).create_many(3)
    writer = UserFactory.has(PostFactory, 2).create()
    assert [p.author for p in posts] == [admin] * 3
    assert len(writer.posts) == 2
    assert (count(db_session, User), count(db_session, Post)) == (2, 5)


def test_a_test_that_asked_for_no_session_gets_db_session_on_demand(db_assert):
    users = UserFactory.create_many(3)
    assert [u.email for u in users] == [f"user{i}@test.invalid" for i in (1, 2, 3)]
    db_assert.assert_database_count(User, 3)


def test_hooks_get_the_tests_session(db_session):
    seen = []
    UserFactory.after_creating(lambda user, session: seen.append(session)).create_many(2)
    assert seen == [db_session, db_session]


@pytest.mark.asyncio
async def test_async_test_writes_through_its_async_db_session(async_db_session):
    pending = UserFactory.create()
    assert inspect.isawaitable(pending)
    user = await pending
    assert user in async_db_session and user.email == "user1@test.invalid"
    writers = await UserFactory.has(PostFactory, 2).create_many(2)
    assert [len(w.posts) for w in writers] == [2, 2]
    total = await async_db_session.scalar(select(func.count()).select_from(Post))
    assert total == 4


@pytest.mark.asyncio
async def test_async_test_with_db_session_awaits_the_list(db_session):
    users = await UserFactory.create_many(2)
    assert [u.id is not None for u in users] == [True, True]
    assert count(db_session, User) == 2


@pytest.mark.asyncio
async def test_async_test_without_a_session_is_told_what_to_ask_for():
    with pytest.raises(ConfigurationError) as info:
        await UserFactory.create()
    message = str(info.value)
    assert message.startswith("UserFactory.create() has no session: ")
    assert "Ask for async_db_session (or db_session)" in message
"""

PASSED = 8


def _users(url: URL) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM users")).scalar_one())
    finally:
        engine.dispose()


def test_factories_without_a_session_use_the_running_tests(
    pytester: pytest.Pytester, backend: str, suite_url: URL
) -> None:
    pytester.mkpydir("myapp")
    pytester.path.joinpath("myapp", "models.py").write_text(MODELS)
    pytester.makepyfile(factories=FACTORIES, test_inner=TESTS)
    pytester.makeini(
        "[pytest]\ndbrewind_setup = myapp.models:setup\nasyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\nfilterwarnings =\n    error\n"
    )
    for seed in (1, 2):  # two orders, on the same database
        result = pytester.runpytest_subprocess(*pytest_args(suite_url, seed=seed))
        result.assert_outcomes(passed=PASSED)
        assert _users(suite_url) == 0
