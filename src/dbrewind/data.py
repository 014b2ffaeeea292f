"""Loading test-data files into a database: ``.sql``, ``.json``, ``.yaml`` and ``.csv``.

::

    from dbrewind.data import load_data

    with engine.begin() as conn:
        load_data(conn, "authors.yaml", "books.csv", "views.sql", base_dir=HERE / "data")

The formats:

``.sql``
    Statements separated by ``;``. The split is safe: semicolons inside
    quoted strings and identifiers, comments (``--``, ``/* */``, nested on
    PostgreSQL; ``#`` on MySQL), PostgreSQL dollar-quoted bodies
    (``$$ .. $$``, ``$tag$ .. $tag$``) and SQLite trigger bodies
    (``BEGIN .. END``) do not end a statement. MySQL files may change the
    terminator with the client's ``DELIMITER //`` line, as dumps do. Each
    statement is sent as written, without parameter interpolation, so ``%``
    and ``:name`` are plain text.
``.json``
    ``{"table": [{"column": value, ...}, ...], ...}``. Objects and arrays
    are stored as JSON text (PostgreSQL ``ARRAY`` columns receive lists as
    arrays).
``.yaml`` / ``.yml``
    The same shape as JSON (a mapping of tables to lists of rows), read with
    PyYAML's safe loader (no Python objects), so YAML's dates and timestamps
    arrive as dates. PyYAML is optional: ``pip install dbrewind[yaml]``.
``.csv``
    The file name without its extension is the table (``public.books.csv``
    names a schema too), the header row names the columns. An empty field is
    ``NULL``.

Tables or models
    A key (or a CSV file's name) is a table's name, ``schema.table``, or a
    mapped class: its name when the class is among ``models=`` (mapped
    classes, a declarative base or a ``registry``, whose every class counts;
    a ``MetaData`` lends its tables), or its import path
    ``package.module:Class`` anywhere. Rows of a model may name its
    attributes or its columns, and go in through the model's table, so its
    Python-side defaults (``default=uuid4``) and column types apply.

Values
    Each value is checked against its column's type before anything is
    sent: integers, decimals and booleans (``true``/``false``, ``t``/``f``,
    ``yes``/``no``, ``on``/``off``, 1/0; the words in boolean columns only,
    which MySQL and MariaDB report as ``TINYINT(1)``) are converted from text;
    dates, times and timestamps from ISO 8601 text (a trailing ``Z`` is UTC);
    numbers become text in text columns; an enum column takes its labels (and
    a Python enum's values). ``null`` in a column the database numbers
    (identity, serial, ``AUTO_INCREMENT``, SQLite's integer primary key)
    leaves the numbering to it. A value that does not convert, and ``null`` in
    any other ``NOT NULL`` column, is reported with its file, row and column
    before anything is sent.

Order
    Consecutive JSON, YAML and CSV files in one call form one batch,
    inserted parents first, following the database's foreign keys, whatever
    order the files and their keys list the tables in; rows of one table keep
    their order in the file, except that rows leaving a numbered column to the
    database (a ``null`` or missing id) go in after the rows that give it a
    value, so that the numbers it hands out start past theirs. Where the order
    cannot satisfy a foreign key, a nullable one is inserted ``NULL`` and set
    by ``UPDATE`` once its target is in (the row needs its primary key for
    that): a row pointing at a row of its own table further down (a child
    listed before its parent), and tables that reference each other in a cycle
    (the columns that close the cycle; within it, the tables that ``NOT NULL``
    keys point at go before the tables those keys belong to). A cycle made
    only of ``NOT NULL`` columns cannot be loaded by inserts; the error says
    so (load it with a ``.sql`` file that defers the constraints). ``.sql``
    files run where they stand, so a schema file can precede the data it
    creates tables for. On PostgreSQL the sequences behind columns that were
    given explicit values are moved past the loaded values, so the next
    ``INSERT`` without an id does not collide.

Errors
    Every :class:`~dbrewind.exceptions.DataLoadError` names the file, and for
    rows the record (``row 3`` counting from 0 in JSON and YAML, with the
    YAML line; ``line 4`` in CSV) and the column: an unknown table or column,
    a value of the wrong type, a row the database rejected (``NOT NULL``, a
    missing parent row, a duplicate key), a malformed file (with its line
    and column), one of the wrong shape, or one that gives a table or a column
    twice (JSON and YAML would keep only the last; a CSV header naming a column
    twice).

    On MySQL and MariaDB a schema is another database on the server, which the
    safety guard and the rewind never see: a key ``shop.orders``, or a model
    with ``schema="shop"``, is refused unless ``shop`` is the connection's own
    database.

Everything runs on the given connection, inside its current transaction
(begun automatically when none is open); committing or rolling back is the
caller's choice. On MySQL a DDL statement in a ``.sql`` file commits that
transaction implicitly, as it always does there.

To make data part of the baseline a test suite starts from (loaded once when
the database is prepared, rewound after each test, never reloaded per test),
give the files to the pytest plugin's ini ``dbrewind_data``, or make a setup
step of them with :func:`data_setup`.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import difflib
import hashlib
import importlib
import io
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, Table, bindparam, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Inspector
from sqlalchemy.exc import DBAPIError, NoInspectionAvailable, NoSuchTableError

from ._backends import Backend, backend_named
from ._graph import children_first, strongly_connected
from ._sql import split
from .dialects import Dialect, get_dialect
from .dialects._syntax import syntax_for
from .dialects.base import LoadedColumn
from .exceptions import DataLoadError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "DATA_SUFFIXES",
    "DataSetup",
    "LoadResult",
    "aload_data",
    "data_setup",
    "load_data",
    "split_sql",
]

DATA_SUFFIXES = (".sql", ".json", ".yaml", ".yml", ".csv")
"""The file types :func:`load_data` understands."""

PathArg = str | os.PathLike[str]

_TRUE = {"true", "t", "yes", "y", "on"}
_FALSE = {"false", "f", "no", "n", "off"}
_MAX_PARAMS = 900
"""Bound values per INSERT statement (under SQLite's oldest limit of 999)."""
_LOADER_VERSION = "1"
"""Part of :meth:`DataSetup.dbrewind_fingerprint`: bumped when loading changes meaning."""


@dataclass
class LoadResult:
    """What one :func:`load_data` call loaded."""

    files: tuple[Path, ...] = ()
    """The files, resolved, in the order they were loaded."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows inserted per table (``schema.table`` when a schema was named) from JSON,
    YAML and CSV files, in insertion order."""
    statements: int = 0
    """SQL statements executed from ``.sql`` files."""


# --------------------------------------------------------------------------- public API
def load_data(
    conn: Connection,
    *paths: PathArg,
    base_dir: PathArg | None = None,
    models: Iterable[Any] = (),
) -> LoadResult:
    """Load test-data files into the database behind ``conn``, in the order given.

    :param conn: a SQLAlchemy Connection; the data goes into its current
        transaction, which the caller commits or rolls back.
    :param paths: ``.sql``, ``.json``, ``.yaml``/``.yml`` or ``.csv`` files;
        relative paths are taken relative to ``base_dir``.
    :param base_dir: the directory relative paths start from (default: the
        current directory).
    :param models: mapped classes, declarative bases, ``registry`` objects or
        ``MetaData`` whose names the files may use for tables (see the module
        documentation).
    :raises DataLoadError: a file is missing, of an unknown type, malformed or
        of the wrong shape, names a table or column the database does not have,
        holds a value its column cannot take, or the database rejected a
        statement or row. The message names the file, the row or line, the
        table and column, and what to change.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    files = [_resolve(base, p) for p in paths]
    known = _Models.of(models)
    result = LoadResult(files=tuple(files))
    batch: list[_TableData] = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".sql":
            _insert_batch(conn, batch, result, known)
            batch = []
            result.statements += _run_sql_file(conn, path)
        elif suffix == ".json":
            batch.extend(_read_json(path))
        elif suffix in (".yaml", ".yml"):
            batch.extend(_read_yaml(path))
        else:
            batch.append(_read_csv(path))
    _insert_batch(conn, batch, result, known)
    return result


async def aload_data(
    conn: AsyncConnection,
    *paths: PathArg,
    base_dir: PathArg | None = None,
    models: Iterable[Any] = (),
) -> LoadResult:
    """:func:`load_data` for an :class:`~sqlalchemy.ext.asyncio.AsyncConnection`."""
    chosen = tuple(models)

    def _load(sync_conn: Connection) -> LoadResult:
        return load_data(sync_conn, *paths, base_dir=base_dir, models=chosen)

    return await conn.run_sync(_load)


class DataSetup:
    """A setup step that loads data files (:func:`load_data`) into the baseline.

    Give it to ``dbrewind_setup`` after the schema (``[metadata_setup(Base),
    data_setup("seed.yaml")]``), or list the files in the pytest plugin's ini
    ``dbrewind_data``. The files are loaded once, when the prepared template
    is built; their contents are part of its fingerprint, so editing a file
    builds a new template on the next run and an unchanged one is reused
    without loading anything.
    """

    def __init__(
        self,
        paths: Sequence[PathArg],
        *,
        base_dir: PathArg | None = None,
        models: Iterable[Any] = (),
    ) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.paths = tuple(paths)
        self.models = tuple(models)

    def files(self) -> list[Path]:
        """The files, resolved against ``base_dir``.

        :raises DataLoadError: one is missing or of an unknown type.
        """
        return [_resolve(self.base_dir, p) for p in self.paths]

    def __call__(self, conn: Connection) -> None:
        load_data(conn, *self.paths, base_dir=self.base_dir, models=self.models)

    def dbrewind_fingerprint(self) -> str:
        """A digest of every file (its path relative to ``base_dir``, and contents)
        and the names of the models, so a template is rebuilt when the data changes."""
        digest = hashlib.sha256(f"data:{_LOADER_VERSION}".encode())
        for path in self.files():
            digest.update(b"\0file\0" + _relative(path, self.base_dir).encode() + b"\0")
            digest.update(path.read_bytes())
        for name in sorted(_Models.of(self.models).names()):
            digest.update(b"\0model\0" + name.encode())
        return "data:" + digest.hexdigest()

    def __repr__(self) -> str:
        return f"data_setup({', '.join(os.fspath(p) for p in self.paths)})"


def data_setup(
    *paths: PathArg, base_dir: PathArg | None = None, models: Iterable[Any] = ()
) -> DataSetup:
    """A setup step loading ``paths`` into the baseline; see :class:`DataSetup`."""
    return DataSetup(paths, base_dir=base_dir, models=models)


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name


def _resolve(base: Path, path: PathArg) -> Path:
    candidate = Path(path)
    full = candidate if candidate.is_absolute() else base / candidate
    if full.suffix.lower() not in DATA_SUFFIXES:
        raise DataLoadError(
            f"Cannot load test data from {str(full)!r}: unknown file type "
            f"{full.suffix or '(none)'!r}. Use one of {', '.join(DATA_SUFFIXES)}."
        )
    if not full.is_file():
        raise DataLoadError(
            f"Test-data file {str(full)!r} does not exist (looked for {str(path)!r} "
            f"relative to {str(base)!r}). Check the file name, or pass base_dir= the "
            "directory that holds it."
        )
    return full


# --------------------------------------------------------------------------- SQL files
def split_sql(sql: str, backend: str) -> list[tuple[int, str]]:
    """Split a script into statements: ``(line the statement starts on, statement)``.

    ``backend`` is ``sqlite``, ``postgresql`` or ``mysql``; it decides which
    quoting and comment rules apply (see the module documentation).
    Comment-only pieces are dropped; statements keep their inner comments.

    :raises ValueError: a string, quoted identifier, comment or dollar-quoted
        body is not closed; the message names the line it opened on.
    """
    return [(s.line, s.text) for s in split(sql, syntax_for(backend))]


def _run_sql_file(conn: Connection, path: Path) -> int:
    script = _read_text(path)
    backend = _backend(conn)
    try:
        statements = split_sql(script, backend)
    except ValueError as exc:
        raise DataLoadError(
            f"Cannot split SQL file {str(path)!r}: {exc}. Close it, or check the "
            "quoting of the statement that starts there."
        ) from exc
    for line, statement in statements:
        try:
            # no_parameters for this statement only: Connection.execution_options would
            # set it on the caller's connection for good, and its later text() statements
            # would reach the driver with their % doubled
            conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        except DBAPIError as exc:
            first = statement.splitlines()[0][:80]
            raise DataLoadError(
                f"SQL file {str(path)!r}, statement at line {line} ({first!r}) failed: "
                f"{_reason(exc)}. Fix that statement; the statements before it have run "
                "in the current transaction, so roll it back before retrying."
            ) from exc
    return len(statements)


# --------------------------------------------------------------------------- reading files
@dataclass
class _TableData:
    """Rows for one table read from one file."""

    name: str
    """The table or model as the file names it."""
    path: Path
    rows: list[dict[str, Any]]
    where: list[str]
    """Per row: where it is in the file (``row 0``, ``row 0 (line 3)``, ``line 2``)."""
    csv: bool = False

    def source(self) -> str:
        return "its file name" if self.csv else "the key"


_SHAPE = "{table: [{column: value, ...}, ...]}"


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataLoadError(
            f"Test-data file {str(path)!r} is not valid UTF-8 ({exc.reason} at byte "
            f"{exc.start}). Save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise DataLoadError(f"Cannot read test-data file {str(path)!r}: {exc}.") from exc


def _read_json(path: Path) -> list[_TableData]:
    try:
        document = json.loads(_read_text(path), object_pairs_hook=_Object.of)
    except json.JSONDecodeError as exc:
        raise DataLoadError(
            f"Test-data file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}. Fix the JSON there; the expected shape is "
            '{"table": [{"column": value, ...}, ...]}.'
        ) from exc
    return _tables_of(path, document, "JSON", {})


class _Object(dict[str, Any]):
    """A JSON object that gave a key more than once (JSON keeps only the last value):
    the keys it repeated, for the error."""

    repeated: tuple[str, ...] = ()

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) == len(pairs):
            return found
        counts = Counter(key for key, _ in pairs)
        out = cls(found)
        out.repeated = tuple(key for key, count in counts.items() if count > 1)
        return out


def _read_yaml(path: Path) -> list[_TableData]:
    try:
        yaml: Any = importlib.import_module("yaml")  # optional, and untyped
    except ImportError:
        raise DataLoadError(
            f"Test-data file {str(path)!r} is YAML, which needs PyYAML. Install it with: "
            "pip install dbrewind[yaml] (or load the data from JSON instead)."
        ) from None
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(_read_text(path))
    lines: dict[tuple[str, int], int] = {}
    try:
        node = loader.get_single_node()
        if isinstance(node, yaml.MappingNode):  # before construction merges in << keys
            _refuse_repeated_keys(path, node.value, None)
            for key_node, value_node in node.value:
                if not isinstance(value_node, yaml.SequenceNode):
                    continue
                for index, item in enumerate(value_node.value):
                    if isinstance(item, yaml.MappingNode):
                        _refuse_repeated_keys(path, item.value, (str(key_node.value), index))
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        raise DataLoadError(
            f"Test-data file {str(path)!r} is not valid YAML: {problem}{at}. Fix the YAML "
            f"there; the expected shape is {_SHAPE}."
        ) from exc
    except yaml.YAMLError as exc:
        raise DataLoadError(
            f"Test-data file {str(path)!r} is not valid YAML: {exc}. The expected shape "
            f"is {_SHAPE}."
        ) from exc
    finally:
        loader.dispose()
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(value_node, yaml.SequenceNode):
                for index, item in enumerate(value_node.value):
                    lines[(str(key_node.value), index)] = item.start_mark.line + 1
    return _tables_of(path, document, "YAML", lines)


_YAML_MERGE = "tag:yaml.org,2002:merge"


def _refuse_repeated_keys(
    path: Path, pairs: Sequence[tuple[Any, Any]], row: tuple[str, int] | None
) -> None:
    """A key given twice in a YAML mapping (the document's tables, or a ``row`` of a
    table), which YAML would keep only the last of, as an error. ``<<`` merge keys are
    left out: what they merge in may be overridden."""
    first: dict[tuple[str, str], int] = {}
    for key_node, _ in pairs:
        if key_node.tag == _YAML_MERGE:
            continue
        name = str(key_node.value)
        line = key_node.start_mark.line + 1
        key = (key_node.tag, name)
        if key not in first:
            first[key] = line
            continue
        earlier = first[key]
        if row is None:
            raise DataLoadError(
                f"Test-data file {str(path)!r}, line {line}: table {name!r} is given a second "
                f"time (first at line {earlier}); YAML keeps only the last, so the rows of the "
                "first would be lost. List all its rows under one key."
            )
        raise DataLoadError(
            f"Test-data file {str(path)!r}, row {row[1]} (line {line}) of table {row[0]!r}: "
            f"column {name!r} is given twice; YAML keeps only the last. Give it once."
        )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _tables_of(
    path: Path, document: Any, fmt: str, lines: Mapping[tuple[str, int], int]
) -> list[_TableData]:
    """The tables of a JSON or YAML document, its shape checked."""
    if not isinstance(document, Mapping):
        raise DataLoadError(
            f"Test-data file {str(path)!r} holds a {fmt} {_kind(document)}, not a mapping of "
            f"tables. Write it as {_SHAPE}."
        )
    if isinstance(document, _Object):
        raise DataLoadError(
            f"Test-data file {str(path)!r}: table {document.repeated[0]!r} is given twice; "
            f"{fmt} keeps only the last, so the rows of the first would be lost. List all its "
            "rows under one key."
        )
    tables: list[_TableData] = []
    for name, rows in document.items():
        if not isinstance(name, str):
            raise DataLoadError(
                f"Test-data file {str(path)!r}: the key {name!r} is a {_kind(name)}; table "
                "and model names must be text (quote it)."
            )
        if not isinstance(rows, list):
            raise DataLoadError(
                f"Test-data file {str(path)!r}: the value of table {name!r} is a {fmt} "
                f"{_kind(rows)}; it must be a list of row objects "
                "([{column: value, ...}, ...])."
            )
        where = []
        for index, row in enumerate(rows):
            line = lines.get((name, index))
            where.append(f"row {index}" + (f" (line {line})" if line else ""))
            if not isinstance(row, Mapping):
                raise DataLoadError(
                    f"Test-data file {str(path)!r}, {where[-1]} of table {name!r}: a {fmt} "
                    f"{_kind(row)}; each row must be an object {{column: value, ...}}."
                )
            if isinstance(row, _Object):
                raise DataLoadError(
                    f"Test-data file {str(path)!r}, {where[-1]} of table {name!r}: column "
                    f"{row.repeated[0]!r} is given twice; {fmt} keeps only the last. Give it "
                    "once."
                )
            for column in row:
                if not isinstance(column, str):
                    raise DataLoadError(
                        f"Test-data file {str(path)!r}, {where[-1]} of table {name!r}: the "
                        f"column {column!r} is a {_kind(column)}; column names must be text."
                    )
        tables.append(_TableData(name, path, [dict(r) for r in rows], where))
    return tables


def _read_csv(path: Path) -> _TableData:
    name = path.name[: -len(path.suffix)]
    content = _read_text(path, encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise DataLoadError(
                f"CSV file {str(path)!r} is empty. Its first line must name the columns "
                f"of table {name!r}."
            )
        repeated = [column for index, column in enumerate(header) if column in header[:index]]
        if repeated:
            raise DataLoadError(
                f"CSV file {str(path)!r}, line 1: the header names column {repeated[0]!r} "
                "twice; a row can give a column once, so one of them would be lost. Rename "
                "or remove one."
            )
        rows: list[dict[str, Any]] = []
        where: list[str] = []
        end = reader.line_num
        for record in reader:
            start, end = end + 1, reader.line_num  # a quoted field may span lines
            if not record:
                continue
            if len(record) != len(header):
                raise DataLoadError(
                    f"CSV file {str(path)!r}, line {start}: {len(record)} fields, "
                    f"but the header names {len(header)} columns. Make every line match the "
                    "header (quote fields that contain commas)."
                )
            rows.append(
                {
                    col: (value if value != "" else None)
                    for col, value in zip(header, record, strict=True)
                }
            )
            where.append(f"line {start}")
    except csv.Error as exc:
        raise DataLoadError(
            f"CSV file {str(path)!r}, line {reader.line_num}: {exc}. Fix the quoting there."
        ) from exc
    return _TableData(name, path, rows, where, csv=True)


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class _Model:
    """A mapped class or a Table the files may name."""

    table: Table
    attributes: Mapping[str, str]
    """Attribute name -> column name, for every mapped column."""

    def column(self, name: str) -> Column[Any] | None:
        """The model's column of that name (a column's ``key`` may differ from it)."""
        for column in self.table.columns:
            if column.name == name:
                return column
        return None


def _model_of(obj: Any) -> _Model | None:
    if isinstance(obj, Table):
        return _Model(obj, {})
    try:
        mapper = sa_inspect(obj, raiseerr=False)
    except NoInspectionAvailable:
        return None
    table = getattr(mapper, "local_table", None)
    if not isinstance(table, Table) or not hasattr(mapper, "column_attrs"):
        return None
    attributes: dict[str, str] = {}
    for attr in mapper.column_attrs:
        columns = [c for c in attr.columns if getattr(c, "table", None) is table]
        if columns:
            attributes[attr.key] = columns[0].name
    return _Model(table, attributes)


@dataclass
class _Models:
    """The models one load knows by name (from ``models=``)."""

    by_name: dict[str, _Model] = field(default_factory=dict)
    by_table: dict[tuple[str | None, str], _Model] = field(default_factory=dict)

    @classmethod
    def of(cls, models: Iterable[Any]) -> _Models:
        found = cls()
        for item in models:
            found._add(item)
        return found

    def names(self) -> list[str]:
        return list(self.by_name) + [f"{s or ''}.{n}" for s, n in self.by_table]

    def _add(self, item: Any) -> None:
        if isinstance(item, MetaData):
            for table in item.tables.values():
                self.by_table.setdefault((table.schema, table.name), _Model(table, {}))
            return
        model = _model_of(item)
        if model is not None:  # a mapped class (or a Table): that one alone
            self._add_model(getattr(item, "__name__", model.table.name), model)
            return
        registry = item if hasattr(item, "mappers") else getattr(item, "registry", None)
        if registry is not None and hasattr(registry, "mappers"):  # a registry or a base
            for mapper in registry.mappers:
                inner = _model_of(mapper.class_)
                if inner is not None:
                    self._add_model(mapper.class_.__name__, inner)
            return
        raise DataLoadError(
            f"models= takes mapped classes, declarative bases, registries, MetaData or "
            f"Tables; {item!r} is none of them."
        )

    def _add_model(self, name: str, model: _Model) -> None:
        self.by_name.setdefault(name, model)
        self.by_table[(model.table.schema, model.table.name)] = model


def _import_model(name: str, data: _TableData) -> _Model | None:
    """``package.module:Class`` as a model, None when ``name`` is not such a path."""
    module_name, sep, attr_path = name.partition(":")
    if not sep or not module_name or not attr_path:
        return None
    if not all(part.isidentifier() for part in (*module_name.split("."), *attr_path.split("."))):
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise DataLoadError(
            f"Test-data file {str(data.path)!r} names model {name!r}, which cannot be "
            f"imported ({exc}). Fix the import path (package.module:Class)."
        ) from exc
    model = _model_of(obj)
    if model is None:
        raise DataLoadError(
            f"Test-data file {str(data.path)!r} names {name!r}, which is {obj!r}: not a "
            "mapped class or a Table. Name a model or a table."
        )
    return model


# --------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class _ForeignKey:
    columns: tuple[str, ...]
    parent: tuple[str | None, str]
    referred: tuple[str, ...]


@dataclass
class _Target:
    """A table as the database describes it (and the model it was named by, if any)."""

    schema: str | None
    name: str
    columns: dict[str, Mapping[str, Any]]
    identity_always: bool
    foreign_keys: list[_ForeignKey]
    model: _Model | None = None

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def column_for(self, key: str) -> str | None:
        """The column a row's key names: a column, or an attribute of the model."""
        if key in self.columns:
            return key
        if self.model is not None:
            column = self.model.attributes.get(key)
            if column is not None and column in self.columns:
                return column
        return None

    def known_keys(self) -> list[str]:
        keys = list(self.columns)
        if self.model is not None:
            keys += [a for a in self.model.attributes if a not in self.columns]
        return keys


