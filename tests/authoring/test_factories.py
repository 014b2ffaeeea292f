"""ModelFactory / FactoryBuilder on real databases, with sync and async sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dbrewind._url import parse_url
from dbrewind.exceptions import ConfigurationError
from dbrewind.factories import FactoryBuilder, ModelFactory
from dbrewind.testing import DatabaseTestCase


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    banned: Mapped[bool] = mapped_column(default=False)


class Post(Base):
    __tablename__ = "Post"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    author: Mapped[User] = relationship()


class Tag(Base):
    """Refers to a user through a bare foreign-key column (no relationship)."""

    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50))
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"))


class Shelf(Base):
    """Bidirectional: building a Volume appends it to ``Shelf.volumes``."""

    __tablename__ = "shelf"

    id: Mapped[int] = mapped_column(primary_key=True)
    volumes: Mapped[list[Volume]] = relationship(back_populates="shelf")


class Volume(Base):
    __tablename__ = "volume"

    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("shelf.id"))
    shelf: Mapped[Shelf] = relationship(back_populates="volumes")


class ShelfFactory(ModelFactory[Shelf]):
    __model__ = Shelf


class VolumeFactory(ModelFactory[Volume]):
    __model__ = Volume

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"shelf": ShelfFactory}


class UserFactory(ModelFactory[User]):
    __model__ = User

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {"name": f"User {seq}", "email": f"user{seq}@test.invalid"}

    @classmethod
    def state_admin(cls) -> dict[str, Any]:
        return {"name": "Admin", "is_admin": True}

    @classmethod
    def state_banned(cls) -> dict[str, Any]:
        return {"banned": True, "name": "Banned"}


class PostFactory(ModelFactory[Post]):
    __model__ = Post

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"title": f"Post {cls._next_seq()}", "author": UserFactory}


class AdminPostFactory(PostFactory):
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {**super().defaults(), "author": UserFactory.state("admin")}


class TagFactory(ModelFactory[Tag]):
    __model__ = Tag

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"label": "tag", "owner_id": UserFactory}


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s


@pytest_asyncio.fixture
async def async_session(db_url: URL) -> AsyncIterator[AsyncSession]:
    aengine = create_async_engine(parse_url(db_url).async_url())
    try:
        async with aengine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(aengine, expire_on_commit=False) as s:
            yield s
    finally:
        await aengine.dispose()


def count(session: Session, model: type[Base]) -> int:
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


# ------------------------------------------------------------ in-memory builds


def test_make_builds_from_defaults_with_a_per_factory_sequence() -> None:
    UserFactory.reset_sequence()
    PostFactory.reset_sequence(10)
    first, second = UserFactory.make(), UserFactory.make()
    assert (first.name, first.email) == ("User 1", "user1@test.invalid")
    assert second.email == "user2@test.invalid"
    assert first.id is None  # nothing was saved
    post = PostFactory.make()
    assert post.title == "Post 11"  # its own counter, not UserFactory's
    assert post.author.email == "user3@test.invalid"


def test_subclassed_factory_has_its_own_counter() -> None:
    PostFactory.reset_sequence()
    AdminPostFactory.reset_sequence(100)
    assert AdminPostFactory.make().title == "Post 101"
    assert PostFactory.make().title == "Post 1"


def test_overrides_beat_states_which_beat_defaults_and_states_apply_in_order() -> None:
    admin = UserFactory.state("admin").make()
    assert (admin.name, admin.is_admin) == ("Admin", True)
    both = UserFactory.state("admin").state("banned").make()
    assert (both.name, both.is_admin, both.banned) == ("Banned", True, True)
    reversed_order = UserFactory.state("banned", "admin").make()
    assert reversed_order.name == "Admin"
    named = UserFactory.state("admin").make(name="Root")
    assert (named.name, named.is_admin) == ("Root", True)


def test_a_builder_is_immutable_and_reusable() -> None:
    admins = UserFactory.state("admin")
    banned_admins = admins.state("banned")
    assert isinstance(admins, FactoryBuilder)
    assert admins.states == ("admin",)
    assert banned_admins.states == ("admin", "banned")
    assert repr(banned_admins) == "UserFactory.state('admin').state('banned')"


def test_unknown_state_lists_the_available_ones() -> None:
    expected = r"no state 'admn'\. Available states: admin, banned\. Define it as"
    with pytest.raises(ConfigurationError, match=expected):
        UserFactory.state("admn")
    with pytest.raises(ConfigurationError, match="Available states: none defined"):
        TagFactory.state("x")


def test_make_batch_builds_distinct_models() -> None:
    users = UserFactory.make_batch(3, is_admin=True)
    assert len({u.email for u in users}) == 3
    assert all(u.is_admin for u in users)
    assert UserFactory.make_batch(0) == []
    with pytest.raises(ConfigurationError, match="int >= 0"):
        UserFactory.make_batch(-1)


def test_make_refuses_a_related_factory_on_a_bare_column() -> None:
    with pytest.raises(ConfigurationError, match=r"'owner_id' is a column.*create"):
        TagFactory.make()


def test_misconfigured_factories_explain_the_fix() -> None:
    class NoModel(ModelFactory[User]):
        pass

    with pytest.raises(ConfigurationError, match="NoModel has no __model__"):
        NoModel.make()
    with pytest.raises(ConfigurationError, match=r"could not build User.*'nickname'"):
        UserFactory.make(nickname="x")


# ------------------------------------------------------------------ sync saves


def test_create_saves_related_models_first_and_assigns_them(session: Session) -> None:
    post = PostFactory.create(session=session, title="Hello")
    assert post.id is not None
    assert post.author.id is not None
    assert post.author_id == post.author.id
    db = DatabaseTestCase(session)
    db.assert_database_has("Post", {"title": "Hello", "author_id": post.author.id})
    db.assert_model_exists(post.author)


def test_create_many_gives_each_model_its_own_related_model(session: Session) -> None:
    posts = PostFactory.create_many(3, session=session)
    assert count(session, Post) == 3
    assert count(session, User) == 3
    assert len({p.author_id for p in posts}) == 3


def test_create_many_with_a_back_populated_relationship_saves_every_model(
    session: Session,
) -> None:
    volumes = VolumeFactory.create_many(3, session=session)
    assert count(session, Volume) == 3
    assert count(session, Shelf) == 3
    assert all(v.shelf.volumes == [v] for v in volumes)


def test_an_existing_instance_overrides_the_related_factory(session: Session) -> None:
    author = UserFactory.create(session=session)
    PostFactory.create_many(2, session=session, author=author)
    assert count(session, User) == 1
    DatabaseTestCase(session).assert_database_count(Post, 2, where={"author_id": author.id})


def test_a_related_builder_keeps_its_states(session: Session) -> None:
    post = AdminPostFactory.create(session=session)
    assert post.author.is_admin
    DatabaseTestCase(session).assert_database_has(User, {"id": post.author_id, "is_admin": True})


def test_a_related_factory_on_a_column_assigns_the_primary_key(session: Session) -> None:
    tag = TagFactory.create(session=session)
    owner = session.get(User, tag.owner_id)
    assert owner is not None
    assert owner.email.endswith("@test.invalid")


def test_an_override_may_itself_be_a_factory(session: Session) -> None:
    post = PostFactory.create(session=session, author=UserFactory.state("banned"))
    assert post.author.banned


def test_sync_methods_refuse_an_async_session_and_name_the_async_twin(
    async_session: AsyncSession,
) -> None:
    with pytest.raises(ConfigurationError, match=r"Use `await UserFactory\.acreate\(session="):
        UserFactory.create(session=async_session)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"acreate_many\(session=\.\.\.\)"):
        UserFactory.state("admin").create_many(2, session=async_session)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_async_methods_refuse_a_sync_session(session: Session) -> None:
    with pytest.raises(ConfigurationError, match=r"Use `UserFactory\.create\(session=\.\.\.\)`"):
        await UserFactory.acreate(session=session)  # type: ignore[arg-type]


# ----------------------------------------------------------------- async saves


@pytest.mark.asyncio
async def test_acreate_saves_through_an_async_session(async_session: AsyncSession) -> None:
    post = await PostFactory.acreate(session=async_session, title="Async")
    assert post.id is not None
    assert post.author_id == post.author.id
    db = DatabaseTestCase(async_session)
    await db.assert_database_has("Post", {"title": "Async"})
    await db.assert_model_exists(post.author)


@pytest.mark.asyncio
async def test_acreate_many_with_state_through_an_async_session(
    async_session: AsyncSession,
) -> None:
    users = await UserFactory.state("admin").acreate_many(4, session=async_session)
    assert all(u.id is not None for u in users)
    db = DatabaseTestCase(async_session)
    await db.assert_database_count(User, 4, where={"is_admin": True})
    tags = await TagFactory.acreate_many(2, session=async_session)
    await db.assert_database_count(User, 6)
    assert len({t.owner_id for t in tags}) == 2
