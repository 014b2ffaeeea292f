"""The checks behind :class:`~dbrewind.testing.DatabaseAssertions`, once, with no I/O.

Each check is a generator: it yields a request (:class:`Fetch`, :class:`Reflect`,
:class:`Flush`) and is sent the answer; it returns ``None`` on success or the
failure message. What the requests carry is built by a :class:`Store` (one per
library: SQLAlchemy, peewee), and a runner answers them (synchronously, or
awaiting for an ``AsyncSession`` or a peewee-async database), so every flavour
of the helpers runs the very same checks and messages.
"""

from __future__ import annotations

import abc
import enum
import json
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..exceptions import ConfigurationError

__all__ = [
    "CANDIDATE_ROWS",
    "CLOSEST_ROWS",
    "SOFT_DELETE_ATTRIBUTE",
    "SOFT_DELETE_COLUMNS",
    "Check",
    "Column",
    "Fetch",
    "Flush",
    "Identity",
    "Reflect",
    "Request",
    "Rows",
    "Store",
    "TableInfo",
    "as_instances",
    "as_rows",
    "check_count",
    "check_has",
    "check_missing",
    "check_model",
    "check_soft_deleted",
    "fmt_row",
]

T = TypeVar("T")

CLOSEST_ROWS = 5
"""How many similar rows a failed ``assert_database_has`` shows."""

CANDIDATE_ROWS = 200
"""How many rows a failed ``assert_database_has`` ranks when some values (JSON) are
compared in Python rather than in SQL."""

SOFT_DELETE_COLUMNS = ("deleted_at", "deleted_on", "deleted", "is_deleted", "removed_at")
"""The columns (or attributes) looked for, in this order, when a model does not say which
of its columns marks a soft deletion."""

SOFT_DELETE_ATTRIBUTE = "__dbrewind_soft_delete__"
"""The class attribute a model sets to the name of its soft-delete column."""


# ------------------------------------------------------------------ requests
@dataclass(frozen=True)
class Rows:
    """What a :class:`Fetch` is answered with: the result's rows."""

    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class Fetch:
    """Run ``query`` (the store's own kind of statement) and answer with its :class:`Rows`."""

    query: Any
    table: TableInfo | None = None
    """The table the rows come from, for the store to decode their values."""


@dataclass(frozen=True)
class Reflect:
    """Look the table ``name`` up in the database; answered with its :class:`TableInfo`."""

    name: str


@dataclass(frozen=True)
class Flush:
    """Send the session's pending changes first (when it autoflushes); answered with None."""


Request = Fetch | Reflect | Flush
Check = Generator[Request, Any, T]


# ---------------------------------------------------------------- the schema
@dataclass(frozen=True)
class Column:
    """One column of a table, as a check sees it."""

    name: str
    """The column's name in the database (row dictionaries are keyed by it)."""
    handle: Any
    """The store's own column object (a SQLAlchemy Column, a peewee Field)."""
    knows_enums: bool = False
    """Whether binding an ``enum.Enum`` member to it stores what the model stores."""
    knows_uuids: bool = False
    """Whether binding a ``uuid.UUID`` to it compares with what is stored."""
    labels: tuple[str, ...] | None = None
    """The values a database enum type takes, when the column is one (a reflected
    PostgreSQL ``ENUM``): an enum member's spellings are narrowed to them."""


@dataclass(frozen=True)
class TableInfo:
    """A table a check reads: its name as messages show it, columns, primary key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    handle: Any
    """The store's own table object (a SQLAlchemy Table, a peewee Model or Table)."""
    model: type[Any] | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Attribute names of the model that differ from their column's name."""

    def column(self, key: str) -> Column:
        """The column named ``key`` (its database name, or the model's attribute name)."""
        name = self.aliases.get(key, key)
        for col in self.columns:
            if col.name == name:
                return col
        raise ConfigurationError(
            f"Table {self.name!r} has no column {key!r}. "
            f"Its columns are: {', '.join(c.name for c in self.columns)}."
        )


@dataclass(frozen=True)
class Identity:
    """A model instance's row: its table and primary key values."""

    table: TableInfo
    key: dict[str, Any]
    """Primary key column name -> value."""
    label: str
    """``User(id=3)``."""


