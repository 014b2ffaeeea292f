"""dbrewind.unittest: test case classes generated per backend and run with unittest's runner."""

from __future__ import annotations

import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy import update as sa_update
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session

import dbrewind._context as dbrewind_context
import dbrewind.unittest as dbu
from dbrewind import ConfigurationError, parse_url
from dbrewind.dialects import get_dialect

__all__: list[str] = []

DATA = Path(__file__).parents[1] / "data"

metadata = MetaData()
people = Table(
    "people",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)
# a table whose name is a reserved word, holding one reference row from the setup
settings = Table(
    "order",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", String(50)),
)


class Base(DeclarativeBase):
    pass


class Person(Base):
    __table__ = people
    id: Mapped[int]
    name: Mapped[str]


def setup_schema(conn: Connection) -> None:
    """The schema plus one baseline row that tests may change."""
    metadata.create_all(conn)
    if conn.execute(select(func.count()).select_from(settings)).scalar_one() == 0:
        conn.execute(insert(settings).values(id=1, value="baseline"))


@pytest.fixture
def url(db_url: URL) -> Iterator[str]:
    """The fresh test database's URL; the test cases' connections are closed afterwards.

    The cases work on that very database, not on an xdist worker's clone of it
    (this suite may run under xdist; tests/lifecycle covers the clones).
    """
    worker = dbrewind_context.worker()
    dbrewind_context.set_worker(None)
    try:
        yield db_url.render_as_string(hide_password=False)
    finally:
        dbu.close_databases()
        dbrewind_context.set_worker(worker)


@pytest.fixture
def observer(db_url: URL) -> Iterator[Engine]:
    """A plain engine outside any sandbox, to see what is really committed."""
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def run(*classes: type[unittest.TestCase]) -> unittest.TestResult:
    """Run the classes' tests (methods in name order) and return the result."""
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(cls) for cls in classes)
    result = unittest.TestResult()
    suite.run(result)
    return result


def assert_passed(result: unittest.TestResult, count: int) -> None:
    problems = [text for _, text in result.errors + result.failures]
    assert not problems, "\n".join(problems)
    assert result.testsRun == count


def names(conn: Connection | Session) -> list[str]:
    return list(conn.execute(select(people.c.name).order_by(people.c.name)).scalars())


def count_people(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(people)).scalar_one()


# --------------------------------------------------------------------------- TestCase
def test_testcase_rolls_back_each_test_and_keeps_class_data(url: str, observer: Engine) -> None:
    seen: dict[str, Any] = {}

    class Cases(dbu.TestCase):
        database_url = url
        database_setup = setup_schema

        @classmethod
        def setUpTestData(cls) -> None:
            cls.db_class.execute(insert(people).values(id=1, name="Ann"))

        def test_a_writes_through_every_route(self) -> None:
            seen["a_start"] = names(self.db)
            self.db.execute(sa_update(people).values(name="Changed"))
            with self.database_engine.begin() as conn:  # the application's own commit
                conn.execute(insert(people).values(id=2, name="Bob"))
            session = self.session()
            session.add(Person(id=3, name="Cy"))
            session.commit()
            self.db.execute(sa_update(settings).values(value="changed"))
            seen["a_end"] = names(self.db)
            seen["outside_during_test"] = count_people(observer)

        def test_b_sees_only_the_class_data(self) -> None:
            seen["b"] = names(self.db)
            seen["b_setting"] = self.db.execute(select(settings.c.value)).scalar_one()

    assert_passed(run(Cases), 2)
    assert seen["a_start"] == ["Ann"]
    assert seen["a_end"] == ["Bob", "Changed", "Cy"]
    assert seen["outside_during_test"] == 0
    assert seen["b"] == ["Ann"]
    assert seen["b_setting"] == "baseline"
    assert count_people(observer) == 0
    assert Cases.leaked is None or Cases.leaked.clean


def test_setuptestdata_attributes_are_fresh_copies_in_each_test(url: str) -> None:
    seen: dict[str, Any] = {}

    class Cases(dbu.TestCase):
        database_url = url
        database_setup = setup_schema
        tags: list[str]
        person: Person
        alias: Person

        @classmethod
        def setUpTestData(cls) -> None:
            with Session(cls.database_engine, expire_on_commit=False) as session:
                person = Person(id=1, name="Ann")
                session.add(person)
                session.commit()  # inside the class's sandbox: a savepoint release
            cls.person = person
            cls.alias = person
            cls.tags = ["a"]

        def test_a_mutates_its_copies(self) -> None:
            self.tags.append("x")
            self.person.name = "Mutated"
            seen["a_same_object_twice"] = self.person is self.alias
            seen["a_is_class_object"] = self.person is type(self).__dict__["person"].data

        def test_b_sees_pristine_copies(self) -> None:
            seen["b_tags"] = list(self.tags)
            seen["b_name"] = self.person.name
            seen["b_row"] = names(self.db)

    assert_passed(run(Cases), 2)
    assert seen["a_same_object_twice"] is True  # one memo per test keeps identities
    assert seen["a_is_class_object"] is False
    assert seen["b_tags"] == ["a"]
    assert seen["b_name"] == "Ann"
    assert seen["b_row"] == ["Ann"]
    assert "tags" not in Cases.__dict__  # the class is as it was once the class ends


