"""Loading test-data files into a database: ``.sql``, ``.json`` and ``.csv``.

::

    from dbrewind.data import load_data

    with engine.begin() as conn:
        load_data(conn, "authors.json", "books.csv", "views.sql", base_dir=HERE / "data")

The three formats:

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
    ``{"table": [{"column": value, ...}, ...], ...}``. Tables are inserted
    parents first, following the database's foreign keys; rows of one table
    keep their order in the file. Objects and arrays are stored as JSON
    text (PostgreSQL ``ARRAY`` columns receive lists as arrays).
``.csv``
    The file name without its extension is the table (``public.books.csv``
    names a schema too), the header row names the columns. An empty field is
    ``NULL``; in boolean columns ``true``/``false`` (also ``t``/``f``,
    ``yes``/``no``, ``on``/``off``) become booleans, in integer columns 1/0.

Consecutive JSON and CSV files in one call form one batch, inserted in
foreign-key order across the files; ``.sql`` files run where they stand, so a
schema file can precede the data it creates tables for. On PostgreSQL the
sequences behind columns that were given explicit values are moved past the
loaded values, so the next ``INSERT`` without an id does not collide.

Everything runs on the given connection, inside its current transaction
(begun automatically when none is open); committing or rolling back is the
caller's choice. On MySQL a DDL statement in a ``.sql`` file commits that
transaction implicitly, as it always does there.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Inspector
from sqlalchemy.exc import DBAPIError, NoSuchTableError

from ._backends import Backend, backend_named
from ._graph import children_first
from ._sql import split
from .dialects import Dialect, get_dialect
from .dialects._syntax import syntax_for
from .dialects.base import LoadedColumn
from .exceptions import DataLoadError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "DATA_SUFFIXES",
    "LoadResult",
    "aload_data",
    "load_data",
    "split_sql",
]

DATA_SUFFIXES = (".sql", ".json", ".csv")
"""The file types :func:`load_data` understands."""

PathArg = str | os.PathLike[str]

_TRUE = {"true", "t", "yes", "y", "on"}
_FALSE = {"false", "f", "no", "n", "off"}


@dataclass
class LoadResult:
    """What one :func:`load_data` call loaded."""

    files: tuple[Path, ...] = ()
    """The files, resolved, in the order they were loaded."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows inserted per table from JSON and CSV files (in insertion order)."""
    statements: int = 0
    """SQL statements executed from ``.sql`` files."""


