"""Data files that name ORM models: by class name (models=...) or import path, on every backend.

Rows of a model may use its attribute names; they go in through the model's
table, so its Python-side defaults and column types apply.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from dbrewind import parse_url
from dbrewind.data import aload_data, load_data
from dbrewind.exceptions import DataLoadError

__all__: list[str] = []

MODELS = """
import datetime as dt
import enum

from sqlalchemy import JSON, Enum, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Status(enum.Enum):
    ACTIVE = "active"
    BANNED = "banned"


class User(Base):
    __tablename__ = "app_users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email_address: Mapped[str] = mapped_column("email", String(80))
    status: Mapped[Status] = mapped_column(Enum(Status), default=Status.ACTIVE)
    joined: Mapped[dt.datetime] = mapped_column(default=lambda: dt.datetime(2020, 1, 1))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)


class Post(Base):
    __tablename__ = "app_posts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    author_id: Mapped[int] = mapped_column("AuthorId", ForeignKey("app_users.id"))
    title: Mapped[str] = mapped_column(String(80))
"""


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``shopmodels``, a module of mapped classes importable by path."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "shopmodels.py").write_text(textwrap.dedent(MODELS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "shopmodels", raising=False)
    import shopmodels

    return shopmodels


@pytest.fixture
def schema(engine: Engine, backend: str, models: ModuleType) -> Engine:
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _fk_on(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    models.Base.metadata.create_all(engine)
    return engine


def write(folder: Path, name: str, content: str) -> str:
    (folder / name).write_text(textwrap.dedent(content), encoding="utf-8")
    return name


POSTS_FIRST = """
    Post:
      - {id: 10, author_id: 1, title: Hello}
    User:
      - {id: 1, email_address: ann@example.com, status: BANNED}
      - {id: 2, email: ben@example.com, settings: {theme: dark}}