def test_testcase_loads_fixtures_once_per_class(url: str, observer: Engine) -> None:
    seen: dict[str, Any] = {}

    class Cases(dbu.TestCase):
        database_url = url
        database_setup = setup_schema
        fixtures = ("people.json",)
        fixtures_dir = DATA

        def test_a_deletes_them(self) -> None:
            seen["a"] = names(self.db)
            self.db.execute(people.delete())

        def test_b_has_them_back(self) -> None:
            seen["b"] = names(self.db)

    assert_passed(run(Cases), 2)
    assert seen == {"a": ["Ann", "Ben"], "b": ["Ann", "Ben"]}
    assert count_people(observer) == 0


def test_fixtures_default_to_the_test_modules_folder(url: str) -> None:
    seen: dict[str, Any] = {}

    class Cases(dbu.TestCase):
        database_url = url
        database_setup = setup_schema
        fixtures = ("../data/people.json",)  # the module is in tests/integrations/

        def test_loaded(self) -> None:
            seen["names"] = names(self.db)

    assert Cases.__module__ == __name__
    assert_passed(run(Cases), 1)
    assert seen["names"] == ["Ann", "Ben"]


def test_missing_fixture_file_fails_the_class_naming_the_file(url: str) -> None:
    class Cases(dbu.TestCase):
        database_url = url
        database_setup = setup_schema
        fixtures = ("nope.json",)
        fixtures_dir = DATA

        def test_never_runs(self) -> None:
            raise AssertionError("the class set-up should have failed")

    result = run(Cases)
    assert result.testsRun == 0
    assert len(result.errors) == 1
    text = result.errors[0][1]
    assert "DataLoadError" in text
    assert "nope.json" in text


def test_a_class_without_a_database_gets_a_clear_error() -> None:
    class Cases(dbu.TestCase):
        def test_never_runs(self) -> None:
            raise AssertionError("unreachable")

    result = run(Cases)
    assert len(result.errors) == 1
    assert "ConfigurationError" in result.errors[0][1]
    assert "database_url" in result.errors[0][1]


# --------------------------------------------------------------------------- TransactionTestCase
def test_transactiontestcase_commits_for_real_and_rewinds_after(url: str, observer: Engine) -> None:
    seen: dict[str, Any] = {}

    class Cases(dbu.TransactionTestCase):
        database_url = url
        database_setup = setup_schema

        def test_a_commits(self) -> None:
            self.db.execute(insert(people).values(id=1, name="Ann"))
            self.db.execute(settings.delete())
            self.db.commit()
            seen["outside_during_test"] = count_people(observer)
            seen["dirty"] = self.rewinder.dirty_tables()

        def test_b_sees_the_baseline(self) -> None:
            seen["b_people"] = names(self.db)
            seen["b_setting"] = self.db.execute(select(settings.c.value)).scalar_one()
            seen["last_rewind_of_b_before"] = self.last_rewind

    result = run(Cases)
    assert_passed(result, 2)
    assert seen["outside_during_test"] == 1
    assert sorted(key.rpartition(".")[2] for key in seen["dirty"]) == ["order", "people"]
    assert seen["b_people"] == []
    assert seen["b_setting"] == "baseline"
    assert count_people(observer) == 0
    with observer.connect() as conn:
        assert conn.execute(select(settings.c.value)).scalar_one() == "baseline"


def test_transactiontestcase_loads_fixtures_before_each_test(url: str, observer: Engine) -> None:
    seen: list[list[str]] = []

    class Cases(dbu.TransactionTestCase):
        database_url = url
        database_setup = setup_schema
        fixtures = ("people.json",)
        fixtures_dir = DATA

        def test_a(self) -> None:
            seen.append(names(self.db))
            seen.append([str(count_people(observer))])  # committed: visible elsewhere
            self.db.execute(people.delete().where(people.c.id == 1))
            self.db.commit()

        def test_b(self) -> None:
            seen.append(names(self.db))

    assert_passed(run(Cases), 2)
    assert seen == [["Ann", "Ben"], ["2"], ["Ann", "Ben"]]
    assert count_people(observer) == 0


