"""The factories on SQLAlchemy declarative models: links from the mapper, saves by flush.

A batch is added to the session and flushed once: the unit of work sorts it by
dependency and sends each table's rows together where it can match the rows
``RETURNING`` gives back to its objects: on PostgreSQL and MariaDB 10.5+ as
multi-row ``INSERT .. RETURNING`` statements (SQLAlchemy's "insertmanyvalues",
the autoincrementing key as the sentinel). SQLite has ``RETURNING`` but no such
sentinel, so the ORM sends one ``INSERT`` a row there (in-process, no round trip)
unless the model has a sentinel column (``orm_insert_sentinel()``);
MySQL has no ``RETURNING``, and the ORM sends one ``INSERT`` a row to read each new
key from the cursor.

The session: a ``Session`` or ``AsyncSession`` (or a ``scoped_session`` /
``async_scoped_session`` of one), else the running test's
(:func:`dbrewind._test_context.current_session`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import (
    ColumnProperty,
    Mapper,
    RelationshipDirection,
    RelationshipProperty,
    Session,
    scoped_session,
)

from .. import _test_context
from .._asyncio import is_async_session
from ..exceptions import ConfigurationError
from ._adapter import Adapter, AsyncStore, Link, Plan, Store, drive

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["SQLALCHEMY", "SQLAlchemyAdapter", "is_mapped"]


def _mapper(model: type[Any]) -> Mapper[Any] | None:
    try:
        found = sa_inspect(model)
    except NoInspectionAvailable:
        return None
    return found if isinstance(found, Mapper) else None


def is_mapped(model: type[Any]) -> bool:
    """Whether ``model`` is a SQLAlchemy mapped class."""
    return _mapper(model) is not None


def _mapped(model: type[Any]) -> Mapper[Any]:
    found = _mapper(model)
    assert found is not None
    return found


class SQLAlchemyAdapter(Adapter):
    """Mapped classes: relationships and foreign-key columns, saved through a Session."""

    def describe_attributes(self, model: type[Any]) -> list[str]:
        return sorted(_mapped(model).attrs.keys())

    def has_attribute(self, model: type[Any], key: str) -> bool:
        # the rule of the declarative constructor
        return hasattr(model, key)

    def link_for_key(self, model: type[Any], key: str) -> Link:
        prop = _mapped(model).attrs.get(key)
        if isinstance(prop, ColumnProperty):
            return Link(key, by_key=True, saved_first=True)
        return Link(key)

    def links_to(self, model: type[Any], target: type[Any]) -> list[Link]:
        mapper = _mapped(model)
        links: list[Link] = []
        covered: dict[Any, str] = {}
        for rel in mapper.relationships:
            if rel.direction is RelationshipDirection.MANYTOONE and issubclass(
                target, rel.mapper.class_
            ):
                links.append(Link(rel.key))
                covered.update(dict.fromkeys(rel.local_columns, rel.key))
        target_tables = set(_mapped(target).tables)
        aliases = []
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if not any(fk.column.table in target_tables for fk in column.foreign_keys):
                continue
            if column in covered:  # named, it links through its relationship
                aliases.append(Link(covered[column], alias=prop.key))
            else:
                links.append(Link(prop.key, by_key=True, saved_first=True))
        return links + aliases

    def names_of(self, model: type[Any], link: Link) -> set[str]:
        names = {link.key}
        prop = _mapped(model).attrs.get(link.key)
        if isinstance(prop, RelationshipProperty) and prop.direction is (
            RelationshipDirection.MANYTOONE
        ):
            local = set(prop.local_columns)
            names.update(c.key for c in _mapped(model).column_attrs if c.columns[0] in local)
        return names

    def collections_to(self, model: type[Any], target: type[Any]) -> list[Link]:
        return [
            Link(rel.key, collection=True)
            for rel in _mapped(model).relationships
            if rel.direction is not RelationshipDirection.MANYTOONE
            and rel.uselist
            and issubclass(target, rel.mapper.class_)
        ]

    def primary_key(self, instance: Any) -> Any:
        identity = sa_inspect(instance).identity
        if identity is None:
            return None
        if len(identity) != 1:
            raise ConfigurationError(
                f"cannot assign {instance!r} to a column: it has no single-column primary "
                "key. Assign it through a relationship attribute."
            )
        return identity[0]

    def add_to_collection(self, parent: Any, key: str, children: Sequence[Any]) -> None:
        collection = getattr(parent, key)
        for child in children:
            collection.append(child)

    def store_for(self, model: type[Any], session: Any, what: str) -> Store | AsyncStore:
        if session is None:
            session = _test_context.current_session(what=what)
        session = _unscoped(session)
        if isinstance(session, Session):
            return SessionStore(session)
        if is_async_session(session):
            return AsyncSessionStore(session)
        raise ConfigurationError(
            f"{what} needs a SQLAlchemy Session or AsyncSession to save {model.__name__}, "
            f"got {type(session).__name__}. Pass session=<Session or AsyncSession>, or "
            "leave it out inside a test that uses db_session or async_db_session."
        )


SQLALCHEMY = SQLAlchemyAdapter()


def _unscoped(session: Any) -> Any:
    """The session a ``scoped_session`` or ``async_scoped_session`` stands for."""
    if isinstance(session, scoped_session):
        return session()
    aio = sys.modules.get("sqlalchemy.ext.asyncio")
    if aio is not None and isinstance(session, aio.async_scoped_session):
        return session()
    return session


class SessionStore(Store):
    """Adds each batch to the session and flushes it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def flush(self, instances: list[Any]) -> None:
        self.session.add_all(instances)
        self.session.flush()


class AsyncSessionStore(AsyncStore):
    """The sync store, run in one go through ``AsyncSession.run_sync``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def run(self, plan: Plan) -> Any:
        return await self.session.run_sync(lambda sync: drive(plan, SessionStore(sync)))