def _reflect(
    inspector: Inspector, schema: str | None, bare: str, model: _Model | None
) -> _Target | None:
    try:
        columns = inspector.get_columns(bare, schema=schema)
    except NoSuchTableError:
        return None
    if not columns:
        return None
    always = any(
        isinstance(col.get("identity"), dict) and bool(col["identity"].get("always"))
        for col in columns
    )
    foreign_keys = [
        _ForeignKey(
            tuple(fk["constrained_columns"]),
            (fk.get("referred_schema") or schema, fk["referred_table"]),
            tuple(fk["referred_columns"]),
        )
        for fk in inspector.get_foreign_keys(bare, schema=schema)
    ]
    return _Target(schema, bare, {c["name"]: c for c in columns}, always, foreign_keys, model)


def _own_database(
    inspector: Inspector, dialect: Dialect, data: _TableData, schema: str | None, named: str
) -> None:
    """Refuse a table in another database of the server (``schema``, where schemas are
    databases): its rows would escape the safety guard and the rewind, and outlive the
    test. ``named`` is how the file names the table, for the message."""
    own = inspector.default_schema_name
    if schema is None or not dialect.schemas_are_databases or schema == own:
        return
    raise DataLoadError(
        f"Test-data file {str(data.path)!r} names {named}, which is in database {schema!r}, "
        f"not in the test database {own!r} the rows are loaded into: on {dialect.name} a "
        "schema is another database, which dbrewind's safety guard and rewind never see, so "
        "the rows would outlive the test. Load them into the test database's own table "
        f"(name it without {schema + '.'!r}, or give the model no schema=)."
    )


