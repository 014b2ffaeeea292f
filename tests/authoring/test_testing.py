"""DatabaseTestCase on real databases, with sync and async sessions."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from sqlalchemy import ForeignKey, String, select, text, update
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dbrewind._url import parse_url
from dbrewind.exceptions import ConfigurationError
from dbrewind.testing import AsyncDatabaseTestCase, DatabaseTestCase, SyncDatabaseTestCase


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"  # a reserved word

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class OrderItem(Base):
    __tablename__ = "Order Items"  # mixed case and a space

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    order: Mapped[str] = mapped_column("Order", String(50))  # reserved, mixed case


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s


@pytest.fixture
def db(session: Session) -> SyncDatabaseTestCase:
    return DatabaseTestCase(session)


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


@pytest.fixture
def adb(async_session: AsyncSession) -> AsyncDatabaseTestCase:
    return DatabaseTestCase(async_session)


def alice() -> User:
    return User(name="Alice", email="alice@example.com")


# ---------------------------------------------------------------- sync session


def test_database_test_case_picks_the_flavour_from_the_session(
    session: Session, async_session: AsyncSession
) -> None:
    assert type(DatabaseTestCase(session)) is SyncDatabaseTestCase
    assert type(DatabaseTestCase(async_session)) is AsyncDatabaseTestCase
    with pytest.raises(ConfigurationError, match="AsyncSession"):
        SyncDatabaseTestCase(async_session)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="Session or AsyncSession"):
        DatabaseTestCase("not a session")  # type: ignore[call-overload]


def test_seed_flushes_instances_and_gives_them_ids(db: SyncDatabaseTestCase) -> None:
    users = db.seed([alice(), User(name="Bob", email="bob@example.com")])
    assert all(u.id is not None for u in users)
    db.assert_database_count("user", 2)


def test_seed_rejects_a_single_mapping(db: SyncDatabaseTestCase) -> None:
    with pytest.raises(ConfigurationError, match="iterable of model instances"):
        db.seed({"name": "Alice"})


def test_assert_database_has_passes_by_name_by_model_and_by_table(
    db: SyncDatabaseTestCase,
) -> None:
    db.seed([alice()])
    db.assert_database_has("user", {"email": "alice@example.com", "deleted_at": None})
    db.assert_database_has(User, {"name": "Alice"})
    db.assert_database_has(User.__table__, {"name": "Alice"})


def test_assert_database_has_shows_the_closest_rows_on_failure(db: SyncDatabaseTestCase) -> None:
    db.seed([alice(), User(name="Bob", email="bob@example.com")])
    with pytest.raises(AssertionError) as info:
        db.assert_database_has("user", {"name": "Alice", "email": "alicia@example.com"})
    message = str(info.value)
    assert "no row matching {name: 'Alice', email: 'alicia@example.com'}" in message
    assert "Found 2 row(s)" in message
    # Alice matches one of two columns, so she is listed first, with what differs.
    first = message.split("closest")[1]
    assert first.index("'Alice'") < first.index("'Bob'")
    assert "matches 1 of 2; differs: email: 'alice@example.com'" in message


def test_assert_database_has_says_when_the_table_is_empty(db: SyncDatabaseTestCase) -> None:
    with pytest.raises(AssertionError, match="The table is empty"):
        db.assert_database_has(User, {"name": "Nobody"})


def test_assert_database_has_sees_pending_changes_of_the_session(
    db: SyncDatabaseTestCase, session: Session
) -> None:
    session.add(alice())  # not flushed: autoflush makes the assertion see it
    db.assert_database_has("user", {"name": "Alice"})


def test_assert_database_missing_lists_the_rows_that_match(db: SyncDatabaseTestCase) -> None:
    db.seed([alice()])
    db.assert_database_missing("user", {"name": "Bob"})
    with pytest.raises(AssertionError, match=r"1 row\(s\) matching \{name: 'Alice'\}") as info:
        db.assert_database_missing("user", {"name": "Alice"})
    assert "alice@example.com" in str(info.value)


def test_assert_database_count_with_where_reports_the_actual_count(
    db: SyncDatabaseTestCase,
) -> None:
    db.seed([alice(), User(name="Alice", email="a2@example.com"), User(name="Bob", email="b@x")])
    db.assert_database_count(User, 3)
    db.assert_database_count(User, 2, where={"name": "Alice"})
    expected = r"has 1 row\(s\) matching \{name: 'Bob'\}, expected 2"
    with pytest.raises(AssertionError, match=expected):
        db.assert_database_count(User, 2, where={"name": "Bob"})


def test_assert_database_empty_shows_what_is_there(db: SyncDatabaseTestCase) -> None:
    db.assert_database_empty("user")
    db.seed([alice()])
    with pytest.raises(AssertionError, match="expected 0") as info:
        db.assert_database_empty("user")
    assert "'Alice'" in str(info.value)


def test_tables_with_mixed_case_spaces_and_reserved_words_work_by_name(
    db: SyncDatabaseTestCase,
) -> None:
    (user,) = db.seed([alice()])
    db.seed([OrderItem(user_id=user.id, order="first")])
    db.assert_database_has("Order Items", {"Order": "first", "user_id": user.id})
    db.assert_database_count(OrderItem, 1, where={"order": "first"})  # attribute name
    db.assert_database_missing("Order Items", {"Order": "second"})


def test_unknown_table_and_column_name_the_fix(db: SyncDatabaseTestCase) -> None:
    with pytest.raises(ConfigurationError, match="Table 'nope' does not exist"):
        db.assert_database_count("nope", 0)
    with pytest.raises(ConfigurationError, match=r"no column 'emial'.*id, name, email, deleted_at"):
        db.assert_database_has("user", {"emial": "x"})


def test_model_exists_and_missing_follow_the_row(
    db: SyncDatabaseTestCase, session: Session
) -> None:
    (user,) = db.seed([alice()])
    db.assert_model_exists(user)
    with pytest.raises(AssertionError, match=r"Expected User\(id=\d+\) to be missing"):
        db.assert_model_missing(user)
    session.delete(user)
    session.flush()
    db.assert_model_missing(user)
    with pytest.raises(AssertionError, match=r"User\(id=\d+\) to exist, but table 'user'"):
        db.assert_model_exists(user)


def test_model_assertions_refuse_unflushed_and_unmapped_objects(
    db: SyncDatabaseTestCase, session: Session
) -> None:
    session.autoflush = False
    with pytest.raises(ConfigurationError, match="never flushed"):
        db.assert_model_exists(alice())
    with pytest.raises(ConfigurationError, match="not an instance of a mapped ORM class"):
        db.assert_model_exists(object())


def test_soft_delete_assertions_read_the_row(db: SyncDatabaseTestCase, session: Session) -> None:
    (user,) = db.seed([alice()])
    db.assert_not_soft_deleted(user)
    with pytest.raises(AssertionError, match="to be soft-deleted, but deleted_at is NULL"):
        db.assert_soft_deleted(user)
    # Written behind the ORM's back: the assertion reads the database, not the object.
    session.execute(
        update(User).where(User.id == user.id).values(deleted_at=dt.datetime(2024, 1, 2))
    )
    db.assert_soft_deleted(user)
    with pytest.raises(AssertionError, match="not to be soft-deleted, but deleted_at is"):
        db.assert_not_soft_deleted(user)
    session.delete(user)
    session.flush()
    with pytest.raises(AssertionError, match="hard-deleted"):
        db.assert_soft_deleted(user)
    with pytest.raises(ConfigurationError, match="no column or attribute 'removed_at'"):
        db.assert_soft_deleted(user, column="removed_at")


def test_refresh_reloads_values_changed_in_the_database(
    db: SyncDatabaseTestCase, session: Session
) -> None:
    (user,) = db.seed([alice()])
    session.execute(text("UPDATE {} SET name = 'Changed'".format(_q(session, "user"))))
    assert db.refresh(user).name == "Changed"


def test_assert_num_queries_counts_statements_on_the_session(
    db: SyncDatabaseTestCase, session: Session
) -> None:
    db.seed([alice()])
    with db.assert_num_queries(2) as counter:
        session.execute(select(User)).all()
        session.execute(select(User.id)).all()
    assert counter.count == 2

    def two_queries_where_one_is_expected() -> None:
        with db.assert_num_queries(1):
            session.execute(select(User)).all()
            session.execute(select(OrderItem)).all()

    with pytest.raises(AssertionError, match=r"Expected 1 query, 2 ran:\n  1\. SELECT") as info:
        two_queries_where_one_is_expected()
    assert "Order Items" in str(info.value)


def test_assert_num_queries_stops_counting_after_the_block(
    db: SyncDatabaseTestCase, session: Session
) -> None:
    with db.assert_num_queries(0) as counter:
        pass
    session.execute(select(User)).all()
    assert counter.count == 0


def _q(session: Session, name: str) -> str:
    return session.get_bind().dialect.identifier_preparer.quote_identifier(name)


# --------------------------------------------------------------- async session


@pytest.mark.asyncio
async def test_async_seed_and_assertions(adb: AsyncDatabaseTestCase) -> None:
    users = await adb.seed([alice(), User(name="Bob", email="bob@example.com")])
    assert all(u.id is not None for u in users)
    await adb.assert_database_has("user", {"email": "alice@example.com"})
    await adb.assert_database_count(User, 1, where={"name": "Bob"})
    await adb.assert_database_missing(User, {"name": "Carol"})
    await adb.assert_model_exists(users[0])
    with pytest.raises(AssertionError, match=r"matches 1 of 2; differs: email: 'bob@example\.com'"):
        await adb.assert_database_has(User, {"name": "Bob", "email": "robert@example.com"})


@pytest.mark.asyncio
async def test_async_soft_delete_missing_and_refresh(
    adb: AsyncDatabaseTestCase, async_session: AsyncSession
) -> None:
    (user,) = await adb.seed([alice()])
    await adb.assert_not_soft_deleted(user)
    await async_session.execute(
        update(User).where(User.id == user.id).values(deleted_at=dt.datetime(2024, 5, 6))
    )
    await adb.assert_soft_deleted(user)
    refreshed = await adb.refresh(user)
    assert refreshed.deleted_at == dt.datetime(2024, 5, 6)
    await async_session.delete(user)
    await async_session.flush()
    await adb.assert_model_missing(user)
    await adb.assert_database_empty("user")
    with pytest.raises(AssertionError, match="to exist"):
        await adb.assert_model_exists(user)


@pytest.mark.asyncio
async def test_async_assert_num_queries(
    adb: AsyncDatabaseTestCase, async_session: AsyncSession
) -> None:
    await adb.seed([alice()])
    async with adb.assert_num_queries(1):
        (await async_session.execute(select(User))).all()
    with pytest.raises(AssertionError, match="Expected 0 queries, 1 ran"):
        async with adb.assert_num_queries(0):
            (await async_session.execute(select(User.id))).all()


# --------------------------------------------------------- reports in pytest


@pytest.mark.backends("sqlite")
def test_failure_report_hides_the_helper_frames(backend: str, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from sqlalchemy import String, create_engine
        from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
        from dbrewind.testing import DatabaseTestCase

        class Base(DeclarativeBase):
            pass

        class Thing(Base):
            __tablename__ = "thing"
            id: Mapped[int] = mapped_column(primary_key=True)
            label: Mapped[str] = mapped_column(String(20))

        def test_it():
            engine = create_engine("sqlite://")
            Base.metadata.create_all(engine)
            with Session(engine) as session:
                db = DatabaseTestCase(session)
                db.seed([Thing(label="red")])
                db.assert_database_has(Thing, {"label": "blue"})
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:dbrewind", "-p", "no:asyncio")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "{id: 1, label: 'red'}" in output
    assert "db.assert_database_has(Thing" in output
    assert "testing.py" not in output
