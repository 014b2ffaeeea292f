"""dbrewind.bridges: a team's factory_boy and polyfactory factories on the test's session.

The inner project has factories of both libraries written two ways: with the one
line in ``Meta`` / the class body (``factories_meta``), and untouched, as a project
has them, on a scoped session of its own (``factories_legacy``), bound in
``conftest.py`` (factory_boy's base factory by the module-level line, polyfactory's
by a session fixture that puts it back afterwards). Its tests cover related
factories (``SubFactory``, polyfactory's relationships), commit persistence,
polyfactory's ``create_async``, factory_boy inside ``run_sync`` in an async test,
the sequences restarted per test (and kept counted for a module-scoped fixture),
and every message. It runs on each database, in random order, twice on the same
database; the tables are empty after each run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import factory
import pytest
from polyfactory.factories.sqlalchemy_factory import (
    SQLAlchemyFactory,
    SQLAlchemyPersistenceMethod,
)
from sqlalchemy import Integer, String, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dbrewind.bridges import Binding, test_async_session, test_session, use_test_session
from dbrewind.exceptions import ConfigurationError
from helpers.runs import pytest_args

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(100), unique=True)


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    books: Mapped[list["Book"]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


def setup(conn):
    Base.metadata.create_all(conn)
"""

# the one line in each factory
FACTORIES_META = """
import factory
from polyfactory.factories.sqlalchemy_factory import (
    SQLAlchemyFactory,
    SQLAlchemyPersistenceMethod,
)

from dbrewind.bridges import test_async_session, test_session
from myapp.models import Author, Book, User


class UserFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = User
        sqlalchemy_session_factory = test_session
        sqlalchemy_session_persistence = "flush"

    email = factory.Sequence(lambda n: f"meta{n}@test.invalid")


class AuthorFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = Author
        sqlalchemy_session_factory = test_session
        sqlalchemy_session_persistence = "commit"

    name = factory.Sequence(lambda n: f"author{n}")


class BookFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = Book
        sqlalchemy_session_factory = test_session
        sqlalchemy_session_persistence = "flush"

    title = factory.Sequence(lambda n: f"book{n}")
    author = factory.SubFactory(AuthorFactory)


class PolyAuthorFactory(SQLAlchemyFactory[Author]):
    __set_primary_key__ = False
    __set_foreign_keys__ = False
    __session__ = test_session
    __async_session__ = test_async_session


class PolyBookFactory(SQLAlchemyFactory[Book]):
    __set_primary_key__ = False
    __set_foreign_keys__ = False
    __persistence_method__ = SQLAlchemyPersistenceMethod.FLUSH
    __session__ = test_session
    __async_session__ = test_async_session
"""

# factories as a project has them: its own scoped session, committing
FACTORIES_LEGACY = """
from typing import Any

import factory
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from sqlalchemy.orm import scoped_session, sessionmaker

from myapp.models import Author, Book, User

Session = scoped_session(sessionmaker())  # bound to the real database by the app


class BaseFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session = Session
        sqlalchemy_session_persistence = "commit"


class UserFactory(BaseFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@test.invalid")


class AdminFactory(UserFactory):  # shares UserFactory's counter
    email = factory.Sequence(lambda n: f"admin{n}@test.invalid")


class AuthorFactory(BaseFactory):
    class Meta:
        model = Author

    name = factory.Sequence(lambda n: f"author{n}")


class BookFactory(BaseFactory):
    class Meta:
        model = Book

    title = factory.Sequence(lambda n: f"book{n}")
    author = factory.SubFactory(AuthorFactory)


class PolyBase(SQLAlchemyFactory[Any]):
    __is_base_factory__ = True
    __set_primary_key__ = False
    __set_foreign_keys__ = False
    __session__ = Session


class PolyAuthorFactory(PolyBase):
    __model__ = Author


class PolyBookFactory(PolyBase):
    __model__ = Book
"""