def _find_target(
    inspector: Inspector, dialect: Dialect, data: _TableData, models: _Models
) -> _Target:
    name = data.name
    model = models.by_name.get(name)
    if model is not None:
        _own_database(
            inspector,
            dialect,
            data,
            model.table.schema,
            f"model {name!r} (table {model.table.fullname!r})",
        )
        found = _reflect(inspector, model.table.schema, model.table.name, model)
        if found is None:
            raise DataLoadError(
                f"Test-data file {str(data.path)!r} names model {name!r}, whose table "
                f"{model.table.fullname!r} does not exist in the database. Create the "
                "table first (run the schema setup or a .sql file before the data)."
            )
        return found
    found = _reflect(inspector, None, name, models.by_table.get((None, name)))
    if found is not None:
        return found
    imported = _import_model(name, data)
    if imported is not None:
        table = imported.table
        _own_database(
            inspector, dialect, data, table.schema, f"model {name!r} (table {table.fullname!r})"
        )
        found = _reflect(inspector, table.schema, table.name, imported)
        if found is not None:
            return found
        raise DataLoadError(
            f"Test-data file {str(data.path)!r} names model {name!r}, whose table "
            f"{table.fullname!r} does not exist in the database. Create the table first."
        )
    if "." in name:
        schema, _, bare = name.partition(".")
        _own_database(inspector, dialect, data, schema, f"table {name!r} ({data.source()})")
        try:
            found = _reflect(inspector, schema, bare, models.by_table.get((schema, bare)))
        except DBAPIError:  # MySQL: no database (schema) of that name
            found = None
        if found is not None:
            return found
    known = sorted(inspector.get_table_names()) + sorted(models.by_name)
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    raise DataLoadError(
        f"Test-data file {str(data.path)!r} names table {name!r} ({data.source()}), which "
        f"does not exist in the database.{suggestion} Create the table first (run the "
        "schema setup or a .sql file before the data), fix the name, or name a model "
        "(models=[...], or package.module:Class)."
    )