"""


def _users(engine: Engine, models: ModuleType) -> list[Any]:
    with Session(engine) as session:
        users = session.scalars(select(models.User).order_by(models.User.id)).all()
        session.expunge_all()
        return list(users)


def test_class_names_among_models_name_their_tables_in_foreign_key_order(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", POSTS_FIRST)
    with schema.begin() as conn:
        result = load_data(conn, name, base_dir=tmp_path, models=[models.User, models.Post])
    assert list(result.rows) == ["app_users", "app_posts"]
    with Session(schema) as session:
        post = session.get(models.Post, 10)
        assert post is not None
        assert (post.author_id, post.title) == (1, "Hello")


def test_rows_of_a_model_take_attribute_or_column_names_and_its_defaults(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", POSTS_FIRST)
    with schema.begin() as conn:
        load_data(conn, name, base_dir=tmp_path, models=[models.Base])
    ann, ben = _users(schema, models)
    assert (ann.email_address, ann.status) == ("ann@example.com", models.Status.BANNED)
    assert (ben.email_address, ben.status) == ("ben@example.com", models.Status.ACTIVE)
    assert ann.joined == ben.joined == dt.datetime(2020, 1, 1)  # the model's default=
    assert ann.settings == {}  # default=dict, stored as JSON
    assert ben.settings == {"theme": "dark"}  # serialised by the model's JSON type


@pytest.mark.parametrize(
    "how", ["classes", "base", "registry", "metadata-with-table-names", "import-path"]
)
def test_every_way_of_naming_models_loads_the_same_rows(
    schema: Engine, models: ModuleType, tmp_path: Path, how: str
) -> None:
    if how == "metadata-with-table-names":
        content = POSTS_FIRST.replace("Post:", "app_posts:").replace("User:", "app_users:")
        content = content.replace("author_id:", "AuthorId:").replace("email_address:", "email:")
    elif how == "import-path":
        content = POSTS_FIRST.replace("Post:", "shopmodels:Post:").replace(
            "User:", "shopmodels:User:"
        )
        content = content.replace("shopmodels:Post:", '"shopmodels:Post":').replace(
            "shopmodels:User:", '"shopmodels:User":'
        )
    else:
        content = POSTS_FIRST
    chosen = {
        "classes": [models.User, models.Post],
        "base": [models.Base],
        "registry": [models.Base.registry],
        "metadata-with-table-names": [models.Base.metadata],
        "import-path": [],
    }[how]
    name = write(tmp_path, "rows.yaml", content)
    with schema.begin() as conn:
        result = load_data(conn, name, base_dir=tmp_path, models=chosen)
    assert result.rows == {"app_users": 2, "app_posts": 1}
    ann, ben = _users(schema, models)
    assert ann.joined == dt.datetime(2020, 1, 1)
    assert ben.settings == {"theme": "dark"}


def test_plain_table_names_still_load_beside_models(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(
        tmp_path,
        "rows.json",
        json.dumps(
            {
                "app_posts": [{"id": 1, "AuthorId": 1, "title": "t"}],
                "User": [{"id": 1, "email": "e"}],
            }
        ),
    )
    with schema.begin() as conn:
        load_data(conn, name, base_dir=tmp_path, models=[models.User])
    with schema.connect() as conn:
        assert conn.execute(select(models.Post.title)).scalars().all() == ["t"]


@pytest.mark.asyncio
async def test_aload_data_takes_models(schema: Engine, models: ModuleType, tmp_path: Path) -> None:
    name = write(tmp_path, "rows.yaml", POSTS_FIRST)
    async_engine = create_async_engine(parse_url(schema.url).async_url())
    try:
        async with async_engine.begin() as conn:
            result = await aload_data(conn, name, base_dir=tmp_path, models=[models.Base])
    finally:
        await async_engine.dispose()
    assert result.rows == {"app_users": 2, "app_posts": 1}
    assert _users(schema, models)[1].settings == {"theme": "dark"}


# --------------------------------------------------------------------------- errors
def test_a_misspelt_model_is_named_with_a_suggestion(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", "Usr:\n  - {id: 1}\n")
    with schema.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, name, base_dir=tmp_path, models=[models.Base])
    assert "names table 'Usr'" in str(info.value)
    assert "Did you mean 'User'?" in str(info.value)


def test_an_unknown_attribute_lists_the_columns_and_attributes(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", "User:\n  - {id: 1, email_adress: a@b.c}\n")
    with schema.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, name, base_dir=tmp_path, models=[models.User])
    message = str(info.value)
    assert "rows.yaml', row 0 (line 2): table 'User' has no column 'email_adress'" in message
    assert "Did you mean 'email_address'?" in message


def test_an_import_path_that_does_not_import_is_named(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", '"shopmodels:Usr":\n  - {id: 1}\n')
    with schema.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, name, base_dir=tmp_path)
    message = str(info.value)
    assert "rows.yaml' names model 'shopmodels:Usr', which cannot be imported" in message


def test_an_import_path_to_something_else_than_a_model_is_refused(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", '"shopmodels:Status":\n  - {id: 1}\n')
    with schema.connect() as conn, pytest.raises(DataLoadError, match="not a mapped class"):
        load_data(conn, name, base_dir=tmp_path)


def test_models_refuses_what_is_not_a_model(schema: Engine, tmp_path: Path) -> None:
    name = write(tmp_path, "rows.yaml", "app_users: []\n")
    with schema.connect() as conn, pytest.raises(DataLoadError, match="models= takes"):
        load_data(conn, name, base_dir=tmp_path, models=[enum.Enum])


def test_a_value_the_models_enum_does_not_know_is_named(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", "User:\n  - {id: 1, email: a@b.c, status: GONE}\n")
    with schema.connect() as conn, pytest.raises(DataLoadError) as info:
        load_data(conn, name, base_dir=tmp_path, models=[models.User])
    message = str(info.value)
    assert "rows.yaml', row 0 (line 2) of table 'User', column 'status'" in message
    assert "'GONE' is not one of ACTIVE, BANNED" in message


def test_an_enum_takes_its_python_values_as_well_as_its_names(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    name = write(tmp_path, "rows.yaml", "User:\n  - {id: 1, email: a@b.c, status: banned}\n")
    with schema.begin() as conn:
        load_data(conn, name, base_dir=tmp_path, models=[models.User])
    assert _users(schema, models)[0].status == models.Status.BANNED


def test_an_import_path_through_a_package_names_its_model(
    schema: Engine, models: ModuleType, tmp_path: Path
) -> None:
    package = tmp_path / "src" / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tables.py").write_text("from shopmodels import User\n")
    name = write(tmp_path, "rows.yaml", '"shop.tables:User":\n  - {id: 1, email: a@b.c}\n')
    try:
        with schema.begin() as conn:
            result = load_data(conn, name, base_dir=tmp_path)
    finally:
        sys.modules.pop("shop.tables", None)
        sys.modules.pop("shop", None)
    assert result.rows == {"app_users": 1}
