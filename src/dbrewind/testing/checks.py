"""The checks behind :class:`~dbrewind.testing.DatabaseAssertions`, once.

Plain functions over a synchronous ``Session``: the async flavour runs them
through ``AsyncSession.run_sync``. Each check returns ``None`` on success or
the failure message, showing what is there (the closest rows, the columns
that differ).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    FromClause,
    MetaData,
    Table,
    case,
    func,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoInspectionAvailable, NoSuchTableError
from sqlalchemy.orm import ColumnProperty, Mapper, Session

from ..exceptions import ConfigurationError

__all__ = [
    "CLOSEST_ROWS",
    "T",
    "TableRef",
    "_Identity",
    "_as_list",
    "_check_count",
    "_check_has",
    "_check_missing",
    "_check_model_exists",
    "_check_soft_deleted",
    "_column",
    "_conditions",
    "_count",
    "_flush",
    "_fmt_cols",
    "_fmt_row",
    "_identity",
    "_mapper_of_class",
    "_no_table",
    "_reflect",
    "_refresh_one",
    "_resolve",
    "_rows",
    "_seed_all",
]

T = TypeVar("T")

TableRef = str | Table | type[Any]
"""A table by name (``"users"``, ``"audit.events"``), as a Table, or as an ORM model class."""

CLOSEST_ROWS = 5
"""How many similar rows a failed ``assert_database_has`` shows."""


# --------------------------------------------------------------------------
# The logic, once: plain functions over a synchronous Session. Each check
# returns ``None`` on success or the failure message.
# --------------------------------------------------------------------------


def _flush(session: Session) -> None:
    if session.autoflush:
        session.flush()


def _reflect(session: Session, name: str, cache: dict[str, Table]) -> Table:
    if name in cache:
        return cache[name]
    conn = session.connection()
    try:
        table = Table(name, MetaData(), autoload_with=conn)
    except NoSuchTableError:
        if "." not in name:
            raise _no_table(conn, name) from None
        schema, _, bare = name.partition(".")
        try:
            table = Table(bare, MetaData(), schema=schema, autoload_with=conn)
        except NoSuchTableError:
            raise _no_table(conn, name) from None
    cache[name] = table
    return table


def _no_table(conn: Connection, name: str) -> ConfigurationError:
    database = conn.engine.url.render_as_string(hide_password=True)
    return ConfigurationError(
        f"Table {name!r} does not exist in {database}. Check the spelling (names are "
        "case-sensitive when quoted), create it in the test setup, or pass the ORM model class."
    )


def _resolve(session: Session, target: TableRef, cache: dict[str, Table]) -> Table:
    if isinstance(target, str):
        return _reflect(session, target, cache)
    if isinstance(target, Table):
        return target
    mapper = _mapper_of_class(target)
    table = mapper.local_table
    if not isinstance(table, Table):
        raise ConfigurationError(
            f"Model {target.__name__} is not mapped to a single table; pass the table "
            "(by name or as a Table) to the assertion instead."
        )
    return table


def _mapper_of_class(target: object) -> Mapper[Any]:
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


def _column(table: Table, name: str, model: type[Any] | None = None) -> ColumnElement[Any]:
    if name in table.c:
        return table.c[name]
    if model is not None:
        prop = sa_inspect(model).attrs.get(name)
        if isinstance(prop, ColumnProperty) and prop.columns:
            col = prop.columns[0]
            if isinstance(col, Column) and col.table is table:
                return col
    raise ConfigurationError(
        f"Table {table.fullname!r} has no column {name!r}. "
        f"Its columns are: {', '.join(c.name for c in table.columns)}."
    )


def _conditions(
    table: Table, columns: Mapping[str, Any], target: TableRef
) -> list[ColumnElement[bool]]:
    model = target if isinstance(target, type) else None
    return [_column(table, name, model) == value for name, value in columns.items()]


def _count(session: Session, table: Table, conds: Sequence[ColumnElement[bool]]) -> int:
    stmt = select(func.count()).select_from(table)
    if conds:
        stmt = stmt.where(*conds)
    return int(session.execute(stmt).scalar_one())


def _rows(
    session: Session, table: Table, conds: Sequence[ColumnElement[bool]], limit: int
) -> list[dict[str, Any]]:
    stmt = select(table)
    if conds:
        stmt = stmt.where(*conds)
    return [dict(r) for r in session.execute(stmt.limit(limit)).mappings()]


def _fmt_row(row: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in row.items()) + "}"


def _fmt_cols(columns: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in columns.items()) + "}"


def _check_has(
    session: Session, target: TableRef, columns: Mapping[str, Any], cache: dict[str, Table]
) -> str | None:
    """None when a row of ``target`` matches ``columns``; else a message with the closest rows."""
    _flush(session)
    table = _resolve(session, target, cache)
    conds = _conditions(table, columns, target)
    if _count(session, table, conds) > 0:
        return None
    total = _count(session, table, [])
    head = f"Table {table.fullname!r} has no row matching {_fmt_cols(columns)}."
    if total == 0:
        return f"{head}\nThe table is empty."
    flags = [case((cond, 1), else_=0).label(f"dbrewind_m{i}") for i, cond in enumerate(conds)]
    score = reduce(operator.add, [case((cond, 1), else_=0) for cond in conds])
    stmt = (
        select(table, *flags).order_by(score.desc(), *table.primary_key.columns).limit(CLOSEST_ROWS)
    )
    names = list(columns)
    lines = []
    for found in session.execute(stmt).mappings():
        matched = [bool(found[f"dbrewind_m{i}"]) for i in range(len(names))]
        row = {c.name: found[c] for c in table.columns}
        differs = ", ".join(
            f"{name}: {row.get(name, found.get(name))!r} (expected {columns[name]!r})"
            for name, ok in zip(names, matched, strict=True)
            if not ok
        )
        lines.append(
            f"  {_fmt_row(row)}\n    matches {sum(matched)} of {len(names)}; differs: {differs}"
        )
    shown = min(total, CLOSEST_ROWS)
    return (
        f"{head}\nFound {total} row(s); the {shown} closest (most matching columns first):\n"
        + "\n".join(lines)
    )


def _check_missing(
    session: Session, target: TableRef, columns: Mapping[str, Any], cache: dict[str, Table]
) -> str | None:
    """None when no row of ``target`` matches ``columns``; else a message showing the matches."""
    _flush(session)
    table = _resolve(session, target, cache)
    conds = _conditions(table, columns, target)
    count = _count(session, table, conds)
    if count == 0:
        return None
    rows = _rows(session, table, conds, CLOSEST_ROWS)
    return (
        f"Table {table.fullname!r} has {count} row(s) matching {_fmt_cols(columns)}, "
        "expected none:\n" + "\n".join(f"  {_fmt_row(r)}" for r in rows)
    )


def _check_count(
    session: Session,
    target: TableRef,
    expected: int,
    where: Mapping[str, Any] | None,
    cache: dict[str, Table],
) -> str | None:
    """None when ``target`` holds ``expected`` rows (matching ``where``); else the actual count."""
    _flush(session)
    table = _resolve(session, target, cache)
    conds = _conditions(table, where or {}, target)
    count = _count(session, table, conds)
    if count == expected:
        return None
    scope = f" matching {_fmt_cols(where)}" if where else ""
    message = f"Table {table.fullname!r} has {count} row(s){scope}, expected {expected}."
    if count:
        rows = _rows(session, table, conds, CLOSEST_ROWS)
        more = f" (first {len(rows)})" if count > len(rows) else ""
        message += f"\nFound{more}:\n" + "\n".join(f"  {_fmt_row(r)}" for r in rows)
    return message


@dataclass(frozen=True)
class _Identity:
    label: str
    source: FromClause
    conds: list[ColumnElement[bool]]
    table_name: str


def _identity(session: Session, instance: object) -> _Identity:
    try:
        state = sa_inspect(instance)
    except NoInspectionAvailable:
        raise ConfigurationError(
            f"{instance!r} is not an instance of a mapped ORM class; "
            "the model assertions take ORM objects."
        ) from None
    mapper: Mapper[Any] = state.mapper
    _flush(session)
    identity = state.identity
    if identity is None:
        raise ConfigurationError(
            f"{type(instance).__name__} instance {instance!r} has no identity yet: it was "
            "never flushed. Add it to the session and flush (DatabaseAssertions.seed() does both)."
        )
    pk_cols = list(mapper.primary_key)
    label = (
        type(instance).__name__
        + "("
        + ", ".join(f"{c.key}={v!r}" for c, v in zip(pk_cols, identity, strict=True))
        + ")"
    )
    conds = [c == v for c, v in zip(pk_cols, identity, strict=True)]
    local = mapper.local_table
    return _Identity(
        label, mapper.persist_selectable, conds, getattr(local, "fullname", str(local))
    )


def _check_model_exists(session: Session, instance: object, *, expect: bool) -> str | None:
    """None when the instance's row exists (``expect``) or is gone (not ``expect``)."""
    ident = _identity(session, instance)
    stmt = select(func.count()).select_from(ident.source).where(*ident.conds)
    found = int(session.execute(stmt).scalar_one()) > 0
    if found == expect:
        return None
    if expect:
        return f"Expected {ident.label} to exist, but table {ident.table_name!r} has no such row."
    return f"Expected {ident.label} to be missing, but its row is still in {ident.table_name!r}."