# --------------------------------------------------------------------------- planning
@dataclass
class _Rows:
    """One table's rows from one file, keyed by column name and converted."""

    data: _TableData
    rows: list[dict[str, Any]]
    where: list[str]
    numbered: bool = False
    """The rows leave a column the database numbers to it, which other rows of the table
    give values to (see :func:`_numbered_last`)."""


@dataclass
class _Step:
    """One table's part of a batch, in the order it is inserted."""

    target: _Target
    parts: list[_Rows]
    deferred: tuple[_ForeignKey, ...] = ()
    """Foreign keys inserted as NULL and set once their cycle's tables are in."""
    cycle: tuple[str, ...] = ()
    """The tables of the cycle this table belongs to (for messages)."""
    unordered: bool = False
    """A NOT NULL foreign key points at a table of the cycle inserted after this one."""
    self_refs: tuple[_ForeignKey, ...] = ()
    """Nullable foreign keys from the table to itself: a row pointing at a row later
    in the data is inserted with them NULL, and they are set after."""


def _plan(
    targets: Mapping[tuple[str | None, str], _Target], default_schema: str | None
) -> list[list[tuple[str | None, str]]]:
    """The tables in insert order, parents first, as groups: each group is one
    table, or the tables of one foreign-key cycle (ordered by their NOT NULL keys)."""

    def node(ref: tuple[str | None, str]) -> tuple[str | None, str]:
        return (ref[0] or default_schema, ref[1])

    by_node = {node(key): key for key in targets}
    names = {key: f"{key[0] or ''}.{key[1]}" for key in targets}
    back = {v: k for k, v in names.items()}
    edges: list[tuple[str, str]] = []
    strict: list[tuple[str, str]] = []
    for key, target in targets.items():
        for fk in target.foreign_keys:
            parent = by_node.get(node(fk.parent))
            if parent is None:
                continue
            edges.append((names[key], names[parent]))
            if parent != key and not _nullable(target, fk):
                strict.append((names[key], names[parent]))
    groups = []
    for component in strongly_connected(sorted(names.values()), edges):
        if len(component) > 1:
            inner = [e for e in strict if e[0] in component and e[1] in component]
            component = list(reversed(children_first(component, inner)))
        groups.append([back[n] for n in component])
    return groups


