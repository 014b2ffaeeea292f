"""ModelFactory / FactoryBuilder on SQLAlchemy models: in memory, and saved on real
databases through sync and async sessions.

The tests that save take ``saver``: a ``Session`` or an ``AsyncSession`` on a fresh
database of each backend (6 runs per test), with the statements the engine sent.
They are async and await what the factories return: with a sync session
``create_many`` returns a list that is awaitable too, and ``create`` the model
(``done()`` awaits only what is awaitable).
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Column, ForeignKey, String, Table, create_engine, event, func, select
from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    orm_insert_sentinel,
    relationship,
    scoped_session,
    sessionmaker,
)
from sqlalchemy.sql.compiler import InsertmanyvaluesSentinelOpts

from dbrewind import _test_context
from dbrewind._url import parse_url
from dbrewind.exceptions import ConfigurationError
from dbrewind.factories import CreatedList, FactoryBuilder, Lazy, ModelFactory, lazy


class Base(DeclarativeBase):
    pass


membership = Table(
    "membership",
    Base.metadata,
    Column("group_id", ForeignKey("group.id"), primary_key=True),
    Column("user_id", ForeignKey("user.id"), primary_key=True),
)


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    banned: Mapped[bool] = mapped_column(default=False)


class Post(Base):
    """Refers to its author through a relationship with no way back."""

    __tablename__ = "Post"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(120), default="")
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


class Group(Base):
    """Many-to-many: its members are linked only from this side."""

    __tablename__ = "group"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    members: Mapped[list[User]] = relationship(secondary=membership)


class Message(Base):
    """Two relations to the same model."""

    __tablename__ = "message"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(50), default="hi")
    sender_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    sender: Mapped[User] = relationship(foreign_keys=[sender_id])
    recipient: Mapped[User] = relationship(foreign_keys=[recipient_id])


class Note(Base):
    """With a client-side sentinel column: SQLite's RETURNING batches can be matched."""

    __tablename__ = "note"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(50), default="note")
    _sentinel: Mapped[int] = orm_insert_sentinel()


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


class AdminFactory(UserFactory):
    """The same model: it counts with UserFactory."""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {**super().defaults(), "is_admin": True}


class PostFactory(ModelFactory[Post]):
    __model__ = Post

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {
            "title": f"Post {cls._next_seq()}",
            "slug": lazy(lambda a: a.title.lower().replace(" ", "-")),
            "author": UserFactory,
        }


class AdminPostFactory(PostFactory):
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {**super().defaults(), "author": UserFactory.state("admin")}


class PostByColumnFactory(ModelFactory[Post]):
    """Its author by the foreign-key column, not the relationship."""

    __model__ = Post

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"title": "By column", "author_id": UserFactory}


class TagFactory(ModelFactory[Tag]):
    __model__ = Tag

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"label": "tag", "owner_id": UserFactory}


class GroupFactory(ModelFactory[Group]):
    __model__ = Group

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"title": f"Group {cls._next_seq()}"}


class MessageFactory(ModelFactory[Message]):
    __model__ = Message

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"sender": UserFactory, "recipient": UserFactory}


@pytest.fixture(autouse=True)
def fresh_counters() -> None:
    for factory in (UserFactory, PostFactory, GroupFactory):
        factory.reset_sequence()


# ------------------------------------------------------------------ fixtures
@dataclass
class Saver:
    """A session of either kind on a fresh database, and the INSERTs sent through it."""

    session: Session | AsyncSession
    dialect: Dialect
    statements: list[str] = field(default_factory=list)

    @property
    def batches(self) -> bool:
        """Whether the ORM sends many rows in one INSERT .. RETURNING: it must match the
        rows it gets back to its objects, by a sentinel (PostgreSQL, MariaDB: the
        autoincrementing key). SQLite has RETURNING but no such sentinel: one INSERT a
        row (in-process, no round trip); MySQL has no RETURNING: one INSERT a row too."""
        d = self.dialect
        return bool(
            d.insert_executemany_returning_sort_by_parameter_order
            and d.insertmanyvalues_implicit_sentinel & InsertmanyvaluesSentinelOpts.AUTOINCREMENT
        )

    @property
    def inserts(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith("INSERT")]

    async def count(self, model: type[Base]) -> int:
        return int(await done(self.session.scalar(select(func.count()).select_from(model))))

    async def rows(self, model: type[Base], *columns: str) -> list[tuple[Any, ...]]:
        table = model.__table__
        query = select(*(table.c[c] for c in columns)).order_by(*(table.c[c] for c in columns))
        result = await done(self.session.execute(query))
        return [tuple(r) for r in result.all()]