CONFTEST = """
import pytest

import dbrewind.bridges
from factories_legacy import BaseFactory, PolyBase, Session

dbrewind.bridges.use_test_session(BaseFactory)  # the one line, for the whole run


@pytest.fixture(scope="session", autouse=True)
def _poly_factories_on_the_test_session():
    with dbrewind.bridges.use_test_session(PolyBase):  # bound for the run, then put back
        yield


def pytest_sessionfinish(session):
    restored = PolyBase.__dict__.get("__session__") is Session and (
        "__async_session__" not in PolyBase.__dict__
    )
    with open("restored.txt", "w") as out:
        out.write(str(restored))
"""

TEST_META = """
import pytest
from sqlalchemy import func, select

from dbrewind.bridges import test_async_session, test_session  # not collected as tests
from dbrewind.exceptions import ConfigurationError
from factories_meta import (
    AuthorFactory,
    BookFactory,
    PolyAuthorFactory,
    PolyBookFactory,
    UserFactory,
)
from myapp.models import Author, Book, User


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_the_meta_line_writes_through_db_session(db_session):
    user = UserFactory()
    assert user.id is not None  # "flush": it has its id
    assert user in db_session
    assert count(db_session, User) == 1


def test_a_test_asking_for_db_only_gets_its_db_session_on_demand(db):
    UserFactory.create_batch(3)
    assert db.scalar(select(func.count()).select_from(User)) == 3


def test_a_subfactory_writes_through_the_same_session(db_session):
    book = BookFactory()
    assert book.author in db_session and book.author.id == book.author_id
    assert (count(db_session, Book), count(db_session, Author)) == (1, 1)


def test_commit_persistence_is_a_savepoint_in_the_sandbox(db_session, db):
    AuthorFactory.create_batch(2)  # "commit"
    assert db.scalar(select(func.count()).select_from(Author)) == 2


@pytest.mark.parametrize("n", range(3))
def test_each_test_starts_with_empty_tables(db_session, n):
    assert [count(db_session, m) for m in (User, Author, Book)] == [0, 0, 0]
    BookFactory.create_batch(2)
    UserFactory()


def test_polyfactory_create_sync_with_its_relationships(db_session):
    author = PolyAuthorFactory.create_sync()  # polyfactory's default: commit
    assert author in db_session and author.id is not None
    assert author.books and all(book.author_id == author.id for book in author.books)
    book = PolyBookFactory.create_sync()
    assert book.author in db_session and book.author_id == book.author.id
    assert count(db_session, Book) == len(author.books) + 1


@pytest.mark.asyncio
async def test_polyfactory_create_async_writes_through_async_db_session(async_db_session):
    author = await PolyAuthorFactory.create_async()
    books = await PolyBookFactory.create_batch_async(2)
    assert author in async_db_session and all(book in async_db_session for book in books)
    assert await async_db_session.scalar(select(func.count()).select_from(Author)) >= 3
    assert await async_db_session.scalar(select(func.count()).select_from(Book)) >= 2


@pytest.mark.asyncio
async def test_factory_boy_in_an_async_test_runs_inside_run_sync(async_db_session):
    books = await async_db_session.run_sync(lambda _: BookFactory.create_batch(2))
    author = await async_db_session.run_sync(lambda _: AuthorFactory())  # "commit"
    assert all(book in async_db_session for book in books) and author in async_db_session
    assert await async_db_session.scalar(select(func.count()).select_from(Author)) == 3


@pytest.fixture(scope="module")
def message_in_a_module_fixture():
    with pytest.raises(ConfigurationError) as info:
        UserFactory()
    return str(info.value)


def test_a_fixture_wider_than_a_test_is_told_to_write_inside_using(
    message_in_a_module_fixture,
):
    message = message_in_a_module_fixture
    assert message.startswith("UserFactory writes through the running test's session")
    assert "has no dbrewind session to write to: ask for db_session in the test." in message
    assert message.endswith(
        "In a fixture wider than a test (scope='module'), create inside "
        "'with dbrewind.bridges.using(module_db_session):'."
    )


@pytest.mark.asyncio
async def test_an_async_test_without_a_session_is_told_what_to_ask_for():
    with pytest.raises(ConfigurationError) as info:
        await PolyAuthorFactory.create_async()
    message = str(info.value)
    assert message.startswith("PolyAuthorFactory writes through the running test's session")
    assert (
        "test_meta.py::test_an_async_test_without_a_session_is_told_what_to_ask_for has no "
        "dbrewind session to write to: ask for async_db_session in the test."
    ) in message


@pytest.mark.asyncio
async def test_factory_boy_on_the_event_loop_is_refused_with_the_fix(async_db_session):
    with pytest.raises(ConfigurationError) as info:
        UserFactory()
    message = str(info.value)
    assert message.startswith("UserFactory saves synchronously")
    assert "the test's session is an AsyncSession (async_db_session)" in message
    assert "'await async_db_session.run_sync(lambda _: UserFactory.create())'" in message
    assert "'await UserFactory.create_async()'" in message
    with pytest.raises(ConfigurationError, match="^PolyBookFactory saves synchronously"):
        PolyBookFactory.create_sync()
    assert await async_db_session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.asyncio
async def test_create_async_on_a_sync_session_is_refused_with_the_fix(db_session):
    with pytest.raises(ConfigurationError) as info:
        await PolyAuthorFactory.create_async()
    message = str(info.value)
    assert message.startswith("PolyAuthorFactory saves asynchronously")
    assert "the test's session is a sync Session (db_session)" in message
    assert "Ask for async_db_session in the async test" in message
    assert "PolyAuthorFactory.create_sync() with __session__ = dbrewind.bridges.test_session" in (
        message
    )
"""