def _nullable(target: _Target, fk: _ForeignKey) -> bool:
    return all(bool(target.columns[c].get("nullable", True)) for c in fk.columns)


# --------------------------------------------------------------------------- inserting
def _insert_batch(
    conn: Connection, batch: Sequence[_TableData], result: LoadResult, models: _Models
) -> None:
    if not batch:
        return
    inspector = sa_inspect(conn)
    dialect = _dialect(conn)
    default_schema = inspector.default_schema_name
    targets: dict[tuple[str | None, str], _Target] = {}
    parts: dict[tuple[str | None, str], list[_Rows]] = {}
    progress = _Progress()
    for data in batch:
        target = _find_target(inspector, dialect, data, models)
        key = (target.schema or default_schema, target.name)
        target = targets.setdefault(key, target)
        parts.setdefault(key, []).append(_prepared(target, data))
    for group in _plan(targets, default_schema):
        steps = []
        cycle = tuple(sorted(targets[k].label for k in group)) if len(group) > 1 else ()
        for position, key in enumerate(group):
            target = targets[key]
            later = set(group[position + 1 :])
            ahead = [
                fk
                for fk in target.foreign_keys
                if (fk.parent[0] or default_schema, fk.parent[1]) in later
            ]
            deferred = tuple(fk for fk in ahead if _nullable(target, fk))
            unordered = len(deferred) < len(ahead)
            self_refs = tuple(
                fk
                for fk in target.foreign_keys
                if (fk.parent[0] or default_schema, fk.parent[1]) == key and _nullable(target, fk)
            )
            steps.append(
                _Step(
                    target,
                    _numbered_last(target, parts[key]),
                    deferred,
                    cycle,
                    unordered,
                    self_refs,
                )
            )
        updates = [_insert_step(conn, step, inspector, progress) for step in steps]
        for step, pending in zip(steps, updates, strict=True):
            _set_deferred(conn, step, pending)
        for step in steps:
            target = step.target
            loaded = sum(len(part.rows) for part in step.parts)
            result.rows[target.label] = result.rows.get(target.label, 0) + loaded
            _advance(conn, target, {c for part in step.parts for row in part.rows for c in row})


def _advance(conn: Connection, target: _Target, given: set[str]) -> None:
    """Move the counters behind the ``given`` columns of ``target`` past the values in it."""
    _dialect(conn).advance_sequences(
        conn,
        _qualified(conn, target.schema, target.name),
        [
            LoadedColumn(c, _quote(conn, c), info)
            for c, info in target.columns.items()
            if c in given
        ],
    )


def _numbered_last(target: _Target, parts: list[_Rows]) -> list[_Rows]:
    """``parts`` with the rows that leave a column the database numbers to it (a null or
    missing id) moved after every row that gives that column a value, each in file order
    otherwise: the database's numbers then start past the given ones (see
    :func:`_insert_step`), so that neither collides with the other."""
    given = {c for part in parts for row in part.rows for c in row if _generated(target, c)}
    if not given:
        return parts
    first: list[_Rows] = []
    last: list[_Rows] = []
    for part in parts:
        pairs = list(zip(part.rows, part.where, strict=True))
        explicit = [(r, w) for r, w in pairs if given <= r.keys()]
        numbered = [(r, w) for r, w in pairs if not given <= r.keys()]
        if explicit:
            first.append(_Rows(part.data, [r for r, _ in explicit], [w for _, w in explicit]))
        if numbered:
            last.append(_Rows(part.data, [r for r, _ in numbered], [w for _, w in numbered], True))
    return first + last


def _prepared(target: _Target, data: _TableData) -> _Rows:
    """The file's rows keyed by column name, each value converted for its column."""
    rows = []
    for row, where in zip(data.rows, data.where, strict=True):
        out: dict[str, Any] = {}
        for key, value in row.items():
            column = target.column_for(key)
            if column is None:
                known = target.known_keys()
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
                raise DataLoadError(
                    f"Test-data file {str(data.path)!r}, {where}: table {data.name!r} has no "
                    f"column {key!r}.{suggestion} Its columns are {', '.join(known)}."
                )
            if column in out:
                raise DataLoadError(
                    f"Test-data file {str(data.path)!r}, {where} of table {data.name!r}: "
                    f"column {column!r} is given twice (as a column and as an attribute). "
                    "Give it once."
                )
            if value is None and _generated(target, column):
                continue  # null id: the database numbers the row, on every backend
            out[column] = _checked(target, data, where, column, value)
        rows.append(out)
    return _Rows(data, rows, list(data.where))


def _checked(target: _Target, data: _TableData, where: str, column: str, value: Any) -> Any:
    info = target.columns[column]
    if value is None:
        if not info.get("nullable", True):
            raise DataLoadError(
                f"Test-data file {str(data.path)!r}, {where} of table {data.name!r}, column "
                f"{column!r}: null, but the column is NOT NULL. Give it a value, or leave "
                "the column out when the database fills it."
            )
        return None
    column_type = _bind_type(target, column)
    try:
        return _convert(value, column_type, from_csv=data.csv)
    except (ValueError, TypeError, decimal.InvalidOperation) as exc:
        raise DataLoadError(
            f"Test-data file {str(data.path)!r}, {where} of table {data.name!r}, column "
            f"{column!r}: {value!r} {exc} (the column is {_type_name(info['type'])}). "
            "Fix the value."
        ) from None