async def done(value: Any) -> Any:
    """``value``, awaited when it is awaitable."""
    return await value if inspect.isawaitable(value) else value


def dropped(value: object) -> None:
    """Let go of ``value`` (an awaitable never awaited) now."""
    del value
    gc.collect()


def _listen(engine: Engine, into: list[str]) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        into.append(statement)


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


@pytest_asyncio.fixture(params=["sync", "async"])
async def saver(request: pytest.FixtureRequest, db_url: URL) -> AsyncIterator[Saver]:
    """A ``Session`` (sync) or ``AsyncSession`` (async) on a fresh database."""
    if request.param == "sync":
        engine = create_engine(db_url)
        Base.metadata.create_all(engine)
        try:
            with Session(engine) as s:
                found = Saver(s, engine.dialect)
                _listen(engine, found.statements)
                yield found
        finally:
            engine.dispose()
        return
    aengine = create_async_engine(parse_url(db_url).async_url())
    try:
        async with aengine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(aengine, expire_on_commit=False) as a:
            found = Saver(a, aengine.dialect)
            _listen(aengine.sync_engine, found.statements)
            yield found
    finally:
        await aengine.dispose()


# ------------------------------------------------------------ in-memory builds


def test_make_builds_from_defaults_with_a_per_factory_sequence() -> None:
    PostFactory.reset_sequence(10)
    first, second = UserFactory.make(), UserFactory.make()
    assert (first.name, first.email) == ("User 1", "user1@test.invalid")
    assert second.email == "user2@test.invalid"
    assert first.id is None  # nothing was saved
    post = PostFactory.make()
    assert post.title == "Post 11"  # its own counter, not UserFactory's
    assert post.author.email == "user3@test.invalid"


def test_the_counters_are_the_test_contexts_so_the_plugin_can_restart_them() -> None:
    UserFactory.make()
    assert _test_context.snapshot_counters()[UserFactory] == 1
    _test_context.reset_value(UserFactory, 41)
    assert UserFactory.make().email == "user42@test.invalid"


def test_a_subclass_of_the_same_model_counts_with_its_parent() -> None:
    user, admin = UserFactory.make(), AdminFactory.make()
    assert (user.email, admin.email) == ("user1@test.invalid", "user2@test.invalid")
    AdminPostFactory.reset_sequence(100)  # the counter it shares with PostFactory
    assert PostFactory.make().title == "Post 101"
    assert AdminPostFactory.make().title == "Post 102"
    AdminFactory.reset_sequence()
    assert UserFactory.make().email == "user1@test.invalid"
    assert _test_context.snapshot_counters().get(AdminFactory) is None  # one counter, not two


@pytest.mark.asyncio
async def test_a_subclass_and_its_parent_make_distinct_rows_in_one_test(saver: Saver) -> None:
    user = await done(UserFactory.create(session=saver.session))
    admins = await AdminFactory.create_many(2, session=saver.session)  # email is unique
    assert [u.email for u in (user, *admins)] == [
        "user1@test.invalid",
        "user2@test.invalid",
        "user3@test.invalid",
    ]
    assert await saver.count(User) == 3


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
    with_posts = banned_admins.has(PostFactory, 2)
    hooked = with_posts.after_creating(lambda user, session: None)
    assert isinstance(admins, FactoryBuilder)
    assert admins.states == ("admin",)
    assert banned_admins.states == ("admin", "banned")
    assert (banned_admins.children, len(with_posts.children)) == ((), 1)
    assert (with_posts.hooks, len(hooked.hooks)) == ((), 1)
    assert repr(banned_admins) == "UserFactory.state('admin').state('banned')"
    assert repr(with_posts) == "UserFactory.state('admin').state('banned').has(PostFactory, 2)"
    with pytest.raises(AttributeError):
        admins.states = ()  # type: ignore[misc]


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


