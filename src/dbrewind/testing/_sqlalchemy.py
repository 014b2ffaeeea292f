"""The checks on SQLAlchemy: the statements (:class:`SQLAlchemyStore`) and the runner that
sends them through a synchronous ``Session`` (:func:`run`).

An ``AsyncSession``'s helpers run the same runner through ``AsyncSession.run_sync``.
"""

from __future__ import annotations

import decimal
import operator
from collections.abc import Sequence
from functools import reduce
from typing import Any, TypeVar

from sqlalchemy import Enum, MetaData, Table, Uuid, case, func, literal, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoInspectionAvailable, NoSuchTableError
from sqlalchemy.orm import ColumnProperty, Mapper, Session
from sqlalchemy.sql.elements import ColumnElement

from ..exceptions import ConfigurationError
from ._core import Check, Column, Fetch, Flush, Identity, Reflect, Rows, Store, TableInfo

__all__ = ["SQLAlchemyStore", "run"]

T = TypeVar("T")


def _column(col: Any) -> Column:
    kind = col.type
    is_enum = isinstance(kind, Enum)
    return Column(
        col.name,
        col,
        knows_enums=is_enum and kind.enum_class is not None,
        knows_uuids=isinstance(kind, Uuid),
        labels=tuple(kind.enums) if is_enum and kind.enum_class is None else None,
    )


def _info(table: Table, model: type[Any] | None = None) -> TableInfo:
    aliases: dict[str, str] = {}
    if model is not None:
        for prop in sa_inspect(model).column_attrs:
            col = prop.columns[0] if prop.columns else None
            if col is not None and getattr(col, "table", None) is table and col.name != prop.key:
                aliases[prop.key] = str(col.name)
    return TableInfo(
        table.fullname,
        tuple(_column(c) for c in table.columns),
        tuple(c.name for c in table.primary_key.columns),
        table,
        model,
        aliases,
    )


def _mapper(target: object) -> Mapper[Any]:
    try:
        mapper = sa_inspect(target)
    except NoInspectionAvailable:
        mapper = None
    if not isinstance(mapper, Mapper):
        raise ConfigurationError(
            f"{target!r} is neither a table name, a Table nor a mapped ORM class. "
            "Pass e.g. 'users', users_table or User."
        )
    return mapper


_NUMBERS = (int, float, decimal.Decimal)


def _takes(col: ColumnElement[Any], spellings: list[Any]) -> list[Any]:
    """The ``spellings`` of one value that ``col``'s Python type takes."""
    try:
        kind = col.type.python_type
    except NotImplementedError:  # a type that does not say: the database decides
        return spellings
    if issubclass(kind, str):
        forms = [
            str(v) if isinstance(v, _NUMBERS) and not isinstance(v, bool) else v for v in spellings
        ]
        return [v for v in dict.fromkeys(forms) if isinstance(v, str)]
    if issubclass(kind, bool):
        return [v for v in spellings if isinstance(v, bool)]
    if issubclass(kind, _NUMBERS):
        return [v for v in spellings if isinstance(v, _NUMBERS)]
    return [v for v in spellings if isinstance(v, kind)]