def _generated(target: _Target, column: str) -> bool:
    """A column the database numbers itself (NULL there may mean 'the next id'): an
    identity, ``AUTO_INCREMENT`` or serial column, or a table's only integer primary-key
    column where the inspector reports key positions (SQLite's rowid)."""
    info = target.columns[column]
    if info.get("autoincrement") is True or info.get("identity"):
        return True
    if "nextval(" in str(info.get("default") or ""):
        return True
    positions = [c.get("primary_key") or 0 for c in target.columns.values()]
    return (
        info.get("primary_key") == 1
        and max(positions) == 1
        and isinstance(info["type"], sqltypes.Integer)
    )


def _bind_type(target: _Target, column: str) -> Any:
    """The type the value is bound with: the model's column type, else the database's."""
    own = target.model.column(column) if target.model is not None else None
    return own.type if own is not None else target.columns[column]["type"]


def _type_name(column_type: Any) -> str:
    try:
        return str(column_type)
    except Exception:  # a type that cannot render without a dialect
        return type(column_type).__name__


def _convert(value: Any, column_type: Any, *, from_csv: bool) -> Any:
    """``value`` as the column takes it; ValueError / TypeError says why it cannot."""
    if isinstance(column_type, sqltypes.TypeDecorator):
        return value  # the model's own type processes what the file gives
    if isinstance(column_type, sqltypes.Boolean):
        return _as_bool(value)
    if isinstance(column_type, sqltypes.Integer):
        # TINYINT(1) is how MySQL and MariaDB report a BOOLEAN column
        return _as_int(value, words=getattr(column_type, "display_width", None) == 1)
    if isinstance(column_type, sqltypes.Numeric):
        return _as_number(value, isinstance(column_type, sqltypes.Float))
    if isinstance(column_type, sqltypes.DateTime):
        return _as_datetime(value)
    if isinstance(column_type, sqltypes.Date):
        return _as_date(value)
    if isinstance(column_type, sqltypes.Time):
        return _as_time(value)
    if isinstance(column_type, sqltypes.Enum) and column_type.enums:
        return _as_enum(value, column_type)
    if isinstance(column_type, sqltypes.Uuid):
        if isinstance(value, uuid.UUID):
            return value
        if isinstance(value, str):
            try:
                return uuid.UUID(value.strip())
            except ValueError:
                raise ValueError("is not a UUID") from None
        raise TypeError(f"is a {_kind(value)}, not a UUID")
    if isinstance(column_type, sqltypes.JSON):
        if from_csv:  # the field holds JSON text
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("is not valid JSON") from None
        return value  # the column's type serialises it
    if isinstance(value, (dict, list)):
        if isinstance(column_type, sqltypes.ARRAY):
            return value
        return json.dumps(value)
    if isinstance(column_type, sqltypes.String) and not isinstance(column_type, sqltypes.Enum):
        if isinstance(value, bool):
            raise TypeError("is a boolean; the column holds text (quote it)")
        if isinstance(value, (int, float, decimal.Decimal)):
            return str(value)
        if isinstance(value, (dt.date, dt.time)):
            return value.isoformat()
    return value


_BOUND = (
    sqltypes.DateTime,
    sqltypes.Date,
    sqltypes.Time,
    sqltypes.Numeric,
    sqltypes.JSON,
    sqltypes.Uuid,
)
"""Column types whose SQLAlchemy bind processing a loaded value goes through (the
format SQLite stores timestamps in, decimals where the driver has none, JSON
serialisation), as a model's would."""


def _as_enum(value: Any, column_type: sqltypes.Enum) -> Any:
    """One of the enum's names; a Python enum class also takes its members and values."""
    names = list(column_type.enums)
    members = getattr(column_type, "enum_class", None)
    if members is not None:
        if isinstance(value, members):
            return value
        for member in members:
            if value == member.value and not isinstance(value, bool):
                return member
    if value in names:
        return value
    raise ValueError(f"is not one of {', '.join(names)}")


def _as_number(value: Any, floating: bool) -> Any:
    if isinstance(value, bool):
        raise TypeError("is a boolean, not a number")
    if isinstance(value, str):
        try:
            number = decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValueError("is not a number") from None
        if floating:
            return float(number)
        if not number.is_finite():
            raise ValueError("is not a finite number")
        return number
    if isinstance(value, (int, float, decimal.Decimal)):
        return value
    raise TypeError(f"is a {_kind(value)}, not a number")


def _as_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # YAML reads 10:30 as 630
        raise ValueError("is a number; write the time in quotes ('10:30')")
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(_utc_offset(value.strip()))
        except ValueError:
            raise ValueError("is not an ISO 8601 time (HH:MM[:SS])") from None
    raise TypeError(f"is a {_kind(value)}, not a time")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE or lowered == "1":
            return True
        if lowered in _FALSE or lowered == "0":
            return False
    raise ValueError("is not a boolean (true/false, yes/no, on/off, 1/0)")


def _as_int(value: Any, *, words: bool = False) -> int:
    """An integer; with ``words`` (a boolean column that reports itself as an integer),
    also the boolean words (``yes`` 1, ``no`` 0)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE | _FALSE:
            if words:
                return 1 if lowered in _TRUE else 0
            raise ValueError("is not an integer; yes/no words fill boolean columns only")
        try:
            return int(lowered)
        except ValueError:
            pass
    raise ValueError("is not an integer")


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(_utc_offset(value.strip()))
        except ValueError:
            raise ValueError("is not an ISO 8601 timestamp (YYYY-MM-DD[ HH:MM[:SS]])") from None
    raise TypeError(f"is a {_kind(value)}, not a timestamp")


def _utc_offset(value: str) -> str:
    """A trailing ``Z`` (or ``z``: UTC) as ``+00:00``, which ``fromisoformat`` reads on
    every Python (before 3.11 it takes no ``Z``, and none takes ``z``)."""
    return value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0):
            raise ValueError("has a time of day; the column holds dates")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("is not an ISO 8601 date (YYYY-MM-DD)") from None
    raise TypeError(f"is a {_kind(value)}, not a date")


@dataclass
class _Pending:
    """Values of deferred foreign keys, set after the cycle's tables are in."""

    key: tuple[str, ...] = ()
    rows: list[tuple[dict[str, Any], dict[str, Any], _Rows, str]] = field(default_factory=list)
    """(primary-key values, deferred values, the rows they came from, where)."""


def _insert_step(
    conn: Connection, step: _Step, inspector: Inspector, progress: _Progress
) -> _Pending:
    target = step.target
    pending = _Pending()
    later = _later_references(step)
    if later:
        key = inspector.get_pk_constraint(target.name, schema=target.schema)["constrained_columns"]
        pending.key = tuple(key or ())
    position = 0
    advanced = False
    for part in step.parts:
        if part.numbered and not advanced:  # past the ids the rows before gave
            given = {c for done in step.parts if not done.numbered for r in done.rows for c in r}
            _advance(conn, target, given)
            advanced = True
        rows = part.rows
        if later and pending.key:
            rows = []
            for row, where in zip(part.rows, part.where, strict=True):
                columns = later.get(position, ())
                position += 1
                deferred = {c: row[c] for c in columns if row.get(c) is not None}
                if deferred and all(row.get(k) is not None for k in pending.key):
                    pending.rows.append(({k: row[k] for k in pending.key}, deferred, part, where))
                    row = {c: (None if c in deferred else v) for c, v in row.items()}
                rows.append(row)
        for columns, indexes in _groups(rows):
            for chunk in _chunks(indexes, len(columns)):
                chosen = [rows[i] for i in chunk]
                _insert_chunk(conn, step, part, columns, chosen, chunk, progress)
    return pending