class Store(abc.ABC):
    """What one library (SQLAlchemy, peewee) gives the checks: it builds statements, no I/O."""

    @abc.abstractmethod
    def table(self, target: Any) -> TableInfo | Reflect:
        """The table ``target`` names, or a :class:`Reflect` when it is a name to look up."""

    @abc.abstractmethod
    def equals(self, column: Column, value: Any) -> Any:
        """A condition: ``column`` holds ``value`` (or any of a few spellings of it)."""

    @abc.abstractmethod
    def count(self, table: TableInfo, conds: Sequence[Any]) -> Any:
        """A statement whose one row has the number of rows matching ``conds`` as ``n``."""

    @abc.abstractmethod
    def select(
        self, table: TableInfo, conds: Sequence[Any], limit: int | None, rank: Sequence[Any] = ()
    ) -> Any:
        """A statement selecting ``table``'s rows matching ``conds``; with ``rank``, each row
        also has ``dbrewind_m<i>`` (1 when ``rank[i]`` holds, else 0), the rows holding the
        most first."""

    @abc.abstractmethod
    def identity(self, instance: object) -> Identity:
        """The row of ``instance`` (a model instance that has a primary key)."""

    def soft_delete_column(self, instance: object, given: str | None) -> Column:
        """The column marking ``instance``'s soft deletion: ``given``, the model's
        ``__dbrewind_soft_delete__``, or the first of :data:`SOFT_DELETE_COLUMNS` it has."""
        table = self.identity(instance).table
        model = type(instance)
        said = given or getattr(model, SOFT_DELETE_ATTRIBUTE, None)
        if said is not None:
            try:
                return table.column(str(said))
            except ConfigurationError:
                how = "column=" if given else f"{model.__name__}.{SOFT_DELETE_ATTRIBUTE}"
                raise ConfigurationError(
                    f"{model.__name__} has no column or attribute {said!r} to mark soft "
                    f"deletion ({how}{said!r}); its columns are: "
                    f"{', '.join(c.name for c in table.columns)}."
                ) from None
        for name in SOFT_DELETE_COLUMNS:
            try:
                return table.column(name)
            except ConfigurationError:
                continue
        raise ConfigurationError(
            f"{model.__name__} has no soft-delete column: none of "
            f"{', '.join(SOFT_DELETE_COLUMNS)} is among its columns "
            f"({', '.join(c.name for c in table.columns)}). Say which one marks a deletion: "
            f"assert_soft_deleted(obj, column='archived_at'), or on the model "
            f"{SOFT_DELETE_ATTRIBUTE} = 'archived_at'."
        )


# ------------------------------------------------------------------- helpers
def fmt_row(row: Mapping[str, Any]) -> str:
    """``{id: 1, name: 'Alice'}``."""
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in row.items()) + "}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _in_python(value: Any) -> bool:
    """JSON documents are compared in Python: SQL equality of JSON differs per database."""
    return isinstance(value, (dict, list))


def _same(found: Any, expected: Any) -> bool:
    if isinstance(found, (str, bytes)) and _in_python(expected):
        try:
            found = json.loads(found)
        except ValueError:
            return False
    return bool(found == expected)


def _spellings(column: Column, value: Any) -> list[Any] | None:
    """The stored forms a value may have on a column that does not know its type."""
    if isinstance(value, enum.Enum) and not column.knows_enums:
        forms = list(dict.fromkeys([value.name, value.value]))
        if column.labels is not None:
            forms = [f for f in forms if f in column.labels] or [value.name]
        return forms
    if isinstance(value, uuid.UUID) and not column.knows_uuids:
        return [str(value), value.hex]
    return None


@dataclass
class _Criteria:
    """One expected row: conditions in SQL, and the values compared in Python."""

    wanted: Mapping[str, Any]
    columns: list[Column]
    sql: list[Any]
    python: dict[str, Any]

    def python_matches(self, row: Mapping[str, Any]) -> bool:
        return all(_same(row.get(k), v) for k, v in self.python.items())


def _criteria(store: Store, table: TableInfo, wanted: Mapping[str, Any]) -> _Criteria:
    columns = [table.column(key) for key in wanted]
    sql: list[Any] = []
    python: dict[str, Any] = {}
    for col, value in zip(columns, wanted.values(), strict=True):
        if _in_python(value):
            python[col.name] = value
        else:
            sql.append(store.equals(col, _spellings(col, value) or value))
    return _Criteria(wanted, columns, sql, python)