# --------------------------------------------------------------------------- public API
def load_data(
    conn: Connection,
    *paths: PathArg,
    base_dir: PathArg | None = None,
) -> LoadResult:
    """Load test-data files into the database behind ``conn``, in the order given.

    :param conn: a SQLAlchemy Connection; the data goes into its current
        transaction, which the caller commits or rolls back.
    :param paths: ``.sql``, ``.json`` or ``.csv`` files; relative paths are
        taken relative to ``base_dir``.
    :param base_dir: the directory relative paths start from (default: the
        current directory).
    :raises DataLoadError: a file is missing, of an unknown type or malformed,
        or names a table or column the database does not have, or the
        database rejected a statement or row. The message names the file and
        the line, table or column, and what to change.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    files = [_resolve(base, p) for p in paths]
    result = LoadResult(files=tuple(files))
    batch: list[_TableData] = []
    for path in files:
        if path.suffix.lower() == ".sql":
            _insert_batch(conn, batch, result)
            batch = []
            result.statements += _run_sql_file(conn, path)
        elif path.suffix.lower() == ".json":
            batch.extend(_read_json(path))
        else:
            batch.append(_read_csv(path))
    _insert_batch(conn, batch, result)
    return result


async def aload_data(
    conn: AsyncConnection,
    *paths: PathArg,
    base_dir: PathArg | None = None,
) -> LoadResult:
    """:func:`load_data` for an :class:`~sqlalchemy.ext.asyncio.AsyncConnection`."""

    def _load(sync_conn: Connection) -> LoadResult:
        return load_data(sync_conn, *paths, base_dir=base_dir)

    return await conn.run_sync(_load)


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
    raw = conn.execution_options(no_parameters=True)
    for line, statement in statements:
        try:
            raw.exec_driver_sql(statement)
        except DBAPIError as exc:
            first = statement.splitlines()[0][:80]
            raise DataLoadError(
                f"SQL file {str(path)!r}, statement at line {line} ({first!r}) failed: "
                f"{_reason(exc)}. Fix that statement; the statements before it have run "
                "in the current transaction, so roll it back before retrying."
            ) from exc
    return len(statements)


# --------------------------------------------------------------------------- JSON and CSV
@dataclass
class _TableData:
    """Rows for one table read from one file."""

    name: str
    path: Path
    rows: list[dict[str, Any]]
    where: list[str]
    """Per row: where it is in the file (for messages)."""
    csv: bool = False


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
        document = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataLoadError(
            f"Test-data file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}. Fix the JSON there; the expected shape is "
            '{"table": [{"column": value, ...}, ...]}.'
        ) from exc
    if not isinstance(document, dict):
        raise DataLoadError(
            f"Test-data file {str(path)!r} holds a JSON {type(document).__name__}, not an "
            'object. Write it as {"table": [{"column": value, ...}, ...]}.'
        )
    tables: list[_TableData] = []
    for name, rows in document.items():
        if not isinstance(rows, list):
            raise DataLoadError(
                f"Test-data file {str(path)!r}: the value of table {name!r} is a JSON "
                f"{type(rows).__name__}; it must be a list of row objects "
                '([{"column": value, ...}, ...]).'
            )
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataLoadError(
                    f"Test-data file {str(path)!r}: row {index} of table {name!r} is a JSON "
                    f"{type(row).__name__}; each row must be an object "
                    '{"column": value, ...}.'
                )
        tables.append(
            _TableData(name, path, rows, [f"row {i}" for i in range(len(rows))], csv=False)
        )
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
        rows: list[dict[str, Any]] = []
        where: list[str] = []
        for record in reader:
            if not record:
                continue
            if len(record) != len(header):
                raise DataLoadError(
                    f"CSV file {str(path)!r}, line {reader.line_num}: {len(record)} fields, "
                    f"but the header names {len(header)} columns. Make every line match the "
                    "header (quote fields that contain commas)."
                )
            rows.append(
                {
                    col: (value if value != "" else None)
                    for col, value in zip(header, record, strict=True)
                }
            )
            where.append(f"line {reader.line_num}")
    except csv.Error as exc:
        raise DataLoadError(
            f"CSV file {str(path)!r}, line {reader.line_num}: {exc}. Fix the quoting there."
        ) from exc
    return _TableData(name, path, rows, where, csv=True)


@dataclass
class _Target:
    """A table as the database describes it."""

    schema: str | None
    name: str
    columns: dict[str, Mapping[str, Any]]
    identity_always: bool
    parents: list[tuple[str | None, str]]


def _find_table(inspector: Inspector, name: str, data: _TableData) -> _Target:
    candidates: list[tuple[str | None, str]] = [(None, name)]
    if "." in name:
        prefix, _, rest = name.partition(".")
        candidates.append((prefix, rest))
    for schema, bare in candidates:
        try:
            columns = inspector.get_columns(bare, schema=schema)
        except NoSuchTableError:
            continue
        if not columns:
            continue
        always = any(
            isinstance(col.get("identity"), dict) and bool(col["identity"].get("always"))
            for col in columns
        )
        parents: list[tuple[str | None, str]] = [
            (fk.get("referred_schema") or schema, fk["referred_table"])
            for fk in inspector.get_foreign_keys(bare, schema=schema)
        ]
        return _Target(schema, bare, {c["name"]: c for c in columns}, always, parents)
    known = sorted(inspector.get_table_names())
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    source = "its file name" if data.csv else "the JSON key"
    raise DataLoadError(
        f"Test-data file {str(data.path)!r} names table {name!r} ({source}), which does not "
        f"exist in the database.{suggestion} Create the table first (run the schema setup "
        "or a .sql file before the data), or fix the name."
    )


def _insert_batch(conn: Connection, batch: Sequence[_TableData], result: LoadResult) -> None:
    if not batch:
        return
    inspector = sa_inspect(conn)
    default_schema = inspector.default_schema_name
    targets: dict[str, _Target] = {}
    for data in batch:
        if data.name not in targets:
            targets[data.name] = _find_table(inspector, data.name, data)

    def node(schema: str | None, name: str) -> tuple[str | None, str]:
        return (schema or default_schema, name)

    by_node = {node(t.schema, t.name): key for key, t in targets.items()}
    edges = [
        (key, by_node[node(*parent)])
        for key, target in targets.items()
        for parent in target.parents
        if node(*parent) in by_node
    ]
    keys = list(targets)
    order = list(reversed(children_first(sorted(keys), edges)))
    for key in order:
        target = targets[key]
        loaded = 0
        for data in batch:
            if data.name == key:
                loaded += _insert_rows(conn, target, data)
        result.rows[key] = result.rows.get(key, 0) + loaded
        given = {c for data in batch if data.name == key for row in data.rows for c in row}
        _dialect(conn).advance_sequences(
            conn,
            _qualified(conn, target.schema, target.name),
            [
                LoadedColumn(c, _quote(conn, c), info)
                for c, info in target.columns.items()
                if c in given
            ],
        )


def _insert_rows(conn: Connection, target: _Target, data: _TableData) -> int:
    for row, where in zip(data.rows, data.where, strict=True):
        for column in row:
            if column not in target.columns:
                hint = difflib.get_close_matches(column, list(target.columns), n=1)
                suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
                raise DataLoadError(
                    f"Test-data file {str(data.path)!r}, {where}: table {data.name!r} has no "
                    f"column {column!r}.{suggestion} Its columns are "
                    f"{', '.join(target.columns)}."
                )
    table_sql = _qualified(conn, target.schema, target.name)
    count = 0
    for columns, group in _groups(data):
        values = [_convert_row(row, columns, target, data.csv) for row in group]
        count += len(values)
        if not columns:
            stmt = _dialect(conn).insert_defaults_sql(table_sql)
            for _ in values:
                _execute_insert(conn, stmt, None, data)
            continue
        column_sql = ", ".join(_quote(conn, c) for c in columns)
        binds = ", ".join(f":p{i}" for i in range(len(columns)))
        overriding = _dialect(conn).identity_override() if target.identity_always else ""
        stmt = f"INSERT INTO {table_sql} ({column_sql}){overriding} VALUES ({binds})"
        params = [{f"p{i}": row[i] for i in range(len(columns))} for row in values]
        _execute_insert(conn, stmt, params, data)
    return count


def _execute_insert(
    conn: Connection, stmt: str, params: list[dict[str, Any]] | None, data: _TableData
) -> None:
    try:
        conn.execute(text(stmt), params)
    except DBAPIError as exc:
        raise DataLoadError(
            f"Inserting the rows of table {data.name!r} from {str(data.path)!r} failed: "
            f"{_reason(exc)}. Fix those rows (a missing parent row or a duplicate key is "
            "the usual cause); the current transaction should be rolled back."
        ) from exc


def _groups(data: _TableData) -> Iterator[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """Runs of consecutive rows with the same columns, in file order."""
    current: tuple[str, ...] | None = None
    group: list[dict[str, Any]] = []
    for row in data.rows:
        columns = tuple(row)
        if columns != current and group:
            yield current or (), group
            group = []
        current = columns
        group.append(row)
    if group:
        yield current or (), group


def _convert_row(
    row: Mapping[str, Any], columns: tuple[str, ...], target: _Target, from_csv: bool
) -> list[Any]:
    return [_convert(row[c], target.columns[c]["type"], from_csv) for c in columns]


def _convert(value: Any, column_type: Any, from_csv: bool) -> Any:
    if value is None:
        return None
    if from_csv:
        if isinstance(column_type, (sqltypes.Boolean, sqltypes.Integer)):
            lowered = str(value).strip().lower()
            if lowered in _TRUE:
                return True if isinstance(column_type, sqltypes.Boolean) else 1
            if lowered in _FALSE:
                return False if isinstance(column_type, sqltypes.Boolean) else 0
        return value
    if isinstance(value, (dict, list)) and not isinstance(column_type, sqltypes.ARRAY):
        return json.dumps(value)
    return value


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
    return " ".join(str(exc.orig).split()) if exc.orig is not None else str(exc)