TEST_BOUND = """
import pytest
from sqlalchemy import func, select

from factories_legacy import (
    AdminFactory,
    AuthorFactory,
    BookFactory,
    PolyAuthorFactory,
    PolyBookFactory,
    UserFactory,
)
from myapp.models import Author, Book, User


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("n", range(4))
def test_a_tests_first_user_is_user0_in_any_order(db_session, n):
    first, second = UserFactory(), UserFactory()
    assert (first.email, second.email) == ("user0@test.invalid", "user1@test.invalid")
    assert first in db_session and count(db_session, User) == 2


def test_a_subclass_counts_with_the_factory_whose_counter_it_shares(db_session):
    user, admin = UserFactory(), AdminFactory()
    assert (user.email, admin.email) == ("user0@test.invalid", "admin1@test.invalid")


def test_a_subfactory_of_bound_factories(db_session):
    book = BookFactory()
    assert book.author in db_session
    assert (book.title, book.author.name) == ("book0", "author0")
    assert (count(db_session, Book), count(db_session, Author)) == (1, 1)


def test_reset_sequence_in_a_test_lasts_for_that_test(db_session):
    UserFactory.reset_sequence(10)
    assert UserFactory().email == "user10@test.invalid"


def test_the_factories_own_commit_is_a_savepoint_in_the_sandbox(db_session, db):
    UserFactory.create_batch(2)  # BaseFactory's "commit", kept
    assert db.scalar(select(func.count()).select_from(User)) == 2


def test_polyfactory_bound_by_its_base_writes_through_db_session(db_session):
    book = PolyBookFactory.create_sync()
    assert book in db_session and book.author_id == book.author.id
    assert count(db_session, Book) == 1


@pytest.mark.asyncio
async def test_polyfactory_bound_by_its_base_creates_async(async_db_session):
    authors = await PolyAuthorFactory.create_batch_async(2)
    assert all(author in async_db_session for author in authors)
    assert await async_db_session.scalar(select(func.count()).select_from(Author)) >= 2
"""

TEST_BOUND_MODULE = """
import pytest
from sqlalchemy import func, select

from dbrewind.bridges import using
from factories_legacy import UserFactory
from myapp.models import User


@pytest.fixture(scope="module")
def team(module_db_session):
    with using(module_db_session):
        return UserFactory.create_batch(2)


@pytest.mark.parametrize("n", range(3))
def test_a_module_fixtures_users_stay_counted(team, db_session, n):
    assert [user.email for user in team] == ["user0@test.invalid", "user1@test.invalid"]
    assert UserFactory().email == "user2@test.invalid"  # not a second user0
    assert db_session.scalar(select(func.count()).select_from(User)) == 3
"""

