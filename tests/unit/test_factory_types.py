"""What mypy (strict) says the factories return: the model without a session or with a
``Session``, awaitables with an ``AsyncSession`` (seed 002's ``await
UserFactory.create_many(5, session=session)``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[2]

USES = """
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from typing_extensions import assert_type

from dbrewind.factories import CreatedList, ModelFactory


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)


class UserFactory(ModelFactory[User]):
    __model__ = User


def in_a_sync_test(session: Session) -> None:
    order = UserFactory.create()  # the running test's db_session
    assert_type(order, User)
    assert_type(order.id, int)
    assert_type(UserFactory.state("admin").create(), User)
    assert_type(UserFactory.create(session=session), User)
    assert_type(UserFactory.create_many(2), CreatedList[User])
    assert_type(UserFactory.builder().create_many(2, session=session), CreatedList[User])


async def in_an_async_test(session: AsyncSession) -> None:
    assert_type(await UserFactory.create(session=session), User)
    users = await UserFactory.create_many(5, session=session)  # seed 002's line
    assert_type(users, list[User])
    assert_type(await UserFactory.acreate(), User)
    assert_type(await UserFactory.create_many(5), CreatedList[User])
"""


def test_create_without_a_session_is_typed_as_the_model(tmp_path: Path) -> None:
    module = tmp_path / "uses.py"
    module.write_text(textwrap.dedent(USES))
    out, err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--no-error-summary",
            str(module),
        ]
    )
    assert status == 0, out + err