@pytest.mark.parametrize("bad", [-1, 2.5, "3", True])
def test_a_bad_n_is_refused_naming_the_call(bad: Any) -> None:
    expected = rf"UserFactory\.make_batch\(n\): n must be an int >= 0, got {bad!r}\."
    with pytest.raises(ConfigurationError, match=expected):
        UserFactory.make_batch(bad)
    with pytest.raises(ConfigurationError, match=r"UserFactory\.create_many\(n\): n must be"):
        UserFactory.create_many(bad, session=Session())
    with pytest.raises(
        ConfigurationError,
        match=r"UserFactory\.has\(PostFactory, count\): count must be an int >= 0",
    ):
        UserFactory.has(PostFactory, bad)


def test_make_refuses_a_related_factory_on_a_bare_column() -> None:
    with pytest.raises(ConfigurationError, match=r"'owner_id' is a column.*create"):
        TagFactory.make()


def test_misconfigured_factories_explain_the_fix() -> None:
    class NoModel(ModelFactory[User]):
        pass

    with pytest.raises(ConfigurationError, match=r"NoModel has no __model__\. Set it to the"):
        NoModel.make()


def test_an_unknown_attribute_names_where_it_was_set_and_the_models_attributes() -> None:
    class Typo(UserFactory):
        @classmethod
        def defaults(cls) -> dict[str, Any]:
            return {**super().defaults(), "emial": "x"}

    class Vip(UserFactory):
        @classmethod
        def state_vip(cls) -> dict[str, Any]:
            return {"vip": True}

    listing = "Its attributes: banned, email, id, is_admin, name."
    with pytest.raises(ConfigurationError) as info:
        UserFactory.make(nickname="x")
    assert str(info.value) == (
        "UserFactory: User has no attribute 'nickname' (set by the overrides). "
        f"{listing} Rename or remove it."
    )
    with pytest.raises(ConfigurationError, match=r"'emial' \(set by Typo\.defaults\(\)\)"):
        Typo.make()
    with pytest.raises(ConfigurationError, match=r"'vip' \(set by state_vip\(\)\)"):
        Vip.state("vip").make()


def test_a_lazy_value_is_computed_from_the_resolved_attributes_after_overrides() -> None:
    post = PostFactory.make(title="Hello World")
    assert post.slug == "hello-world"
    assert PostFactory.make(slug="given").slug == "given"


def test_lazy_values_read_each_other_in_the_order_they_need() -> None:
    class Chained(UserFactory):
        @classmethod
        def defaults(cls) -> dict[str, Any]:
            return {
                "email": lazy(lambda a: f"{a['name'].lower()}@test.invalid"),  # reads a lazy
                "name": Lazy(lambda a: "Root" if a.is_admin else "Guest"),
                "is_admin": False,
            }

    assert (Chained.make().name, Chained.make().email) == ("Guest", "guest@test.invalid")
    admin = Chained.make(is_admin=True)
    assert (admin.name, admin.email) == ("Root", "root@test.invalid")
    given = Chained.make(name=lazy(lambda a: "Grace"))
    assert given.email == "grace@test.invalid"


def test_a_lazy_value_reading_an_unset_attribute_names_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        UserFactory.make(name=lazy(lambda a: "Banned" if a.banned else "Fine"))
    assert str(info.value) == (
        "UserFactory: the lazy value of 'name' reads 'banned', which is not set. "
        "Set: email, name. Give 'banned' a value in defaults(), a state or the overrides."
    )


def test_a_lazy_value_sees_related_models_as_instances() -> None:
    post = PostFactory.make(title=lazy(lambda a: f"By {a.author.name}"))
    assert post.title == f"By {post.author.name}"


