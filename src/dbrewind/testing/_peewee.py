"""The checks on peewee: the statements (:class:`PeeweeStore`) and the runners that send them
through a peewee ``Database`` (:func:`run`) or a peewee-async one (:func:`arun`).

Statements are peewee queries rendered by the database's own SQL context and sent
through ``execute_sql`` / ``aio_execute_sql``, so inside dbrewind's peewee sandboxes
they run in the test's transaction like the code under test's. Values read from a
model's table are decoded by its fields (``python_value``); a table named by string
gives the driver's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import peewee

from ..exceptions import ConfigurationError
from ._core import Check, Column, Fetch, Flush, Identity, Reflect, Rows, Store, TableInfo

__all__ = ["PeeweeStore", "arun", "run", "table_info"]

T = TypeVar("T")


def _is_model(target: object) -> bool:
    return isinstance(target, type) and issubclass(target, peewee.Model)


def _model_info(model: type[peewee.Model]) -> TableInfo:
    meta = model._meta
    fields = list(meta.sorted_fields)
    columns = tuple(
        Column(
            f.column_name,
            f,
            knows_uuids=isinstance(f, (peewee.UUIDField, peewee.BinaryUUIDField)),
        )
        for f in fields
    )
    aliases = {f.name: f.column_name for f in fields if f.name != f.column_name}
    name = f"{meta.schema}.{meta.table_name}" if meta.schema else meta.table_name
    return TableInfo(name, columns, _key_of(model), model, model, aliases)


def _key_of(model: type[peewee.Model]) -> tuple[str, ...]:
    meta = model._meta
    pk = meta.primary_key
    if isinstance(pk, peewee.CompositeKey):
        return tuple(meta.fields[name].column_name for name in pk.field_names)
    if pk is None or pk is False:
        return ()
    return (pk.column_name,)


def table_info(name: str, columns: Sequence[str]) -> TableInfo:
    """A table named by string (``audit.events`` names a schema), with the columns found."""
    schema, _, bare = name.rpartition(".")
    table = peewee.Table(bare, schema=schema or None)
    return TableInfo(name, tuple(Column(c, getattr(table.c, c)) for c in columns), (), table)


class PeeweeStore(Store):
    """Statements as peewee queries; tables by name looked up once per helper."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.reflected: dict[str, TableInfo] = {}

    def table(self, target: Any) -> TableInfo | Reflect:
        if isinstance(target, str):
            return self.reflected.get(target) or Reflect(target)
        if _is_model(target):
            return _model_info(target)
        raise ConfigurationError(
            f"{target!r} is neither a table name nor a peewee Model class. "
            "Pass e.g. 'users' or User."
        )

    def equals(self, column: Column, value: Any) -> Any:
        handle = column.handle
        if not isinstance(value, list):
            return handle == value
        if isinstance(handle, peewee.Field):
            # spellings the field cannot take (an IntEnum member's name) are left out
            value = [v for v in value if _takes(handle, v)]
        return handle.in_(value)

    def _order(self, table: TableInfo) -> list[Any]:
        names = list(table.key) or [table.columns[0].name]
        return [table.column(n).handle for n in names]

    def count(self, table: TableInfo, conds: Sequence[Any]) -> Any:
        query = table.handle.select(peewee.fn.COUNT(peewee.SQL("*")).alias("n"))
        return query.where(*conds) if conds else query

    def select(
        self, table: TableInfo, conds: Sequence[Any], limit: int | None, rank: Sequence[Any] = ()
    ) -> Any:
        flags = [peewee.Case(None, [(c, 1)], 0) for c in rank]
        columns = [c.handle for c in table.columns]
        labels = [f.alias(f"dbrewind_m{i}") for i, f in enumerate(flags)]
        query = table.handle.select(*columns, *labels)
        if conds:
            query = query.where(*conds)
        order: list[Any] = []
        if flags:
            total: Any = flags[0]
            for flag in flags[1:]:
                total = total + flag
            order.append(total.desc())
        query = query.order_by(*order, *self._order(table))
        return query if limit is None else query.limit(limit)

    def identity(self, instance: object) -> Identity:
        if not isinstance(instance, peewee.Model):
            raise ConfigurationError(
                f"{instance!r} is not an instance of a peewee Model; "
                "the model assertions take model instances."
            )
        model = type(instance)
        info = _model_info(model)
        meta = model._meta
        pk: Any = meta.primary_key
        if pk is None or pk is False:
            raise ConfigurationError(
                f"{model.__name__} has no primary key (primary_key=False), so the model "
                "assertions cannot find its row. Assert on its columns instead: "
                f"assert_database_has({model.__name__}, {{...}}), or give the model a "
                "primary key."
            )
        names: list[str] = (
            list(pk.field_names) if isinstance(pk, peewee.CompositeKey) else [str(pk.name)]
        )
        values = [getattr(instance, n) for n in names]
        if any(v is None for v in values):
            raise ConfigurationError(
                f"{model.__name__} instance {instance!r} has no primary key yet: it was "
                "never saved. Save it first (DatabaseAssertions.seed() does)."
            )
        fields: dict[str, Any] = meta.fields
        key = {fields[n].column_name: v for n, v in zip(names, values, strict=True)}
        label = ", ".join(f"{n}={v!r}" for n, v in zip(names, values, strict=True))
        return Identity(info, key, f"{model.__name__}({label})")

    def soft_delete_column(self, instance: object, given: str | None) -> Column:
        if given is not None and isinstance(instance, peewee.Model):
            found = type(instance)._meta.fields.get(given)
            if found is not None:
                given = found.column_name
        return super().soft_delete_column(instance, given)