PASSED = 14 + 10 + 3
TABLES = ("users", "books", "authors")


def _write(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("myapp")
    pytester.path.joinpath("myapp", "models.py").write_text(MODELS)
    pytester.makepyfile(
        conftest=CONFTEST,
        factories_meta=FACTORIES_META,
        factories_legacy=FACTORIES_LEGACY,
        test_meta=TEST_META,
        test_bound=TEST_BOUND,
        test_bound_module=TEST_BOUND_MODULE,
    )
    pytester.makeini(
        "[pytest]\ndbrewind_setup = myapp.models:setup\nasyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\n"
        "filterwarnings =\n    error\n"
    )


def _rows(url: URL) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in TABLES
            }
    finally:
        engine.dispose()


def test_factories_of_both_libraries_on_the_tests_session_in_random_order_run_after_run(
    pytester: pytest.Pytester, backend: str, suite_url: URL
) -> None:
    _write(pytester)
    for seed in (1, 2):  # two orders, on the same database
        result = pytester.runpytest_subprocess(
            *pytest_args(suite_url, "--strict-markers", seed=seed)
        )
        result.assert_outcomes(passed=PASSED)
        assert _rows(suite_url) == dict.fromkeys(TABLES, 0)
        assert pytester.path.joinpath("restored.txt").read_text() == "True"


TEST_NO_SESSION_KEPT = """
from factories_legacy import UserFactory as BoundUserFactory
from factories_meta import UserFactory


def test_the_factories_write_through_db_session(db_session):
    UserFactory()
    BoundUserFactory()
    assert UserFactory._meta.sqlalchemy_session is db_session
    assert BoundUserFactory._meta.sqlalchemy_session is db_session


def test_the_next_test_finds_no_session_kept_from_it():
    assert UserFactory._meta.sqlalchemy_session is None
    assert BoundUserFactory._meta.sqlalchemy_session is None
"""


def test_no_factory_keeps_a_tests_session_after_the_test(
    pytester: pytest.Pytester, suite_url: URL
) -> None:
    _write(pytester)
    pytester.makepyfile(test_kept=TEST_NO_SESSION_KEPT)
    result = pytester.runpytest_subprocess(*pytest_args(suite_url, "test_kept.py"))
    result.assert_outcomes(passed=2)


def test_a_factory_used_outside_a_test_names_the_fix(pytester: pytest.Pytester) -> None:
    _write(pytester)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["PYTHONPATH"] = os.pathsep.join([str(pytester.path), env.get("PYTHONPATH", "")])
    script = "import factories_meta\nfactories_meta.UserFactory()\n"
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last == (
        "dbrewind.exceptions.ConfigurationError: UserFactory writes through the running "
        "test's session (dbrewind.bridges), and no test is running: create through it "
        "inside a test that uses db_session. In a fixture wider than a test "
        "(scope='module'), create inside 'with dbrewind.bridges.using(module_db_session):'."
    )


# ------------------------------------------------------------- binding, no database


class _Base(DeclarativeBase):
    pass


class _Thing(_Base):
    __tablename__ = "things"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


def _project_factories() -> tuple[type, type, type, type, object]:
    own_session = object()

    class Base(factory.alchemy.SQLAlchemyModelFactory):
        class Meta:
            abstract = True
            sqlalchemy_session = own_session
            sqlalchemy_session_persistence = "commit"

    class ThingFactory(Base):
        class Meta:
            model = _Thing

        name = factory.Sequence(lambda n: f"thing{n}")

    class PolyBase(SQLAlchemyFactory[_Thing]):
        __is_base_factory__ = True
        __session__ = own_session  # type: ignore[assignment]

    class PolyThingFactory(PolyBase):
        __model__ = _Thing
        __async_session__ = own_session  # type: ignore[assignment]

    return Base, ThingFactory, PolyBase, PolyThingFactory, own_session


