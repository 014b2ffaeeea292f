"""The factories on peewee models: the "session" is a peewee database.

``create()`` saves through the database given as ``session=``, else the model's
own (``Model._meta.database``). A peewee-async database (``AioDatabase``) makes
``create``/``create_many`` return awaitables, saved through its ``aio_`` methods.

A batch is saved one model class at a time, as one multi-row ``INSERT ..
RETURNING <key>`` where the database has it (PostgreSQL, SQLite 3.35+, MariaDB
10.5+); the keys come back in insertion order and are set on the models. MySQL
has no ``RETURNING``: one ``INSERT`` per row, each key read from the cursor. A
foreign key takes a saved row, so parents are saved before their children are
built: ``PostFactory.create_many(100)`` sends one batch of authors, then one of
posts.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence
from typing import Any

from ..dialects.mysql import VERSION_SQL, takes_returning
from ..exceptions import ConfigurationError
from ._adapter import Adapter, AsyncStore, Link, Plan, Store

__all__ = ["PEEWEE", "AsyncPeeweeStore", "PeeweeAdapter", "PeeweeStore"]


def _peewee() -> Any:
    return sys.modules["peewee"]


def _is_aio(database: Any) -> bool:
    aio = sys.modules.get("peewee_async.databases")
    return aio is not None and isinstance(database, aio.AioDatabase)


class PeeweeAdapter(Adapter):
    """peewee models: ``ForeignKeyField``s, saved through the model's database."""

    def _names(self, model: type[Any]) -> dict[str, Any]:
        fields = model._meta.fields
        names = dict(fields)
        for field in fields.values():
            if isinstance(field, _peewee().ForeignKeyField):
                names[field.object_id_name] = field
        return names

    def describe_attributes(self, model: type[Any]) -> list[str]:
        return sorted(self._names(model))

    def has_attribute(self, model: type[Any], key: str) -> bool:
        return key in self._names(model)

    def link_for_key(self, model: type[Any], key: str) -> Link:
        field = model._meta.fields.get(key)
        if isinstance(field, _peewee().ForeignKeyField):
            return Link(key, saved_first=True)
        if key in self._names(model):  # author_id: the key itself
            return Link(key, by_key=True, saved_first=True)
        return Link(key)

    def links_to(self, model: type[Any], target: type[Any]) -> list[Link]:
        return [
            Link(field.name, saved_first=True)
            for field in model._meta.sorted_fields
            if isinstance(field, _peewee().ForeignKeyField) and issubclass(target, field.rel_model)
        ]

    def names_of(self, model: type[Any], link: Link) -> set[str]:
        field = model._meta.fields.get(link.key)
        if isinstance(field, _peewee().ForeignKeyField):
            return {link.key, field.object_id_name}
        return {link.key}

    def primary_key(self, instance: Any) -> Any:
        return instance._pk

    def add_to_collection(self, parent: Any, key: str, children: Sequence[Any]) -> None:
        raise AssertionError("peewee models have no collections")  # never offered

    def store_for(self, model: type[Any], session: Any, what: str) -> Store | AsyncStore:
        if session is None:
            session = model._meta.database
            if session is None:
                raise ConfigurationError(
                    f"{what}: {model.__name__} has no database: bind it "
                    f"(database.bind([{model.__name__}])) or pass session=<peewee database>."
                )
        if not isinstance(session, _peewee().Database):
            raise ConfigurationError(
                f"{what}: {model.__name__} is a peewee model; it saves through a peewee "
                f"database, not {type(session).__name__}. Leave session out (the model's own "
                "database) or pass session=<peewee Database>."
            )
        if _is_aio(session):
            return AsyncPeeweeStore(session)
        return PeeweeStore(session)


PEEWEE = PeeweeAdapter()


# --------------------------------------------------------------- statements
_returning: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
"""Per MySQL-family database: whether its server takes INSERT .. RETURNING (MariaDB 10.5+)."""