def _later_references(step: _Step) -> dict[int, tuple[str, ...]]:
    """Per row (numbered across the step's parts): the foreign-key columns to insert as
    NULL and set after: those pointing at a table of the cycle inserted later, and those
    pointing at a row of this table that comes later in the data."""
    rows = [row for part in step.parts for row in part.rows]
    out: dict[int, list[str]] = {}
    if step.deferred:
        columns = [c for fk in step.deferred for c in fk.columns]
        for index in range(len(rows)):
            out[index] = list(columns)
    for fk in step.self_refs:
        first: dict[tuple[Any, ...], int] = {}
        for index, row in enumerate(rows):
            value = tuple(row.get(c) for c in fk.referred)
            if None not in value:
                first.setdefault(value, index)
        for index, row in enumerate(rows):
            value = tuple(row.get(c) for c in fk.columns)
            if None not in value and first.get(value, -1) > index:
                out.setdefault(index, []).extend(fk.columns)
    return {index: tuple(columns) for index, columns in out.items()}


def _groups(rows: Sequence[Mapping[str, Any]]) -> Iterator[tuple[tuple[str, ...], list[int]]]:
    """Runs of consecutive rows with the same columns, in file order (row indexes)."""
    current: tuple[str, ...] | None = None
    group: list[int] = []
    for index, row in enumerate(rows):
        columns = tuple(row)
        if columns != current and group:
            yield current or (), group
            group = []
        current = columns
        group.append(index)
    if group:
        yield current or (), group


