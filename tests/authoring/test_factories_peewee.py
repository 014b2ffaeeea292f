"""ModelFactory on peewee models: the model's own database (or one passed as ``session=``),
sync peewee and peewee-async, on real SQLite, PostgreSQL and MariaDB databases.

``store`` is a sync peewee database or a peewee-async one (``Psycopg3Database``,
``MySQLDatabase`` on aiomysql, ``SqliteDatabase`` on aiosqlite) on a fresh database
of each backend, the models bound to it, with the statements sent through it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import peewee
import peewee_async
import pytest
import pytest_asyncio
from sqlalchemy.engine import URL

from dbrewind.exceptions import ConfigurationError
from dbrewind.factories import ModelFactory, lazy
from dbrewind.peewee import close_rewinders
from helpers.peewee_dbs import aio_database, sync_database


class Author(peewee_async.AioModel):
    name = peewee.CharField(max_length=50, unique=True)
    is_admin = peewee.BooleanField(default=False)


class Book(peewee_async.AioModel):
    """A table named by a reserved word, with a foreign key."""

    title = peewee.CharField(max_length=80)
    slug = peewee.CharField(max_length=90, default="")
    author = peewee.ForeignKeyField(Author, backref="books")

    class Meta:
        table_name = "order"


class Review(peewee_async.AioModel):
    """Two foreign keys to the same model."""

    reviewer = peewee.ForeignKeyField(Author)
    subject = peewee.ForeignKeyField(Author)
    stars = peewee.IntegerField(default=5)


MODELS = [Author, Book, Review]


class AuthorFactory(ModelFactory[Author]):
    __model__ = Author

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {
            "name": lazy(lambda a: f"{'admin' if a.is_admin else 'author'} {seq}"),
            "is_admin": False,
        }

    @classmethod
    def state_admin(cls) -> dict[str, Any]:
        return {"is_admin": True}


class BookFactory(ModelFactory[Book]):
    __model__ = Book

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {
            "title": f"Book {cls._next_seq()}",
            "slug": lazy(lambda a: a.title.lower().replace(" ", "-")),
            "author": AuthorFactory,
        }


class BookByColumnFactory(ModelFactory[Book]):
    """Its author by the key (``author_id``), not the foreign key's own name."""

    __model__ = Book

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"title": "By column", "author": None, "author_id": AuthorFactory}


class AdminAuthorFactory(AuthorFactory):
    """The same model: it counts with AuthorFactory."""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {**super().defaults(), "is_admin": True}


class ReviewFactory(ModelFactory[Review]):
    __model__ = Review

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"reviewer": AuthorFactory, "subject": AuthorFactory}


@pytest.fixture(autouse=True)
def fresh_counters() -> None:
    AuthorFactory.reset_sequence()
    BookFactory.reset_sequence()


@dataclass
class PeeweeStore:
    db: Any
    asynchronous: bool
    statements: list[str] = field(default_factory=list)

    @property
    def inserts(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith("INSERT")]

    async def count(self, model: type[peewee.Model]) -> int:
        if self.asynchronous:
            return int(await model.select().aio_count())  # type: ignore[attr-defined]
        return int(model.select().count())

    async def column(self, model: type[peewee.Model], name: str) -> list[Any]:
        query = model.select(getattr(model, name)).order_by(model._meta.primary_key).tuples()
        rows = await query.aio_execute() if self.asynchronous else list(query)  # type: ignore[attr-defined]
        return [r[0] for r in rows]


@pytest_asyncio.fixture(params=["peewee", "peewee-async"])
async def store(
    request: pytest.FixtureRequest, db_url: URL, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PeeweeStore]:
    """A sync peewee or a peewee-async database, the models bound to it."""
    if request.param == "peewee":
        db = sync_database(db_url)
        db.bind(MODELS)
        db.create_tables(MODELS)
        found = PeeweeStore(db, False)
        original = db.execute_sql

        def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
            found.statements.append(sql)
            return original(sql, *args, **kwargs)

        monkeypatch.setattr(db, "execute_sql", counted)
        try:
            yield found
        finally:
            close_rewinders()  # the sandbox's safety net, before the database is dropped
            db.close()
        return
    db = aio_database(db_url)
    db.bind(MODELS)
    await db.aio_create_tables(MODELS)
    found = PeeweeStore(db, True)
    original_aio = db.aio_execute_sql

    async def aio_counted(sql: str, *args: Any, **kwargs: Any) -> Any:
        found.statements.append(sql)
        return await original_aio(sql, *args, **kwargs)

    monkeypatch.setattr(db, "aio_execute_sql", aio_counted)
    try:
        yield found
    finally:
        close_rewinders()
        await db.aio_close()