def test_two_classes_on_one_database_prepare_it_once(url: str) -> None:
    calls: list[str] = []

    def counted_setup(conn: Connection) -> None:
        calls.append("setup")
        setup_schema(conn)

    class First(dbu.TestCase):
        database_url = url
        database_setup = counted_setup

        def test_it(self) -> None:
            self.db.execute(insert(people).values(id=1, name="Ann"))

    class Second(dbu.TransactionTestCase):
        database_url = url
        database_setup = counted_setup

        def test_it(self) -> None:
            assert names(self.db) == []

    assert_passed(run(First, Second, First), 3)
    assert calls == ["setup"]


# --------------------------------------------------------------------------- skipping
def test_skip_decorators_follow_the_databases_capabilities(url: str, backend: str) -> None:
    ran: list[str] = []

    @dbu.skipUnlessDBFeature("transactional_ddl")
    class NeedsTransactionalDDL(dbu.TestCase):
        database_url = url
        database_setup = setup_schema

        def test_it(self) -> None:
            ran.append("class-unless")

    class Methods(dbu.TestCase):
        database_url = url
        database_setup = setup_schema

        @dbu.skipIfDBFeature("transactional_ddl")
        def test_if(self) -> None:
            ran.append("method-if")

        @dbu.skipUnlessDBFeature("savepoints", "transactional_ddl")
        def test_unless(self) -> None:
            ran.append("method-unless")

    result = run(NeedsTransactionalDDL, Methods)
    assert not result.errors
    assert not result.failures
    has_ddl = backend != "mysql"  # MySQL/MariaDB DDL commits implicitly
    assert get_dialect(parse_url(url).backend).capabilities.transactional_ddl is has_ddl
    expected = ["class-unless", "method-unless"] if has_ddl else ["method-if"]
    assert sorted(ran) == expected
    assert len(result.skipped) == (1 if has_ddl else 2)
    assert all("transactional_ddl" in why for _, why in result.skipped)


def test_unknown_feature_name_is_refused_when_decorating() -> None:
    with pytest.raises(ConfigurationError) as info:
        dbu.skipUnlessDBFeature("transactional_dll")
    message = str(info.value)
    assert "'transactional_dll'" in message
    assert "transactional_ddl" in message.split("Known features", 1)[1]


# --------------------------------------------------------------------------- async
def test_async_testcase_rolls_back_each_test(url: str, observer: Engine) -> None:
    seen: dict[str, Any] = {}

    class Cases(dbu.AsyncTestCase):
        database_url = url
        database_setup = setup_schema
        fixtures = ("people.json",)
        fixtures_dir = DATA

        async def test_a_writes(self) -> None:
            await self.db.execute(insert(people).values(id=3, name="Cy"))
            session = self.session()
            session.add(Person(id=4, name="Di"))
            await session.commit()
            result = await self.db.execute(select(people.c.name).order_by(people.c.name))
            seen["a"] = list(result.scalars())

        async def test_b_sees_only_fixtures(self) -> None:
            result = await self.db.execute(select(people.c.name).order_by(people.c.name))
            seen["b"] = list(result.scalars())

        @dbu.skipIfDBFeature("savepoints")
        async def test_c_skipped_everywhere(self) -> None:
            seen["c"] = "ran"

    result = run(Cases)
    assert_passed(result, 3)
    assert len(result.skipped) == 1
    assert seen == {"a": ["Ann", "Ben", "Cy", "Di"], "b": ["Ann", "Ben"]}
    assert count_people(observer) == 0