def _chunks(indexes: list[int], width: int) -> Iterator[list[int]]:
    size = max(1, _MAX_PARAMS // max(1, width))
    for start in range(0, len(indexes), size):
        yield indexes[start : start + size]


@dataclass
class _Progress:
    """How far one batch got."""

    inserted: bool = False
    """An INSERT of this batch went in: the driver has begun the transaction (SQLite's
    drivers begin it only at the first write), so a savepoint nests inside it."""


def _insert_chunk(
    conn: Connection,
    step: _Step,
    part: _Rows,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    indexes: list[int],
    progress: _Progress,
) -> None:
    """One INSERT; after the batch's first, inside a savepoint, so that a refused one
    undoes only itself (PostgreSQL aborts the transaction, and a rollback sandbox puts
    it back at the innermost savepoint) and its rows can be sent again to find the one
    at fault."""
    savepoint = conn.begin_nested() if progress.inserted else None
    try:
        _send(conn, step.target, columns, rows)
    except DBAPIError as exc:
        if savepoint is not None and savepoint.is_active:
            with contextlib.suppress(DBAPIError):
                savepoint.rollback()
        where = [part.where[i] for i in indexes]
        raise _rejected(conn, step, part.data, columns, rows, where, exc) from exc
    if savepoint is not None:
        savepoint.commit()
    progress.inserted = True


def _send(
    conn: Connection, target: _Target, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """One INSERT of ``rows`` (all with ``columns``): through the model's table when
    there is one, else as text with every value bound."""
    dialect = _dialect(conn)
    table_sql = _qualified(conn, target.schema, target.name)
    model = target.model
    own = [model.column(c) for c in columns] if model is not None else []
    if model is not None and not target.identity_always and all(c is not None for c in own):
        table = model.table
        keyed = [{col.key: row[col.name] for col in own if col is not None} for row in rows]
        if not columns or len(keyed) == 1:
            for one in keyed:  # one INSERT each: defaults for every row
                conn.execute(table.insert(), one)
        else:
            conn.execute(table.insert().values(keyed))
        return
    if not columns:
        stmt = text(dialect.insert_defaults_sql(table_sql))
        for _ in rows:
            conn.execute(stmt)
        return
    types = [_bind_type(target, c) for c in columns]
    column_sql = ", ".join(_quote(conn, c) for c in columns)
    values = ", ".join(
        "(" + ", ".join(f":p{r}_{i}" for i in range(len(columns))) + ")" for r in range(len(rows))
    )
    overriding = dialect.identity_override() if target.identity_always else ""
    insert = text(f"INSERT INTO {table_sql} ({column_sql}){overriding} VALUES {values}")
    typed = [
        bindparam(f"p{r}_{i}", type_=t)
        for r in range(len(rows))
        for i, t in enumerate(types)
        if isinstance(t, _BOUND)
    ]
    if typed:
        insert = insert.bindparams(*typed)
    params = {f"p{r}_{i}": row[c] for r, row in enumerate(rows) for i, c in enumerate(columns)}
    conn.execute(insert, params)


def _set_deferred(conn: Connection, step: _Step, pending: _Pending) -> None:
    target = step.target
    table_sql = _qualified(conn, target.schema, target.name)
    for key, later, part, where in pending.rows:
        assignments = ", ".join(f"{_quote(conn, c)} = :s{i}" for i, c in enumerate(later))
        condition = " AND ".join(f"{_quote(conn, c)} = :k{i}" for i, c in enumerate(key))
        params = {f"s{i}": v for i, v in enumerate(later.values())}
        params.update({f"k{i}": v for i, v in enumerate(key.values())})
        try:
            conn.execute(text(f"UPDATE {table_sql} SET {assignments} WHERE {condition}"), params)
        except DBAPIError as exc:
            column = _column_in(_reason(exc), list(later)) or next(iter(later))
            why = (
                f"the tables {', '.join(step.cycle)} reference each other, so this column was "
                "set after they were all inserted"
                if step.cycle
                else "it points at a row later in the data, so it was set after the rows were in"
            )
            raise DataLoadError(
                f"Test-data file {str(part.data.path)!r}, {where} of table {part.data.name!r}, "
                f"column {column!r}: the database rejected the row: {_reason(exc)}. As {why}; "
                "check that the row it points to is in the data."
            ) from exc


# --------------------------------------------------------------------------- rejected rows
def _rejected(
    conn: Connection,
    step: _Step,
    data: _TableData,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    where: list[str],
    exc: DBAPIError,
) -> DataLoadError:
    """The error for an INSERT the database refused, naming the row and column at fault.

    Where the transaction is still usable (the INSERT ran in a savepoint, or the
    database undid only the failed statement, as SQLite and MySQL do), the rows
    are sent again one by one in savepoints, so the first that fails is known and
    the database can be asked which key it broke; where it is not (PostgreSQL, a
    batch's first INSERT), the database's message, which names the column and
    the key's value, points at the row.
    """
    target = step.target
    index, column, reason = None, None, _reason(exc)
    found = _retry_one_by_one(conn, target, columns, rows)
    if found is not None:
        index, single = found
        reason = _reason(single)
        column = _column_in(reason, list(target.columns)) or _blame(conn, target, rows[index])
        if column is None:
            column = _value_in(reason, [rows[index]], list(rows[index]))[1]
        if column is None:
            column = _offline(target, [rows[index]], None)[1]
    else:
        column = _column_in(reason, list(target.columns))
        if column is not None:
            index = _row_with_value(reason, rows, column)
        else:
            index, column = _value_in(reason, rows, list(columns))
        if index is None:
            index, column = _offline(target, rows, column)
    cycle = (
        f" The tables {', '.join(step.cycle)} reference each other through NOT NULL columns, "
        "so no insert order can satisfy them: make one of those columns nullable, or load "
        "these rows with a .sql file that defers the constraints."
        if step.unordered
        else ""
    )
    if index is None:
        span = f"{where[0]} to {where[-1]}" if len(where) > 1 else where[0]
        at = f", column {column!r}" if column else ""
        return DataLoadError(
            f"Inserting the rows of table {data.name!r} from {str(data.path)!r} failed "
            f"({span}{at}): {reason}. Fix those rows (a missing parent row or a duplicate "
            f"key is the usual cause); the current transaction should be rolled back.{cycle}"
        )
    at = f", column {column!r}" if column else ""
    return DataLoadError(
        f"Test-data file {str(data.path)!r}, {where[index]} of table {data.name!r}{at}: the "
        f"database rejected the row: {reason}. Fix that row (a missing parent row or a "
        f"duplicate key is the usual cause); the current transaction should be rolled "
        f"back.{cycle}"
    )


def _offline(
    target: _Target, rows: list[dict[str, Any]], column: str | None
) -> tuple[int | None, str | None]:
    """Without the database's help: the first row without a value for the NOT NULL
    ``column`` the message named, or whose text is longer than its column allows;
    else the one row, if only one was sent."""
    for index, row in enumerate(rows):
        required = column is not None and not target.columns[column].get("nullable", True)
        if required and row.get(column or "") is None:
            return index, column
        for name, value in row.items():
            length = getattr(target.columns[name]["type"], "length", None)
            too_long = isinstance(value, str) and isinstance(length, int) and len(value) > length
            if too_long and column in (None, name):
                return index, name
    return (0, column) if len(rows) == 1 else (None, column)


def _retry_one_by_one(
    conn: Connection, target: _Target, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> tuple[int, DBAPIError] | None:
    """Send ``rows`` one at a time, each in a savepoint, keeping those that go in:
    the first one refused and its error; None when savepoints cannot be used (the
    transaction is aborted) or every row went in on its own."""
    for index, row in enumerate(rows):
        try:
            savepoint = conn.begin_nested()
        except DBAPIError:
            return None
        try:
            _send(conn, target, columns, [row])
        except DBAPIError as exc:
            try:
                savepoint.rollback()
            except DBAPIError:
                return None
            return index, exc
        savepoint.commit()
    return None


_NAME_DELIMITERS = r"""["'`(\[.,]"""


def _column_in(message: str, columns: Sequence[str]) -> str | None:
    """The column a database message names (quoted, in parentheses or after a dot),
    the earliest mentioned; None when it names none of ``columns``."""
    best: tuple[int, str] | None = None
    for column in columns:
        pattern = rf"{_NAME_DELIMITERS}\s?{re.escape(column)}(?=[\"'`)\],]|$|\s)"
        found = re.search(pattern, message)
        if found is not None and (best is None or found.start() < best[0]):
            best = (found.start(), column)
    return best[1] if best else None


def _row_with_value(message: str, rows: list[dict[str, Any]], column: str) -> int | None:
    """The row whose value of ``column`` the message quotes (the second such row when
    the message is about a duplicate); for a NULL complaint, the first row without it."""
    matches = [
        i
        for i, row in enumerate(rows)
        if row.get(column) is not None and _quotes(message, row[column])
    ]
    if matches:
        duplicate = re.search(r"duplicate|unique|already exists", message, re.IGNORECASE)
        return matches[1] if duplicate and len(matches) > 1 else matches[0]
    if re.search(r"null", message, re.IGNORECASE):
        for index, row in enumerate(rows):
            if row.get(column) is None:
                return index
    return None


def _value_in(
    message: str, rows: list[dict[str, Any]], columns: Sequence[str]
) -> tuple[int | None, str | None]:
    """The first (row, column) whose value the message quotes."""
    for index, row in enumerate(rows):
        for column in columns:
            value = row.get(column)
            if value is not None and _quotes(message, value):
                return index, column
    return None, None


def _quotes(message: str, value: Any) -> bool:
    shown = value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)
    if not shown:
        return False
    pattern = rf"""(?:["'(=]|=\s){re.escape(shown)}(?=["')]|$)"""
    return re.search(pattern, message) is not None


def _blame(conn: Connection, target: _Target, row: Mapping[str, Any]) -> str | None:
    """Ask the database which key ``row`` (refused on its own) broke: a foreign key
    whose parent row is missing, or a unique key another row already holds."""
    try:
        for fk in target.foreign_keys:
            values = [row.get(c) for c in fk.columns]
            if any(v is None for v in values):
                continue
            if not _exists(
                conn, fk.parent[0], fk.parent[1], dict(zip(fk.referred, values, strict=True))
            ):
                return fk.columns[0]
        inspector = sa_inspect(conn)
        keys: list[Sequence[str | None]] = [
            inspector.get_pk_constraint(target.name, schema=target.schema)["constrained_columns"]
        ]
        keys += [
            u["column_names"]
            for u in inspector.get_unique_constraints(target.name, schema=target.schema)
        ]
        keys += [
            i["column_names"]
            for i in inspector.get_indexes(target.name, schema=target.schema)
            if i.get("unique")
        ]
        for key in keys:
            names = [c for c in key if c]
            if not names or len(names) < len(key) or any(row.get(c) is None for c in names):
                continue
            if _exists(conn, target.schema, target.name, {c: row[c] for c in names}):
                return names[0]
    except DBAPIError:
        return None
    return None


def _exists(conn: Connection, schema: str | None, name: str, values: Mapping[str, Any]) -> bool:
    condition = " AND ".join(f"{_quote(conn, c)} = :v{i}" for i, c in enumerate(values))
    params = {f"v{i}": v for i, v in enumerate(values.values())}
    stmt = text(f"SELECT 1 FROM {_qualified(conn, schema, name)} WHERE {condition}")
    return conn.execute(stmt, params).first() is not None


# --------------------------------------------------------------------------- helpers
def _backend(conn: Connection) -> Backend:
    backend = backend_named(conn.dialect.name)
    if backend is None:
        raise DataLoadError(
            f"Test data cannot be loaded into a {conn.dialect.name!r} database: dbrewind "
            "supports sqlite, postgresql and mysql/mariadb."
        )
    return backend


def _dialect(conn: Connection) -> Dialect:
    return get_dialect(_backend(conn))


def _quote(conn: Connection, name: str) -> str:
    """``name`` as a quoted identifier for a :func:`~sqlalchemy.text` statement.

    Always quoted, and written as the server reads it (``%`` not doubled: ``text()``
    does that for the driver), with ``:`` escaped so that ``text()`` never takes
    part of a name for a bind parameter.
    """
    preparer = conn.dialect.identifier_preparer
    escaped = name.replace(preparer.escape_quote, preparer.escape_to_quote)
    return f"{preparer.initial_quote}{escaped}{preparer.final_quote}".replace(":", "\\:")


def _qualified(conn: Connection, schema: str | None, name: str) -> str:
    if schema:
        return f"{_quote(conn, schema)}.{_quote(conn, name)}"
    return _quote(conn, name)


def _reason(exc: DBAPIError) -> str:
    """The driver's message on one line, without its closing full stop."""
    message = str(exc.orig) if exc.orig is not None else str(exc)
    return " ".join(message.split()).rstrip(".")