def test_a_binding_covers_the_subclasses_and_puts_everything_back() -> None:
    base, thing, poly_base, poly_thing, own = _project_factories()
    thing.build()  # its counter is set up (and moved) before the binding
    before_counter = thing._meta._counter
    with use_test_session(base, poly_base, persistence="flush") as binding:
        assert isinstance(binding, Binding)
        assert binding.factories == (base, thing, poly_base, poly_thing)
        for cls in (base, thing):
            assert cls._meta.sqlalchemy_session_factory is test_session
            assert cls._meta.sqlalchemy_session is None
            assert cls._meta.sqlalchemy_session_persistence == "flush"
        assert thing._meta._counter is not before_counter
        assert poly_thing.__session__ is test_session
        assert poly_thing.__async_session__ is test_async_session
        assert poly_thing.__persistence_method__ is SQLAlchemyPersistenceMethod.FLUSH
    for cls in (base, thing):
        assert cls._meta.sqlalchemy_session is own
        assert cls._meta.sqlalchemy_session_factory is None
        assert cls._meta.sqlalchemy_session_persistence == "commit"
    assert thing._meta._counter is before_counter
    assert thing.build().name == "thing1"  # counting on where it was
    assert poly_base.__dict__["__session__"] is own
    assert poly_thing.__async_session__ is own
    assert "__session__" not in poly_thing.__dict__
    assert poly_thing.__persistence_method__ is SQLAlchemyPersistenceMethod.COMMIT


def test_binding_the_librarys_own_base_binds_every_factory() -> None:
    _, thing, *_ = _project_factories()
    with use_test_session(factory.alchemy.SQLAlchemyModelFactory, restart_sequences=False):
        assert thing._meta.sqlalchemy_session_factory is test_session
        assert thing._meta._counter is None  # restart_sequences=False: left alone
    assert thing._meta.sqlalchemy_session_factory is None


def test_a_factory_boy_without_the_counter_asks_for_restart_sequences_false() -> None:
    _, thing, *_ = _project_factories()
    del thing._meta._counter  # as a factory_boy that keeps it elsewhere
    with pytest.raises(ConfigurationError) as info:
        use_test_session(thing)
    assert str(info.value) == (
        "ThingFactory: this factory_boy keeps no sequence counter where dbrewind.bridges "
        "looks (no _counter). Bind it with restart_sequences=False, and reset its "
        "sequences with reset_sequence()."
    )
    assert thing._meta.sqlalchemy_session_factory is None  # nothing left bound
    with use_test_session(thing, restart_sequences=False):
        assert thing._meta.sqlalchemy_session_factory is test_session


def test_the_session_functions_are_not_collected_as_tests() -> None:
    assert test_session.__test__ is False  # type: ignore[attr-defined]
    assert test_async_session.__test__ is False  # type: ignore[attr-defined]


def test_binding_nothing_is_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        use_test_session()
    assert str(info.value) == (
        "use_test_session() binds no factory: name the factory classes, or their base "
        "class, e.g. use_test_session(BaseFactory)."
    )


def test_binding_what_is_not_a_sqlalchemy_factory_is_refused() -> None:
    class DictFactory(factory.DictFactory):
        name = "x"

    with pytest.raises(ConfigurationError) as info:
        use_test_session(DictFactory)
    message = str(info.value)
    assert message.startswith("use_test_session() got <class ")
    assert "DictFactory'>, which is neither a factory_boy SQLAlchemyModelFactory nor a " in (
        message
    )
    assert message.endswith(
        "polyfactory SQLAlchemyFactory. Name factory classes of those kinds, or their base class."
    )


def test_an_unknown_persistence_is_refused() -> None:
    _, thing, *_ = _project_factories()
    with pytest.raises(ConfigurationError) as info:
        use_test_session(thing, persistence="sometimes")  # type: ignore[arg-type]
    assert str(info.value) == (
        "use_test_session(persistence='sometimes'): use 'flush' (right inside the rollback "
        "sandbox), 'commit' (a savepoint there), or None to keep each factory's own."
    )
    assert thing._meta.sqlalchemy_session_factory is None  # nothing bound