async def done(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


pytestmark = pytest.mark.asyncio


async def test_create_saves_through_the_models_own_database(store: PeeweeStore) -> None:
    result = AuthorFactory.create()
    assert inspect.isawaitable(result) is store.asynchronous
    author = await done(result)
    assert isinstance(author, Author)
    assert author.id is not None
    assert author.name == "author 1"
    assert not author.is_dirty()
    assert await store.column(Author, "name") == ["author 1"]


async def test_create_with_the_database_as_session(store: PeeweeStore) -> None:
    author = await done(AuthorFactory.state("admin").create(session=store.db))
    assert (author.name, author.is_admin) == ("admin 1", True)
    assert await store.count(Author) == 1


async def test_create_many_inserts_one_batch_a_table_and_sets_the_keys(
    store: PeeweeStore,
) -> None:
    books = await BookFactory.create_many(30)
    assert [b.slug for b in books[:2]] == ["book-1", "book-2"]
    assert await store.count(Author) == 30
    assert await store.column(Book, "title") == [f"Book {n}" for n in range(1, 31)]
    # the keys set on the models are the rows' own
    assert await store.column(Book, "id") == [b.id for b in books]
    assert await store.column(Book, "author") == [b.author.id for b in books]
    assert len(store.inserts) == 2, store.inserts  # RETURNING: PostgreSQL, SQLite, MariaDB


async def test_create_many_with_the_async_twin(store: PeeweeStore) -> None:
    if not store.asynchronous:
        with pytest.raises(ConfigurationError) as info:
            await AuthorFactory.acreate_many(2)
        assert str(info.value).startswith("AuthorFactory.acreate_many() got a sync session (<")
        return
    authors = await AuthorFactory.acreate_many(3, is_admin=True)
    assert [a.is_admin for a in authors] == [True, True, True]
    one = await AuthorFactory.acreate(name="solo")
    assert one.id == authors[-1].id + 1


async def test_for_an_instance_or_a_factory(store: PeeweeStore) -> None:
    author = await done(AuthorFactory.create())
    books = await BookFactory.for_(author).create_many(3)
    assert await store.column(Book, "author") == [author.id] * 3
    assert await store.count(Author) == 1
    shared = await BookFactory.for_(AuthorFactory.state("admin")).create_many(2)
    assert shared[0].author.id == shared[1].author.id != author.id
    assert books[0].author is author


async def test_an_override_by_the_key_wins_over_for(store: PeeweeStore) -> None:
    admin = await done(AuthorFactory.state("admin").create())
    bob = await done(AuthorFactory.create())
    await done(BookFactory.for_(admin).create(author_id=bob.id))
    await done(BookFactory.for_(AuthorFactory).create(author_id=bob.id))
    assert await store.column(Book, "author") == [bob.id, bob.id]
    assert await store.count(Author) == 2  # no parent made for nothing


async def test_for_replaces_a_default_set_by_the_key(store: PeeweeStore) -> None:
    admin = await done(AuthorFactory.state("admin").create())
    await BookByColumnFactory.for_(admin).create_many(2)
    assert await store.column(Book, "author") == [admin.id, admin.id]
    assert await store.count(Author) == 1  # the default's AuthorFactory was not used


async def test_a_subclass_of_the_same_model_counts_with_its_parent(store: PeeweeStore) -> None:
    author = await done(AuthorFactory.create())
    admins = await AdminAuthorFactory.create_many(2)  # the name is unique
    assert [a.name for a in (author, *admins)] == ["author 1", "admin 2", "admin 3"]


async def test_for_names_the_relation_when_there_are_several(store: PeeweeStore) -> None:
    author = await done(AuthorFactory.create())
    with pytest.raises(ConfigurationError) as info:
        await done(ReviewFactory.for_(author).create())
    assert str(info.value) == (
        "ReviewFactory.for_(<Author: 1>): Review and Author are linked by several relations "
        "(reviewer, subject). Name the one to use: relation='...'."
    )
    reviews = await ReviewFactory.for_(author, relation="subject").create_many(2)
    assert [r.subject.id for r in reviews] == [author.id, author.id]
    assert await store.count(Author) == 3


async def test_for_an_unsaved_peewee_instance_says_to_save_it_first(store: PeeweeStore) -> None:
    with pytest.raises(ConfigurationError) as info:
        await done(BookFactory.for_(AuthorFactory.make()).create())
    assert str(info.value) == (
        "BookFactory.for_(<Author: None>): cannot link <Author: None> through 'author': "
        "it has no primary key yet (it is not saved). Save it first (create()), or link it "
        "through a relationship attribute."
    )


async def test_has_creates_children_after_their_parents_in_two_batches(
    store: PeeweeStore,
) -> None:
    authors = await AuthorFactory.has(BookFactory, 2).create_many(3)
    assert await store.count(Author) == 3  # the books' own author factory was not used
    assert await store.column(Book, "author") == [a.id for a in authors for _ in range(2)]
    assert len(store.inserts) == 2, store.inserts


async def test_a_key_column_takes_the_saved_rows_key(store: PeeweeStore) -> None:
    book = await done(BookFactory.create(author=None, author_id=AuthorFactory))
    assert book.author_id is not None
    assert await store.column(Book, "author") == [book.author_id]


async def test_hooks_get_the_database(store: PeeweeStore) -> None:
    seen: list[tuple[Any, Any]] = []

    async def async_hook(author: Author, db: Any) -> None:
        seen.append(("async", author.id))

    def sync_hook(author: Author, db: Any) -> None:
        seen.append((author.id, db))

    authors = await AuthorFactory.after_creating(sync_hook).create_many(2)
    assert seen == [(a.id, store.db) for a in authors]
    if store.asynchronous:
        author = await AuthorFactory.after_creating(async_hook).create()
        assert seen[-1] == ("async", author.id)
    else:
        with pytest.raises(ConfigurationError, match=r"returned an awaitable, but Author"):
            AuthorFactory.after_creating(async_hook).create()


async def test_errors_name_the_model_and_the_fix(store: PeeweeStore) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthorFactory.make(nickname="x")
    assert str(info.value) == (
        "AuthorFactory: Author has no attribute 'nickname' (set by the overrides). "
        "Its attributes: id, is_admin, name. Rename or remove it."
    )
    with pytest.raises(ConfigurationError, match=r"Book has no attribute 'writer'.*author_id, id"):
        BookFactory.make(writer=None)
    with pytest.raises(ConfigurationError) as info:
        AuthorFactory.create(session="postgresql://")
    assert str(info.value) == (
        "AuthorFactory.create(): Author is a peewee model; it saves through a peewee "
        "database, not str. Leave session out (the model's own database) or pass "
        "session=<peewee Database>."
    )


async def test_an_unbound_peewee_model_says_to_bind_it() -> None:
    class Loose(peewee.Model):
        name = peewee.CharField()

    class LooseFactory(ModelFactory[Loose]):
        __model__ = Loose

    Loose._meta.database = None
    with pytest.raises(ConfigurationError) as info:
        LooseFactory.create()
    assert str(info.value) == (
        "LooseFactory.create(): Loose has no database: bind it (database.bind([Loose])) "
        "or pass session=<peewee database>."
    )


async def test_inside_dbrewinds_sandbox_the_rows_are_rolled_back(store: PeeweeStore) -> None:
    if store.asynchronous:
        from dbrewind.peewee_async import AsyncPeeweeSandbox

        async with AsyncPeeweeSandbox(store.db) as case:
            await AuthorFactory.has(BookFactory, 2).create_many(3)
            assert await store.count(Book) == 6
    else:
        from dbrewind.peewee import PeeweeSandbox

        with PeeweeSandbox(store.db) as case:  # type: ignore[assignment]
            AuthorFactory.has(BookFactory, 2).create_many(3)
            assert await store.count(Book) == 6
    assert case.leaked is None
    assert await store.count(Book) == 0
    assert await store.count(Author) == 0


@pytest.mark.backends("sqlite", "mysql")  # PostgreSQL's cursors have no lastrowid
async def test_without_returning_one_insert_a_row_reads_each_key(
    store: PeeweeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MySQL's way (no RETURNING), taken on MariaDB and SQLite by saying they have none."""
    from dbrewind.factories import _peewee

    monkeypatch.setattr(_peewee.PeeweeStore, "_has_returning", lambda self: False)

    async def no_returning(self: Any) -> bool:
        return False

    monkeypatch.setattr(_peewee.AsyncPeeweeStore, "_has_returning", no_returning)
    authors = await AuthorFactory.create_many(3)
    assert [a.id for a in authors] == await store.column(Author, "id")
    assert len(store.inserts) == 3
    assert not any("RETURNING" in s.upper() for s in store.inserts)