def _groups(instances: list[Any]) -> list[tuple[type[Any], list[str], list[Any]]]:
    """The batch by model class and by the fields set, in first-seen order."""
    groups: dict[tuple[type[Any], tuple[str, ...]], list[Any]] = {}
    for instance in instances:
        meta = instance._meta
        names = tuple(
            f.name
            for f in meta.sorted_fields
            if f.name in instance.__data__
            and not (f is meta.primary_key and instance.__data__[f.name] is None)
        )
        groups.setdefault((type(instance), names), []).append(instance)
    return [(model, list(names), members) for (model, names), members in groups.items()]


def _needs_keys(model: type[Any], names: list[str]) -> bool:
    pk = model._meta.primary_key
    return pk is not False and pk.name not in names


def _insert_sql(
    database: Any, model: type[Any], names: list[str], rows: list[Any], returning: bool
) -> tuple[str, Any]:
    fields = [model._meta.fields[name] for name in names]
    values = [[row.__data__[name] for name in names] for row in rows]
    query = model.insert_many(values, fields=fields)
    if returning:
        query = query.returning(model._meta.primary_key)
    sql, params = database.get_sql_context().sql(query).query()
    return sql, params


def _set_keys(model: type[Any], rows: list[Any], keys: list[Any]) -> None:
    pk = model._meta.primary_key
    if all(isinstance(k, int) for k in keys):
        keys = sorted(keys)  # generated in insertion order
    for row, key in zip(rows, keys, strict=True):
        setattr(row, pk.name, key)


def _saved(rows: list[Any]) -> None:
    for row in rows:
        row._dirty.clear()


class PeeweeStore(Store):
    """Saves each batch through a sync peewee database."""

    def __init__(self, database: Any) -> None:
        self.session = database

    def _has_returning(self) -> bool:
        db = self.session
        if not isinstance(db, _peewee().MySQLDatabase):
            return True
        if db not in _returning:
            _returning[db] = takes_returning(str(db.execute_sql(VERSION_SQL).fetchone()[0]))
        return _returning[db]

    def flush(self, instances: list[Any]) -> None:
        db = self.session
        for model, names, rows in _groups(instances):
            if not _needs_keys(model, names):
                db.execute_sql(*_insert_sql(db, model, names, rows, False))
            elif self._has_returning():
                cursor = db.execute_sql(*_insert_sql(db, model, names, rows, True))
                _set_keys(model, rows, [r[0] for r in cursor.fetchall()])
            else:
                keys = [
                    db.execute_sql(*_insert_sql(db, model, names, [r], False)).lastrowid
                    for r in rows
                ]
                _set_keys(model, rows, keys)
            _saved(rows)


async def _fetchall(database: Any, cursor: Any) -> Any:
    return await cursor.fetchall()


async def _fetchone(database: Any, cursor: Any) -> Any:
    return await cursor.fetchone()


async def _lastrowid(database: Any, cursor: Any) -> Any:
    return cursor.lastrowid


class AsyncPeeweeStore(AsyncStore):
    """Saves each batch through a peewee-async database's ``aio_execute_sql``."""

    def __init__(self, database: Any) -> None:
        self.session = database

    async def _has_returning(self) -> bool:
        db = self.session
        if not isinstance(db, _peewee().MySQLDatabase):
            return True
        if db not in _returning:
            row = await db.aio_execute_sql(VERSION_SQL, fetch_results=_fetchone)
            _returning[db] = takes_returning(str(row[0]))
        return _returning[db]

    async def flush(self, instances: list[Any]) -> None:
        db = self.session
        for model, names, rows in _groups(instances):
            if not _needs_keys(model, names):
                await db.aio_execute_sql(*_insert_sql(db, model, names, rows, False))
            elif await self._has_returning():
                sql, params = _insert_sql(db, model, names, rows, True)
                found = await db.aio_execute_sql(sql, params, fetch_results=_fetchall)
                _set_keys(model, rows, [r[0] for r in found])
            else:
                keys = []
                for row in rows:
                    sql, params = _insert_sql(db, model, names, [row], False)
                    keys.append(await db.aio_execute_sql(sql, params, fetch_results=_lastrowid))
                _set_keys(model, rows, keys)
            _saved(rows)

    async def run(self, plan: Plan) -> Any:
        try:
            batch = next(plan)
            while True:
                await self.flush(batch)
                batch = plan.send(None)
        except StopIteration as done:
            return done.value
