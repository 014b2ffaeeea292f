"""The README's test written with the helpers ("Helpers for test authors"), run as it is
shown, with the models and factories it leaves out, inside the plugin on every backend."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS

for _url in (*SERVER_URLS.values(), "sqlite://"):  # as test_testing_plugin.py does
    make_url(_url).get_dialect().import_dbapi()

README = Path(__file__).resolve().parents[2] / "README.md"

MODELS = """
from datetime import datetime

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


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    buyer: Mapped[User] = relationship()
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class Line(Base):
    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"))
    qty: Mapped[int] = mapped_column(default=1)


def archive(session, order_id):
    session.execute(sa.update(Order).where(Order.id == order_id).values(deleted_at=datetime.now()))
    session.commit()


def setup(conn):
    Base.metadata.create_all(conn)
"""

CONFTEST = """
import pytest
import models


@pytest.fixture(scope="session")
def dbrewind_setup():
    return models.setup
"""

BEFORE = """
from models import Line, Order, User, archive
"""

AFTER = """

class OrderFactory(ModelFactory[Order]):
    __model__ = Order

    @classmethod
    def defaults(cls):
        return {"buyer": UserFactory}


class LineFactory(ModelFactory[Line]):
    __model__ = Line

    @classmethod
    def defaults(cls):
        return {"qty": 1}


def test_the_first_user_of_a_test_is_user1(db_session):
    assert UserFactory.create().email == "user1@test.invalid"
    assert UserFactory.state("admin").create().is_admin
"""


def _example() -> str:
    section = README.read_text().split("\n## Helpers for test authors\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_test_with_the_helpers_runs_as_shown(
    pytester: pytest.Pytester, suite_url: URL
) -> None:
    example = _example()
    assert "def test_archiving_an_order(db_session, db_assert):" in example
    pytester.makepyfile(models=MODELS, conftest=CONFTEST)
    pytester.makepyfile(test_readme=BEFORE + textwrap.dedent(example) + AFTER)
    rendered = suite_url.render_as_string(hide_password=False)
    result = pytester.runpytest_subprocess(
        f"--dbrewind-url={rendered}", "-p", "no:randomly", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