def test_lazy_values_in_a_cycle_are_an_error_naming_the_cycle() -> None:
    with pytest.raises(ConfigurationError) as info:
        UserFactory.make(name=lazy(lambda a: a.email), email=lazy(lambda a: a.name))
    assert str(info.value) == (
        "UserFactory: lazy values read each other in a cycle: name -> email -> name. "
        "Give one of them a plain value."
    )


def test_make_with_for_and_has_links_in_memory() -> None:
    author = UserFactory.make()
    post = PostFactory.for_(author).make()
    assert post.author is author
    shelf = ShelfFactory.has(VolumeFactory, 2).make()
    assert len(shelf.volumes) == 2
    assert all(v.shelf is shelf and v.id is None for v in shelf.volumes)
    group = GroupFactory.has(UserFactory.state("admin"), 2).make()
    assert [u.is_admin for u in group.members] == [True, True]


def test_make_with_has_through_a_bare_column_says_to_create() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"^UserFactory\.has\(TagFactory, 1\): 'owner_id' is a column.*create",
    ):
        UserFactory.has(TagFactory).make()


def test_for_and_has_refuse_what_is_not_a_model_or_a_factory() -> None:
    with pytest.raises(ConfigurationError) as info:
        PostFactory.for_(User)
    assert str(info.value) == (
        "PostFactory.for_(User): pass a model instance, a factory or a builder, not the "
        "model class (e.g. for_(UserFactory))."
    )
    with pytest.raises(ConfigurationError, match=r"UserFactory\.has\(<class '.*Post'>\): pass"):
        UserFactory.has(Post)


def test_relations_that_cannot_be_linked_say_why() -> None:
    with pytest.raises(ConfigurationError) as info:
        ShelfFactory.for_(UserFactory.make()).make()
    assert str(info.value) == (
        "ShelfFactory.for_(<User object>): Shelf has no relationship or foreign key to User, "
        "so the two cannot be linked. Add one (a ForeignKey column or a relationship), or "
        "set the attribute yourself in the overrides."
    )
    with pytest.raises(ConfigurationError) as info:
        MessageFactory.for_(UserFactory).make()
    assert str(info.value) == (
        "MessageFactory.for_(UserFactory): Message and User are linked by several relations "
        "(sender, recipient). Name the one to use: relation='...'."
    )
    with pytest.raises(ConfigurationError) as info:
        MessageFactory.for_(UserFactory, relation="author").make()
    assert str(info.value) == (
        "MessageFactory.for_(UserFactory): no relation 'author' links Message and User. "
        "The relations between them: sender, recipient, sender_id, recipient_id."
    )
    message = MessageFactory.for_(UserFactory, relation="recipient").make()
    assert message.recipient is not message.sender


# ------------------------------------------------------------------ saving


@pytest.mark.asyncio
async def test_create_saves_related_models_first_and_assigns_them(saver: Saver) -> None:
    post = await done(PostFactory.create(session=saver.session, title="Hello"))
    assert isinstance(post, Post)
    assert post.id is not None
    assert post.author.id is not None
    assert post.author_id == post.author.id
    assert await saver.rows(Post, "title", "slug") == [("Hello", "hello")]
    assert await saver.count(User) == 1


def test_create_with_a_sync_session_returns_the_model_and_create_many_an_awaitable_list(
    session: Session,
) -> None:
    user = UserFactory.create(session=session)
    assert isinstance(user, User)
    assert user.id is not None
    users = UserFactory.create_many(2, session=session)
    assert type(users) is CreatedList
    assert isinstance(users, list)
    assert [u.email for u in users] == ["user2@test.invalid", "user3@test.invalid"]