def _table(store: Store, target: Any) -> Check[TableInfo]:
    found = store.table(target)
    if isinstance(found, Reflect):
        info: TableInfo = yield found
        return info
    return found


def _count(store: Store, table: TableInfo, crit: _Criteria) -> Check[int]:
    if not crit.python:
        answer: Rows = yield Fetch(store.count(table, crit.sql))
        return int(answer.rows[0]["n"])
    rows: Rows = yield Fetch(store.select(table, crit.sql, None), table)
    return sum(1 for r in rows.rows if crit.python_matches(r))


def _matching(
    store: Store, table: TableInfo, crit: _Criteria, limit: int
) -> Check[list[dict[str, Any]]]:
    rows: Rows = yield Fetch(store.select(table, crit.sql, None if crit.python else limit), table)
    return [r for r in rows.rows if crit.python_matches(r)][:limit]


def as_rows(rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One expected row or a list of them, as a list."""
    if isinstance(rows, Mapping):
        return [rows]
    given: Any = rows
    if isinstance(given, (str, bytes)):
        items: list[Any] = [given]
    else:
        try:
            items = list(given)  # once: a generator is read here, not used up by a check
        except TypeError:
            items = [given]
    if isinstance(given, (str, bytes)) or not all(isinstance(r, Mapping) for r in items):
        raise ConfigurationError(
            "Expected rows as a mapping of column to value, or a list of them, got "
            f"{rows!r}. Pass e.g. {{'email': 'alice@example.com'}}."
        )
    if not items:
        raise ConfigurationError(
            "Expected at least one row: an empty list asserts nothing. Pass e.g. "
            "[{'email': 'alice@example.com'}], or use assert_database_empty()."
        )
    return items


def as_instances(instances: Iterable[T]) -> list[T]:
    """``seed()``'s argument as a list; a single mapping or string is refused."""
    if isinstance(instances, (str, bytes, Mapping)):
        raise ConfigurationError(
            f"seed() takes an iterable of model instances, got {type(instances).__name__}. "
            "Pass e.g. db.seed([User(name='Alice')])."
        )
    return list(instances)


# -------------------------------------------------------------------- checks
def check_has(
    store: Store, target: Any, expected: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> Check[str | None]:
    """None when every expected row has a match in ``target``; else which are missing,
    each with the closest rows and the columns that differ."""
    wanted = as_rows(expected)
    yield Flush()
    table = yield from _table(store, target)
    missing: list[tuple[Mapping[str, Any], _Criteria]] = []
    for row in wanted:
        crit = _criteria(store, table, row)
        if (yield from _count(store, table, crit)) == 0:
            missing.append((row, crit))
    if not missing:
        return None
    total = yield from _count(store, table, _Criteria({}, [], [], {}))
    if len(wanted) == 1:
        head = f"Table {table.name!r} has no row matching {fmt_row(wanted[0])}."
    else:
        head = (
            f"Table {table.name!r} is missing {len(missing)} of the {len(wanted)} rows "
            "expected:\n" + "\n".join(f"  {fmt_row(row)}" for row, _ in missing)
        )
    if total == 0:
        return f"{head}\nThe table is empty."
    parts = [head]
    for row, crit in missing:
        closest = yield from _closest(store, table, crit)
        what = "" if len(wanted) == 1 else f" to {fmt_row(row)}"
        parts.append(
            f"Found {_plural(total, 'row')}; the {len(closest)} closest{what} "
            "(most matching columns first):\n" + "\n".join(closest)
        )
    return "\n".join(parts)


def _closest(store: Store, table: TableInfo, crit: _Criteria) -> Check[list[str]]:
    """The rows of ``table`` closest to ``crit``, each with the columns that differ."""
    limit = CANDIDATE_ROWS if crit.python else CLOSEST_ROWS
    answer: Rows = yield Fetch(store.select(table, [], limit, crit.sql), table)
    scored = []
    for found in answer.rows:
        in_sql = iter(bool(found.pop(f"dbrewind_m{i}")) for i in range(len(crit.sql)))
        matched = [
            _same(found.get(col.name), value) if col.name in crit.python else next(in_sql)
            for col, value in zip(crit.columns, crit.wanted.values(), strict=True)
        ]
        scored.append((sum(matched), found, matched))
    scored.sort(key=lambda item: -item[0])  # stable: the database's order among equals
    lines = []
    for score, found, matched in scored[:CLOSEST_ROWS]:
        differs = ", ".join(
            f"{key}: {found.get(col.name)!r} (expected {value!r})"
            for (key, value), col, ok in zip(
                crit.wanted.items(), crit.columns, matched, strict=True
            )
            if not ok
        )
        lines.append(
            f"  {fmt_row(found)}\n    matches {score} of {len(matched)}; differs: {differs}"
        )
    return lines


def check_missing(
    store: Store, target: Any, expected: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> Check[str | None]:
    """None when no row of ``target`` matches any of the rows given; else the matches."""
    yield Flush()
    table = yield from _table(store, target)
    parts = []
    for row in as_rows(expected):
        crit = _criteria(store, table, row)
        count = yield from _count(store, table, crit)
        if count:
            found = yield from _matching(store, table, crit, CLOSEST_ROWS)
            parts.append(
                f"Table {table.name!r} has {_plural(count, 'row')} matching {fmt_row(row)}, "
                "expected none:\n" + "\n".join(f"  {fmt_row(r)}" for r in found)
            )
    return "\n".join(parts) or None


def check_count(
    store: Store, target: Any, expected: int, where: Mapping[str, Any] | None
) -> Check[str | None]:
    """None when ``target`` holds ``expected`` rows (matching ``where``); else the count
    and the first rows found."""
    yield Flush()
    table = yield from _table(store, target)
    crit = _criteria(store, table, where or {})
    count = yield from _count(store, table, crit)
    if count == expected:
        return None
    scope = f" matching {fmt_row(where)}" if where else ""
    message = f"Table {table.name!r} has {_plural(count, 'row')}{scope}, expected {expected}."
    if count:
        found = yield from _matching(store, table, crit, CLOSEST_ROWS)
        more = f" (first {len(found)})" if count > len(found) else ""
        message += f"\nFound{more}:\n" + "\n".join(f"  {fmt_row(r)}" for r in found)
    return message


def _row_of(store: Store, ident: Identity) -> Check[dict[str, Any] | None]:
    table = ident.table
    conds = [store.equals(table.column(k), v) for k, v in ident.key.items()]
    answer: Rows = yield Fetch(store.select(table, conds, 1), table)
    return answer.rows[0] if answer.rows else None


def check_model(store: Store, instance: object, *, expect: bool) -> Check[str | None]:
    """None when the instance's row exists (``expect``) or is gone (not ``expect``)."""
    yield Flush()
    ident = store.identity(instance)
    row = yield from _row_of(store, ident)
    if (row is not None) == expect:
        return None
    if expect:
        return f"Expected {ident.label} to exist, but table {ident.table.name!r} has no such row."
    return (
        f"Expected {ident.label} to be missing, but its row is still in "
        f"{ident.table.name!r}: {fmt_row(row or {})}"
    )


def _is_marked(value: Any) -> bool:
    """A soft-delete mark: a timestamp (not NULL) or a true flag."""
    return value is not None and value is not False and value != 0


def check_soft_deleted(
    store: Store, instance: object, column: str | None, *, expect: bool
) -> Check[str | None]:
    """None when the row's soft-delete column is set (``expect``) or unset (not ``expect``)."""
    yield Flush()
    col = store.soft_delete_column(instance, column)
    ident = store.identity(instance)
    row = yield from _row_of(store, ident)
    state = "soft-deleted" if expect else "not soft-deleted"
    if row is None:
        return (
            f"Expected {ident.label} to be {state}, but its row is gone from "
            f"{ident.table.name!r} (hard-deleted?)."
        )
    value = row.get(col.name)
    if _is_marked(value) == expect:
        return None
    if expect:
        unset = "NULL" if value is None else repr(value)
        return f"Expected {ident.label} to be soft-deleted, but {col.name} is {unset}."
    return f"Expected {ident.label} not to be soft-deleted, but {col.name} is {value!r}."