class SQLAlchemyStore(Store):
    """Statements as SQLAlchemy Core selects; tables by name reflected once per helper."""

    def __init__(self) -> None:
        self.reflected: dict[str, TableInfo] = {}

    def table(self, target: Any) -> TableInfo | Reflect:
        if isinstance(target, str):
            return self.reflected.get(target) or Reflect(target)
        if isinstance(target, Table):
            return _info(target)
        table = _mapper(target).local_table
        if not isinstance(table, Table):
            raise ConfigurationError(
                f"Model {target.__name__} is not mapped to a single table; pass the table "
                "(by name or as a Table) to the assertion instead."
            )
        return _info(table, target)

    def equals(self, column: Column, value: Any) -> ColumnElement[bool]:
        col: ColumnElement[Any] = column.handle
        if isinstance(value, list):
            # spellings the column cannot take (an IntEnum member's name on an Integer
            # column) are left out; a number is a string on a string column
            return col.in_(_takes(col, value))
        equal: ColumnElement[bool] = col == value
        return equal

    def count(self, table: TableInfo, conds: Sequence[Any]) -> Any:
        return select(func.count().label("n")).select_from(table.handle).where(*conds)

    def select(
        self, table: TableInfo, conds: Sequence[Any], limit: int | None, rank: Sequence[Any] = ()
    ) -> Any:
        handle: Table = table.handle
        flags = [case((c, 1), else_=0) for c in rank]
        stmt = select(handle, *(f.label(f"dbrewind_m{i}") for i, f in enumerate(flags)))
        stmt = stmt.where(*conds)
        if flags:
            stmt = stmt.order_by(reduce(operator.add, flags, literal(0)).desc())
        stmt = stmt.order_by(*handle.primary_key.columns)
        return stmt if limit is None else stmt.limit(limit)

    def identity(self, instance: object) -> Identity:
        try:
            state = sa_inspect(instance)
        except NoInspectionAvailable:
            raise ConfigurationError(
                f"{instance!r} is not an instance of a mapped ORM class; "
                "the model assertions take ORM objects."
            ) from None
        mapper: Mapper[Any] = state.mapper
        identity = state.identity
        if identity is None:
            raise ConfigurationError(
                f"{type(instance).__name__} instance {instance!r} has no identity yet: it was "
                "never flushed. Add it to the session and flush (DatabaseAssertions.seed() "
                "does both)."
            )
        table = mapper.local_table
        if not isinstance(table, Table):  # pragma: no cover - mapped to a select
            raise ConfigurationError(
                f"Model {type(instance).__name__} is not mapped to a single table."
            )
        pk = list(mapper.primary_key)
        label = ", ".join(f"{c.key}={v!r}" for c, v in zip(pk, identity, strict=True))
        return Identity(
            _info(table, type(instance)),
            {str(c.name): v for c, v in zip(pk, identity, strict=True)},
            f"{type(instance).__name__}({label})",
        )

    def soft_delete_column(self, instance: object, given: str | None) -> Column:
        if given is not None:
            # an attribute name of the model, mapped to a column of another name
            prop = sa_inspect(type(instance)).attrs.get(given)
            if isinstance(prop, ColumnProperty) and prop.columns:
                given = str(prop.columns[0].name)
        return super().soft_delete_column(instance, given)


def _reflect(session: Session, name: str) -> Table:
    conn = session.connection()
    try:
        return Table(name, MetaData(), autoload_with=conn)
    except NoSuchTableError:
        if "." not in name:
            raise _no_table(conn, name) from None
    schema, _, bare = name.partition(".")
    try:
        return Table(bare, MetaData(), schema=schema, autoload_with=conn)
    except NoSuchTableError:
        raise _no_table(conn, name) from None


def _no_table(conn: Connection, name: str) -> ConfigurationError:
    database = conn.engine.url.render_as_string(hide_password=True)
    return ConfigurationError(
        f"Table {name!r} does not exist in {database}. Check the spelling (names are "
        "case-sensitive when quoted), create it in the test setup, or pass the model class."
    )


def run(session: Session, store: SQLAlchemyStore, check: Check[T]) -> T:
    """Answer ``check``'s requests through ``session``; returns what the check returns."""
    answer: Any = None
    try:
        while True:
            request = check.send(answer)
            if isinstance(request, Fetch):
                result = session.execute(request.query)
                answer = Rows([dict(m) for m in result.mappings()])
            elif isinstance(request, Reflect):
                answer = store.reflected[request.name] = _info(_reflect(session, request.name))
            elif isinstance(request, Flush):
                if session.autoflush:
                    session.flush()
                answer = None
    except StopIteration as stop:
        value: T = stop.value
        return value