def test_a_scoped_session_stands_for_its_session(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    scoped = scoped_session(sessionmaker(engine))
    try:
        user = UserFactory.create(session=scoped)
        assert user in scoped()
        assert user.id is not None
    finally:
        scoped.remove()


@pytest.mark.asyncio
async def test_awaiting_create_many_of_a_sync_session_gives_the_list(session: Session) -> None:
    users = await UserFactory.create_many(5, session=session)
    assert [u.email for u in users] == [f"user{n}@test.invalid" for n in range(1, 6)]
    assert all(u.id is not None for u in users)


@pytest.mark.asyncio
async def test_create_and_create_many_with_an_async_session_return_awaitables(
    async_session: AsyncSession,
) -> None:
    pending = UserFactory.create(session=async_session)
    assert inspect.isawaitable(pending)
    user = await pending
    users = await UserFactory.state("admin").create_many(5, session=async_session)
    assert user.email == "user1@test.invalid"
    assert [u.email for u in users] == [f"user{n}@test.invalid" for n in range(2, 7)]
    assert all(u.is_admin and u.id is not None for u in users)
    also = await UserFactory.acreate_many(2, session=async_session)
    assert len(also) == 2


@pytest.mark.asyncio
async def test_an_awaitable_left_unawaited_is_named_after_the_call(
    async_session: AsyncSession,
) -> None:
    with pytest.warns(RuntimeWarning, match=r"coroutine 'UserFactory.create' was never awaited"):
        dropped(UserFactory.create(session=async_session))
    with pytest.warns(RuntimeWarning, match=r"'UserFactory.state\('admin'\).create_many' was"):
        dropped(UserFactory.state("admin").create_many(2, session=async_session))
    assert await async_session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.asyncio
async def test_create_many_gives_each_model_its_own_related_model(saver: Saver) -> None:
    posts = await PostFactory.create_many(3, session=saver.session)
    assert await saver.count(Post) == 3
    assert await saver.count(User) == 3
    assert len({p.author_id for p in posts}) == 3
    assert [p.slug for p in posts] == ["post-1", "post-2", "post-3"]


@pytest.mark.asyncio
async def test_create_many_sends_one_insert_per_table_where_the_database_batches(
    saver: Saver,
) -> None:
    await PostFactory.create_many(50, session=saver.session)
    await TagFactory.create_many(20, session=saver.session)  # a column: users saved first
    assert await saver.count(Post) == 50
    assert await saver.count(User) == 70
    if saver.batches:  # INSERT .. RETURNING of many rows: PostgreSQL, MariaDB
        assert len(saver.inserts) == 4, saver.inserts
    else:  # SQLite, MySQL: one INSERT a row
        assert len(saver.inserts) == 140


@pytest.mark.asyncio
async def test_a_sentinel_column_lets_sqlite_batch_too(saver: Saver) -> None:
    class NoteFactory(ModelFactory[Note]):
        __model__ = Note

    notes = await NoteFactory.create_many(40, session=saver.session)
    assert [n.id for n in notes] == [r[0] for r in await saver.rows(Note, "id")]
    if saver.dialect.insert_executemany_returning_sort_by_parameter_order:  # RETURNING
        assert len(saver.inserts) == 1, saver.inserts
    else:  # MySQL
        assert len(saver.inserts) == 40


@pytest.mark.asyncio
async def test_create_many_with_a_back_populated_relationship_saves_every_model(
    saver: Saver,
) -> None:
    volumes = await VolumeFactory.create_many(3, session=saver.session)
    assert await saver.count(Volume) == 3
    assert await saver.count(Shelf) == 3
    assert all(v.shelf.volumes == [v] for v in volumes)


@pytest.mark.asyncio
async def test_an_existing_instance_overrides_the_related_factory(saver: Saver) -> None:
    author = await done(UserFactory.create(session=saver.session))
    await PostFactory.create_many(2, session=saver.session, author=author)
    assert await saver.count(User) == 1
    assert await saver.rows(Post, "author_id") == [(author.id,), (author.id,)]


@pytest.mark.asyncio
async def test_a_related_builder_keeps_its_states(saver: Saver) -> None:
    post = await done(AdminPostFactory.create(session=saver.session))
    assert post.author.is_admin
    post = await done(PostFactory.create(session=saver.session, author=UserFactory.state("banned")))
    assert post.author.banned


@pytest.mark.asyncio
async def test_a_related_factory_on_a_column_assigns_the_primary_key(saver: Saver) -> None:
    tag = await done(TagFactory.create(session=saver.session))
    owner = await done(saver.session.get(User, tag.owner_id))
    assert owner is not None
    assert owner.email == "user1@test.invalid"


# -------------------------------------------------------------------- for_()


@pytest.mark.asyncio
async def test_for_an_instance_links_every_model_to_it(saver: Saver) -> None:
    author = await done(UserFactory.create(session=saver.session))
    saver.statements.clear()
    posts = await PostFactory.for_(author).create_many(3, session=saver.session)
    assert all(p.author is author for p in posts)
    assert await saver.count(User) == 1  # the default author factory was not used
    assert await saver.rows(Post, "author_id") == [(author.id,)] * 3
    tags = await TagFactory.for_(author).create_many(2, session=saver.session)
    assert [t.owner_id for t in tags] == [author.id, author.id]


@pytest.mark.asyncio
async def test_for_a_factory_makes_one_parent_per_call_shared_by_its_models(
    saver: Saver,
) -> None:
    posts = await PostFactory.for_(UserFactory.state("admin")).create_many(3, session=saver.session)
    assert len({id(p.author) for p in posts}) == 1
    assert posts[0].author.is_admin
    tags = await TagFactory.for_(UserFactory).create_many(2, session=saver.session)
    assert await saver.count(User) == 2
    assert tags[0].owner_id == tags[1].owner_id != posts[0].author_id
    # a per-call override still wins over the parent (which is then not made at all)
    other = await done(UserFactory.create(session=saver.session))
    post = await done(PostFactory.for_(UserFactory).create(session=saver.session, author=other))
    assert post.author is other
    assert await saver.count(User) == 3


@pytest.mark.asyncio
async def test_an_override_by_the_foreign_key_column_wins_over_for(saver: Saver) -> None:
    admin = await done(UserFactory.state("admin").create(session=saver.session))
    bob = await done(UserFactory.create(session=saver.session, name="Bob"))
    await done(PostFactory.for_(admin).create(session=saver.session, author_id=bob.id))
    await done(PostFactory.for_(UserFactory).create(session=saver.session, author_id=bob.id))
    assert await saver.rows(Post, "author_id") == [(bob.id,), (bob.id,)]
    tag = await done(TagFactory.for_(admin).create(session=saver.session, owner_id=bob.id))
    assert tag.owner_id == bob.id
    assert await saver.count(User) == 2  # no parent, no default author made for nothing


@pytest.mark.asyncio
async def test_for_replaces_a_default_set_by_the_foreign_key_column(saver: Saver) -> None:
    admin = await done(UserFactory.state("admin").create(session=saver.session))
    posts = await PostByColumnFactory.for_(admin).create_many(2, session=saver.session)
    assert await saver.rows(Post, "author_id") == [(admin.id,), (admin.id,)]
    assert await saver.count(User) == 1  # the default's UserFactory was not used
    assert all(p.author is admin for p in posts)


@pytest.mark.asyncio
async def test_for_names_the_relation_when_there_are_several(saver: Saver) -> None:
    boss = await done(UserFactory.create(session=saver.session, name="Boss"))
    messages = await MessageFactory.for_(boss, relation="recipient").create_many(
        2, session=saver.session
    )
    assert [m.recipient_id for m in messages] == [boss.id, boss.id]
    assert len({m.sender_id for m in messages}) == 2
    by_column = await done(
        MessageFactory.for_(boss, relation="sender_id").create(session=saver.session)
    )
    assert by_column.sender_id == boss.id


@pytest.mark.asyncio
async def test_for_an_unsaved_instance_on_a_column_says_to_save_it_first(saver: Saver) -> None:
    with pytest.raises(ConfigurationError) as info:
        await done(TagFactory.for_(UserFactory.make()).create(session=saver.session))
    assert str(info.value) == (
        "TagFactory.for_(<User object>): cannot link <User object> through 'owner_id': "
        "it has no primary key yet (it is not saved). Save it first "
        "(create()), or link it through a relationship attribute."
    )


# --------------------------------------------------------------------- has()


@pytest.mark.asyncio
async def test_has_creates_the_children_with_each_model_in_one_batch(saver: Saver) -> None:
    users = await UserFactory.has(PostFactory, 3).create_many(4, session=saver.session)
    assert await saver.count(User) == 4  # the posts' own author factory was not used
    assert await saver.count(Post) == 12
    rows = await saver.rows(Post, "author_id")
    assert sorted(r[0] for r in rows) == sorted(u.id for u in users for _ in range(3))
    assert len(saver.inserts) == (2 if saver.batches else 16), saver.inserts


@pytest.mark.asyncio
async def test_has_through_a_bare_column_saves_the_parents_first(saver: Saver) -> None:
    users = await UserFactory.has(TagFactory, 2).create_many(3, session=saver.session)
    rows = await saver.rows(Tag, "owner_id")
    assert [r[0] for r in rows] == sorted(u.id for u in users for _ in range(2))
    assert await saver.count(User) == 3
    assert len(saver.inserts) == (2 if saver.batches else 9), saver.inserts


@pytest.mark.asyncio
async def test_has_through_the_parents_collection_and_a_many_to_many(saver: Saver) -> None:
    shelves = await ShelfFactory.has(VolumeFactory, 2).create_many(2, session=saver.session)
    assert [len(s.volumes) for s in shelves] == [2, 2]
    assert await saver.count(Shelf) == 2
    group = await done(
        GroupFactory.has(UserFactory.state("admin"), 3).create(session=saver.session)
    )
    assert [u.is_admin for u in group.members] == [True, True, True]
    assert await saver.count(User) == 3
    pairs = await done(saver.session.execute(select(func.count()).select_from(membership)))
    assert pairs.scalar_one() == 3


@pytest.mark.asyncio
async def test_has_nests_and_chains(saver: Saver) -> None:
    user = await done(
        UserFactory.has(PostFactory, 2)
        .has(TagFactory, 1)
        .create(session=saver.session, name="Writer")
    )
    assert await saver.rows(Post, "author_id") == [(user.id,), (user.id,)]
    assert await saver.rows(Tag, "owner_id") == [(user.id,)]
    groups = await GroupFactory.has(UserFactory.has(TagFactory, 2), 2).create_many(
        2, session=saver.session
    )
    assert [len(g.members) for g in groups] == [2, 2]
    assert await saver.count(Tag) == 1 + 8


@pytest.mark.asyncio
async def test_has_with_several_relations_needs_the_name(saver: Saver) -> None:
    with pytest.raises(ConfigurationError) as info:
        await done(UserFactory.has(MessageFactory).create(session=saver.session))
    assert str(info.value) == (
        "UserFactory.has(MessageFactory, 1): Message and User are linked by several relations "
        "(sender, recipient). Name the one to use: relation='...'."
    )
    user = await done(
        UserFactory.has(MessageFactory, 2, relation="sender").create(session=saver.session)
    )
    assert await saver.rows(Message, "sender_id") == [(user.id,), (user.id,)]


# -------------------------------------------------------------------- hooks


class HookedUserFactory(UserFactory):
    seen: list[tuple[str, Any, Any]] = []  # noqa: RUF012

    @classmethod
    def after_create(cls, instance: User, session: Any) -> None:
        cls.seen.append(("after_create", instance.id, session))


@pytest.mark.asyncio
async def test_after_create_hooks_see_saved_models_and_the_session_in_order(
    saver: Saver,
) -> None:
    HookedUserFactory.seen = []
    calls: list[tuple[str, Any]] = []

    def sync_hook(user: User, session: Any) -> None:
        calls.append(("sync", user.id))

    users = await HookedUserFactory.after_creating(sync_hook).create_many(3, session=saver.session)
    ids = [u.id for u in users]
    assert None not in ids
    assert HookedUserFactory.seen == [("after_create", i, saver.session) for i in ids]
    assert calls == [("sync", i) for i in ids]
    # related models run their own factory's hooks, parents first
    HookedUserFactory.seen = []
    order: list[str] = []
    post = await done(
        PostFactory.after_creating(lambda p, s: order.append(f"post {p.author_id}")).create(
            session=saver.session,
            author=HookedUserFactory.after_creating(lambda u, s: order.append(f"user {u.id}")),
        )
    )
    assert order == [f"user {post.author_id}", f"post {post.author_id}"]


@pytest.mark.asyncio
async def test_an_async_hook_is_awaited_with_an_async_session(
    async_session: AsyncSession,
) -> None:
    async def rename(user: User, session: AsyncSession) -> None:
        user.name = f"Renamed {user.id}"
        await session.flush()

    users = await UserFactory.after_creating(rename).create_many(2, session=async_session)
    stored = (await async_session.execute(select(User.name).order_by(User.id))).scalars().all()
    assert list(stored) == [f"Renamed {u.id}" for u in users]


def test_an_async_hook_with_a_sync_session_is_an_error(session: Session) -> None:
    async def rename(user: User, session: Any) -> None:
        pass

    with pytest.raises(ConfigurationError) as info:
        UserFactory.after_creating(rename).create(session=session)
    assert str(info.value) == (
        "UserFactory: the after-create hook test_an_async_hook_with_a_sync_session_is_an_error"
        ".<locals>.rename returned an awaitable, but UserFactory.create() saved through a sync "
        "session (<Session object>). Use an AsyncSession, or make the hook sync."
    )


# ------------------------------------------------------------- the session


def test_a_wrong_kind_of_session_is_refused_naming_what_to_pass() -> None:
    with pytest.raises(ConfigurationError) as info:
        UserFactory.create(session="sqlite://")
    assert str(info.value) == (
        "UserFactory.create() needs a SQLAlchemy Session or AsyncSession to save User, got "
        "str. Pass session=<Session or AsyncSession>, or leave it out inside a test that "
        "uses db_session or async_db_session."
    )
    with pytest.raises(ConfigurationError, match=r"UserFactory.state\('admin'\).create_many"):
        UserFactory.state("admin").create_many(2, session=object())


@pytest.mark.asyncio
async def test_the_async_twins_refuse_a_sync_session_and_name_the_sync_method(
    session: Session,
) -> None:
    with pytest.raises(ConfigurationError) as info:
        await UserFactory.acreate(session=session)
    assert str(info.value) == (
        "UserFactory.acreate() got a sync Session (<Session object>). Use "
        "`UserFactory.create(session=...)` for sync sessions and sync peewee databases, "
        "or pass an AsyncSession."
    )
    with pytest.raises(ConfigurationError, match=r"Use `UserFactory.create_many\(session="):
        await UserFactory.acreate_many(2, session=session)


def test_no_session_and_no_running_test_says_what_to_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_test_context._running, "nodeid", None)
    with pytest.raises(ConfigurationError) as info:
        UserFactory.create()
    assert str(info.value).startswith(
        "UserFactory.create() has no session: no test is running. Pass session=... "
    )
    with pytest.raises(ConfigurationError, match=r"^UserFactory.has\(PostFactory, 2\)\.create_"):
        UserFactory.has(PostFactory, 2).create_many(2)


def test_a_class_of_no_orm_is_built_but_not_saved() -> None:
    @dataclass
    class Point:
        x: int = 0
        y: int = 0

    class PointFactory(ModelFactory[Point]):
        __model__ = Point

        @classmethod
        def defaults(cls) -> dict[str, Any]:
            return {"x": 1, "y": lazy(lambda a: a.x + 1)}

    assert PointFactory.make() == Point(1, 2)
    with pytest.raises(ConfigurationError) as info:
        PointFactory.create(session=Session())
    assert str(info.value) == (
        "PointFactory.create(): Point is neither a SQLAlchemy mapped class nor a peewee "
        "model, so there is nothing to save it through. make() builds it in memory."
    )