def _check_soft_deleted(
    session: Session, instance: object, column: str, *, expect: bool
) -> str | None:
    """None when the row's ``column`` is non-NULL (``expect``) or NULL (not ``expect``)."""
    ident = _identity(session, instance)
    mapper: Mapper[Any] = sa_inspect(type(instance))
    prop = mapper.attrs.get(column)
    col: ColumnElement[Any] | None = None
    if isinstance(prop, ColumnProperty) and prop.columns:
        col = prop.columns[0]
    else:
        for candidate in mapper.columns:
            if isinstance(candidate, Column) and candidate.name == column:
                col = candidate
                break
    if col is None:
        raise ConfigurationError(
            f"{type(instance).__name__} has no column or attribute {column!r} to mark soft "
            "deletion. Pass the right one, e.g. assert_soft_deleted(obj, column='removed_at')."
        )
    rows = session.execute(select(col).select_from(ident.source).where(*ident.conds)).all()
    if not rows:
        return (
            f"Expected {ident.label} to be {'soft-deleted' if expect else 'not soft-deleted'}, "
            f"but its row is gone from {ident.table_name!r} (hard-deleted?)."
        )
    value = rows[0][0]
    if (value is not None) == expect:
        return None
    if expect:
        return f"Expected {ident.label} to be soft-deleted, but {column} is NULL."
    return f"Expected {ident.label} not to be soft-deleted, but {column} is {value!r}."


def _seed_all(session: Session, instances: Sequence[T]) -> list[T]:
    """Add ``instances`` to the session and flush, so they have ids and rows."""
    session.add_all(instances)
    session.flush()
    return list(instances)


def _refresh_one(session: Session, instance: T) -> T:
    """Flush pending changes, then reload ``instance``'s attributes from its row."""
    _flush(session)
    session.refresh(instance)
    return instance


def _as_list(instances: Iterable[T]) -> list[T]:
    if isinstance(instances, (str, bytes, Mapping)):
        raise ConfigurationError(
            f"seed() takes an iterable of model instances, got {type(instances).__name__}. "
            "Pass e.g. db.seed([User(name='Alice')])."
        )
    return list(instances)