# --------------------------------------------------------------------------- under pytest
def test_cases_run_under_pytest_in_random_order(pytester: pytest.Pytester, tmp_path: Path) -> None:
    database = tmp_path / "pytest_run_test.db"
    pytester.makepyfile(
        test_inner=f"""
        from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

        import dbrewind.unittest as dbu

        metadata = MetaData()
        people = Table(
            "people", metadata, Column("id", Integer, primary_key=True), Column("name", String(50))
        )

        def count(conn):
            return conn.execute(select(func.count()).select_from(people)).scalar_one()

        class Rolled(dbu.TestCase):
            database_url = "sqlite:///{database}"
            database_setup = metadata.create_all

            @classmethod
            def setUpTestData(cls):
                cls.db_class.execute(insert(people).values(name="class row"))

        class Committed(dbu.TransactionTestCase):
            database_url = "sqlite:///{database}"
            database_setup = metadata.create_all

        for number in range(6):
            def rolled(self):
                assert count(self.db) == 1
                self.db.execute(insert(people).values(name="test row"))

            def committed(self):
                assert count(self.db) == 0
                self.db.execute(insert(people).values(name="test row"))
                self.db.commit()

            setattr(Rolled, f"test_rolled_{{number}}", rolled)
            setattr(Committed, f"test_committed_{{number}}", committed)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=12)


def test_commits_through_the_engine_alone_are_undone_before_the_next_test(url: str) -> None:
    seen: dict[str, Any] = {}

    class Cases(dbu.TestCase):
        database_url = url
        database_setup = setup_schema

        @classmethod
        def setUpTestData(cls) -> None:
            cls.db_class.execute(insert(people).values(id=1, name="Ann"))

        def test_a_commits_on_other_connections_only(self) -> None:
            with self.database_engine.begin() as conn:
                conn.execute(insert(people).values(id=2, name="Bob"))
            with Session(self.database_engine) as session:
                session.add(Person(id=3, name="Cy"))
                session.commit()

        def test_b_database_error_then_more_work(self) -> None:
            seen["b_start"] = names(self.db)
            with pytest.raises(IntegrityError), self.database_engine.begin() as conn:
                conn.execute(insert(people).values(id=1, name="duplicate"))
            self.db.execute(insert(people).values(id=4, name="Di"))
            seen["b_end"] = names(self.db)

        def test_c_sees_only_the_class_data(self) -> None:
            seen["c"] = names(self.db)

    assert_passed(run(Cases), 3)
    assert seen == {"b_start": ["Ann"], "b_end": ["Ann", "Di"], "c": ["Ann"]}


@pytest.mark.backends("postgresql", "mysql")
def test_writes_that_escape_the_sandbox_are_reported_and_rewound(
    url: str, observer: Engine
) -> None:
    class Cases(dbu.TestCase):
        database_url = url
        database_setup = setup_schema

        def test_escapes(self) -> None:
            with observer.begin() as conn:  # an engine the sandbox does not route
                conn.execute(insert(people).values(id=9, name="Escaped"))

    assert_passed(run(Cases), 1)
    assert Cases.leaked is not None
    assert [key.rpartition(".")[2] for key in Cases.leaked.tables] == ["people"]
    assert count_people(observer) == 0


def test_the_class_engine_is_the_one_routed_into_the_sandbox(
    url: str, db_url: URL, observer: Engine
) -> None:
    app_engine = create_engine(db_url)  # what the application under test uses
    seen: dict[str, Any] = {}

    class ByUrl(dbu.TestCase):
        database_url = url
        database_setup = setup_schema

        def test_it(self) -> None:
            seen["by_url_engine_is_app_engine"] = self.database_engine is app_engine

    class ByEngine(dbu.TestCase):
        engine = app_engine
        database_setup = setup_schema

        def test_a_app_commits(self) -> None:
            with app_engine.begin() as conn:
                conn.execute(insert(people).values(id=1, name="App"))
            seen["a"] = names(self.db)

        def test_b_rolled_back(self) -> None:
            seen["b"] = names(self.db)

    try:
        assert_passed(run(ByUrl, ByEngine), 3)
    finally:
        app_engine.dispose()
    assert seen == {"by_url_engine_is_app_engine": False, "a": ["App"], "b": []}
    assert count_people(observer) == 0


# --------------------------------------------------------------------------- reset_sequences
_counted = MetaData()
_tally = Table(
    "tally",
    _counted,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(20), nullable=False),
    sqlite_autoincrement=True,
)


def _tally_setup(conn: Connection) -> None:
    _counted.create_all(conn)


@pytest.mark.parametrize("asked", [None, True, False], ids=["default", "true", "false"])
def test_transactiontestcase_reset_sequences_restarts_ids_as_asked(
    url: str, backend: str, asked: bool | None
) -> None:
    ids: list[int] = []

    class Cases(dbu.TransactionTestCase):
        database_url = url
        database_setup = _tally_setup
        reset_sequences = asked

        def _commit_one(self) -> None:
            new = self.db.execute(insert(_tally).values(note="x")).inserted_primary_key
            self.db.commit()
            ids.append(int(new[0]))

        def test_a(self) -> None:
            self._commit_one()

        def test_b(self) -> None:
            self._commit_one()

        def test_c(self) -> None:
            self._commit_one()

    assert_passed(run(Cases), 3)
    # None: the database's setting, auto: restart on PostgreSQL and SQLite, not on MySQL
    restarts = asked is True or (asked is None and backend != "mysql")
    assert ids == ([1, 1, 1] if restarts else [1, 2, 3])