def _takes(field: Any, value: Any) -> bool:
    try:
        field.db_value(value)
    except (TypeError, ValueError):
        return False
    return True


def _sql(database: Any, query: Any) -> tuple[str, Any]:
    sql, params = database.get_sql_context().sql(query).query()
    return str(sql), params


def _rows(table: TableInfo | None, names: list[str], raw: Sequence[Sequence[Any]]) -> Rows:
    decode: dict[str, Any] = {}
    if table is not None and table.model is not None:
        fields = {f.column_name: f for f in table.model._meta.sorted_fields}
        decode = {n: fields[n].python_value for n in names if n in fields}
    rows = []
    for values in raw:
        row = {}
        for name, value in zip(names, values, strict=True):
            convert = decode.get(name)
            row[name] = convert(value) if convert is not None and value is not None else value
        rows.append(row)
    return Rows(rows)


def _probe(name: str) -> Any:
    """``SELECT * FROM <name> WHERE 1 = 0``: the columns, with no rows."""
    schema, _, bare = name.rpartition(".")
    table = peewee.Table(bare, schema=schema or None)
    return table.select(peewee.SQL("*")).where(peewee.SQL("1 = 0"))


def _missing(database: Any, name: str) -> ConfigurationError:
    return ConfigurationError(
        f"Table {name!r} does not exist in {type(database).__name__}({database.database!r}). "
        "Check the spelling (names are case-sensitive when quoted), create it in the test "
        "setup, or pass the model class."
    )


def _split(name: str) -> tuple[str | None, str]:
    schema, _, bare = name.rpartition(".")
    return schema or None, bare


def run(database: Any, store: PeeweeStore, check: Check[T]) -> T:
    """Answer ``check``'s requests through the peewee database's ``execute_sql``."""
    answer: Any = None
    try:
        while True:
            request = check.send(answer)
            if isinstance(request, Fetch):
                cursor = database.execute_sql(*_sql(database, request.query))
                names = [d[0] for d in cursor.description or ()]
                answer = _rows(request.table, names, cursor.fetchall())
            elif isinstance(request, Reflect):
                schema, bare = _split(request.name)
                if not database.table_exists(bare, schema=schema):
                    raise _missing(database, request.name)
                cursor = database.execute_sql(*_sql(database, _probe(request.name)))
                names = [d[0] for d in cursor.description]
                answer = store.reflected[request.name] = table_info(request.name, names)
            elif isinstance(request, Flush):
                answer = None
    except StopIteration as stop:
        value: T = stop.value
        return value


async def _fetch(_: Any, cursor: Any) -> tuple[list[str], Sequence[Sequence[Any]]]:
    names = [d[0] for d in cursor.description or ()]
    return names, await cursor.fetchall()


async def arun(database: Any, store: PeeweeStore, check: Check[T]) -> T:
    """Answer ``check``'s requests through the peewee-async database's ``aio_execute_sql``."""
    answer: Any = None
    try:
        while True:
            request = check.send(answer)
            if isinstance(request, Fetch):
                sql, params = _sql(database, request.query)
                names, raw = await database.aio_execute_sql(sql, params, fetch_results=_fetch)
                answer = _rows(request.table, names, raw)
            elif isinstance(request, Reflect):
                schema, bare = _split(request.name)
                if not await database.aio_table_exists(bare, schema=schema):
                    raise _missing(database, request.name)
                sql, params = _sql(database, _probe(request.name))
                names, _ = await database.aio_execute_sql(sql, params, fetch_results=_fetch)
                answer = store.reflected[request.name] = table_info(request.name, names)
            elif isinstance(request, Flush):
                answer = None
    except StopIteration as stop:
        value: T = stop.value
        return value
