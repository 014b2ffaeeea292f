"""Names built to break SQL, and values of every type

Hypothesis generates schemas whose table, column and (PostgreSQL) schema names
are made of quotes, backticks, semicolons, backslashes, ``%``, ``:name``,
comment starts, spaces, unicode, reserved words and names at the database's
length limit; columns of every common type, nullable or not; baseline rows;
and committed test writes. A rewind must give back every baseline row by value,
every counter (the next id a table hands out) and leave nothing dirty; the
rollback sandbox must roll the same writes back exactly.

``DBREWIND_HYPOTHESIS_EXAMPLES`` sets the number of generated schemas per
database (default 10 on SQLite, 8 on PostgreSQL, 5 on MariaDB/MySQL); under
``CI`` the examples are derandomized.
"""

from __future__ import annotations

import datetime as dt
import os
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKeyConstraint,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql as mysql_types
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.schema import CreateSchema, DropSchema

from dbrewind import Rewinder
from dbrewind.sandbox import Sandbox

pytestmark = [
    pytest.mark.filterwarnings("ignore:Dialect sqlite\\+pysqlite does \\*not\\* support Decimal"),
    pytest.mark.timeout(600),
]

# generated schemas per database; building one costs ~0.5 s on SQLite, ~1.5 s on
# PostgreSQL and ~3 s on MariaDB (DDL, trigger and routine creation)
EXAMPLES = {"sqlite": 10, "postgresql": 8, "mysql": 5}
if os.environ.get("DBREWIND_HYPOTHESIS_EXAMPLES"):
    EXAMPLES = dict.fromkeys(EXAMPLES, int(os.environ["DBREWIND_HYPOTHESIS_EXAMPLES"]))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

HOSTILE = [
    "'", '"', "`", ";", "\\", "%", "%s", "%(x)s", ":name", "?", "--", "/*", "*/", " ",
    "$1", "$$", "$f$", "{", "}", ",", ".", "(", ")", "[", "]", "\t", "é", "ß", "名", "Ω",
    "ǅ", "İ", "!", "!ddl", "_", "%_", "@", "#sql", "\n", "b_0",
]  # fmt: skip
RESERVED = [
    "order", "select", "user", "group", "table", "from", "where", "key", "index", "values",
    "default", "check", "limit", "desc", "trigger", "Order", "SELECT", "NULL", "public",
]  # fmt: skip
EMOJI = ["🦆", "😀"]  # outside the BMP: MySQL/MariaDB identifiers cannot hold them
LETTERS = ["a", "b", "x", "Z", "_", "1"]

# longest identifier: PostgreSQL counts bytes, MySQL/MariaDB characters
LIMIT = {"postgresql": 63, "mysql": 64, "sqlite": 100}
KINDS = (
    "int", "bigint", "varchar", "text", "huge_text", "binary", "huge_binary", "json", "date",
    "datetime", "datetime_tz", "decimal", "boolean", "float",
)  # fmt: skip


def _length(backend: str, name: str) -> int:
    return len(name.encode()) if backend == "postgresql" else len(name)


def _fits(backend: str, name: str) -> bool:
    return _length(backend, name) <= LIMIT[backend]


def _allowed(backend: str, name: str) -> bool:
    """Whether the database accepts ``name`` as a user's table/column/schema name at all."""
    low = name.casefold()
    if not name or low.startswith(("dbrewind", "pg_", "sqlite_")) or not _fits(backend, name):
        return False
    if backend == "mysql":
        # no trailing spaces, nothing outside the Basic Multilingual Plane
        return name == name.rstrip() and all(ord(c) <= 0xFFFF for c in name)
    return True


def _file_name_fits(backend: str, name: str) -> bool:
    """MySQL/MariaDB keep a table in files named after it, each character other than an
    ASCII letter, digit or ``_`` spelt ``@xxxx``; the file name must fit in 255 bytes."""
    if backend != "mysql":
        return True
    return sum(1 if c.isascii() and (c.isalnum() or c == "_") else 5 for c in name) <= 240


def _same_key(backend: str, name: str) -> str:
    """What two names must differ in to be two names (MySQL folds case and accents)."""
    if backend != "mysql":
        return name
    base = "".join(unicodedata.normalize("NFKD", c)[0] for c in name)
    return base.casefold().replace("ss", "s")


def pad_to_limit(backend: str, name: str, filler: str = "x") -> str:
    """``name`` made exactly as long as the database allows (cut or padded)."""
    limit = LIMIT[backend]
    while _length(backend, name) > limit:
        name = name[:-1]
    while _length(backend, name + filler) <= limit:
        name += filler
    while _length(backend, name) < limit:
        name += "x"
    return name


def names(backend: str) -> st.SearchStrategy[str]:
    """Hostile identifiers for ``backend``; sometimes exactly at its length limit."""
    pieces = HOSTILE + RESERVED + LETTERS + (EMOJI if backend != "mysql" else [])
    short = st.lists(st.sampled_from(pieces), min_size=1, max_size=5).map("".join)
    long = st.tuples(short, st.sampled_from(["x", "é", "'", "%", "名"])).map(
        lambda p: pad_to_limit(backend, *p)
    )
    return st.one_of(short, short, long).filter(lambda n: _allowed(backend, n))


@dataclass
class Col:
    name: str
    kind: str
    nullable: bool


@dataclass
class TableSpec:
    name: str
    pk: str
    pk_kind: str  # "int", "bigint", "identity", "identity_always"
    columns: list[Col]
    autoincrement_keyword: bool = False  # SQLite AUTOINCREMENT (sqlite_sequence)
    fk: str | None = None  # column referencing the first table's primary key


@dataclass
class Case:
    backend: str
    schema: str | None
    tables: list[TableSpec]
    baseline: list[list[dict[str, Any]]]
    probes: list[dict[str, Any]]
    writes: list[tuple[Any, ...]] = field(default_factory=list)


def _utc_offsets() -> st.SearchStrategy[dt.tzinfo]:
    return st.sampled_from(
        [
            dt.UTC,
            dt.timezone(dt.timedelta(hours=5, minutes=30)),
            dt.timezone(-dt.timedelta(hours=11)),
        ]
    )


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(["'", "\\", "%s", "''; DROP TABLE x; --", "\\'", "$$", ":name", ""])
_HUGE_TEXT = st.tuples(st.sampled_from(["x", "é", "'", "\\", "🦆"]), st.integers(1, 3)).map(
    lambda p: p[0] * (p[1] * 40_000)
)


def values(backend: str, kind: str) -> st.SearchStrategy[Any]:
    """Values of one column kind that ``backend`` stores."""
    if kind == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "bigint":
        return st.integers(-(2**63), 2**63 - 1)
    if kind in ("varchar", "text"):
        return _TEXT
    if kind == "huge_text":
        return _HUGE_TEXT | _TEXT
    if kind == "binary":
        return st.binary(max_size=64) | st.sampled_from([b"\x00", b"\\x00'", b"%s"])
    if kind == "huge_binary":
        return st.binary(min_size=70_000, max_size=70_100) | st.binary(max_size=8)
    if kind == "json":
        scalars = (
            st.none()
            | st.booleans()
            | st.integers(-(2**31), 2**31)
            | st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=10,
            )
        )
        return st.recursive(
            scalars,
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.text(max_size=5).filter(lambda k: "\x00" not in k), inner, max_size=3
                )
            ),
            max_leaves=6,
        )
    if kind == "date":
        return st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))
    if kind == "datetime":
        return st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31))
    if kind == "datetime_tz":
        if backend != "postgresql":
            return values(backend, "datetime")
        return st.datetimes(
            min_value=dt.datetime(1900, 1, 2),
            max_value=dt.datetime(2200, 1, 1),
            timezones=_utc_offsets(),
        )
    if kind == "decimal":
        places = 6 if backend == "sqlite" else 10
        return st.decimals(
            min_value=Decimal(-(10**8)),
            max_value=Decimal(10**8),
            places=places,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "float":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    raise AssertionError(kind)


def row_for(backend: str, table: TableSpec) -> st.SearchStrategy[dict[str, Any]]:
    """One row's values (primary key and foreign key left to the database / the run)."""
    fields = {}
    for col in table.columns:
        strategy = values(backend, col.kind)
        fields[col.name] = st.none() | strategy if col.nullable else strategy
    return st.fixed_dictionaries(fields)


@st.composite
def cases(draw: st.DrawFn, backend: str, *, max_tables: int = 3) -> Case:
    """A schema, its baseline rows, a probe row per table and a list of committed writes."""
    taken: set[str] = set()

    def fresh(strategy: st.SearchStrategy[str], used: set[str]) -> str:
        name = draw(strategy.filter(lambda n: _same_key(backend, n) not in used))
        used.add(_same_key(backend, name))
        return name

    hostile = names(backend)
    schema = None
    if backend == "postgresql" and draw(st.booleans()):
        schema = fresh(hostile, taken)
    count = draw(st.integers(1, max_tables))
    table_names: list[str] = []
    table_name = hostile.filter(lambda n: _file_name_fits(backend, n))
    if count > 1 and draw(st.booleans()):
        # long names that differ only in their last character(s)
        stem = pad_to_limit(backend, draw(table_name.map(lambda n: n[:20])), "x")
        for i in range(count):
            suffix = "abcdefghij"[i]
            name = stem[:-1] + suffix
            while not _fits(backend, name):
                stem = stem[:-2] + stem[-1]
                name = stem[:-1] + suffix
            table_names.append(name)
            taken.add(_same_key(backend, name))
    else:
        table_names = [fresh(table_name, taken) for _ in range(count)]
    kinds = KINDS if backend == "postgresql" else tuple(k for k in KINDS if k != "datetime_tz")
    pk_kinds = ["int", "bigint"] + (
        ["identity", "identity_always"] if backend == "postgresql" else []
    )
    tables = []
    for i, tname in enumerate(table_names):
        col_taken: set[str] = set()
        pk = fresh(hostile, col_taken)
        columns = [
            Col(fresh(hostile, col_taken), draw(st.sampled_from(kinds)), draw(st.booleans()))
            for _ in range(draw(st.integers(1, 5)))
        ]
        fk = fresh(hostile, col_taken) if i > 0 and draw(st.booleans()) else None
        tables.append(
            TableSpec(
                name=tname,
                pk=pk,
                pk_kind=draw(st.sampled_from(pk_kinds)),
                columns=columns,
                autoincrement_keyword=backend == "sqlite" and draw(st.booleans()),
                fk=fk,
            )
        )
    baseline = [draw(st.lists(row_for(backend, t), max_size=4)) for t in tables]
    probes = [draw(row_for(backend, t)) for t in tables]
    n = len(tables)
    write = st.one_of(
        st.tuples(st.just("insert"), st.integers(0, n - 1), st.integers(0, 9), st.data()),
        st.tuples(st.just("update"), st.integers(0, n - 1), st.integers(0, 9), st.data()),
        st.tuples(st.just("delete"), st.integers(0, n - 1), st.integers(0, 9)),
        st.tuples(st.just("truncate"), st.integers(0, n - 1)),
    )
    writes = []
    for op in draw(st.lists(write, min_size=1, max_size=8)):
        if op[0] in ("insert", "update"):
            table = tables[op[1]]
            row = op[3].draw(row_for(backend, table))
            if op[0] == "update":
                # a non-empty subset of the columns
                keep = op[3].draw(st.sets(st.sampled_from(list(row)), min_size=1))
                row = {k: v for k, v in row.items() if k in keep}
            writes.append((op[0], op[1], op[2], row))
        else:
            writes.append(op)
    return Case(backend, schema, tables, baseline, probes, writes)


# ------------------------------------------------------------------- building


def _column_type(backend: str, kind: str) -> Any:
    if kind == "int":
        return Integer()
    if kind == "bigint":
        return BigInteger()
    if kind == "varchar":
        return String(255)
    if kind in ("text", "huge_text"):
        return Text().with_variant(mysql_types.LONGTEXT(), "mysql")
    if kind in ("binary", "huge_binary"):
        return LargeBinary().with_variant(mysql_types.LONGBLOB(), "mysql")
    if kind == "json":
        return JSON()
    if kind == "date":
        return Date()
    if kind == "datetime":
        return DateTime().with_variant(mysql_types.DATETIME(fsp=6), "mysql")
    if kind == "datetime_tz":
        return DateTime(timezone=True).with_variant(mysql_types.DATETIME(fsp=6), "mysql")
    if kind == "decimal":
        return Numeric(28, 10)
    if kind == "boolean":
        return Boolean()
    if kind == "float":
        return Float()
    raise AssertionError(kind)


def build(case: Case) -> tuple[MetaData, list[Table]]:
    """The case's schema as SQLAlchemy Core tables."""
    metadata = MetaData(schema=case.schema)
    built: list[Table] = []
    for i, spec in enumerate(case.tables):
        if spec.pk_kind in ("identity", "identity_always"):
            pk = Column(
                spec.pk, BigInteger(), Identity(always=spec.pk_kind == "identity_always"),
                primary_key=True,
            )  # fmt: skip
        elif spec.pk_kind == "bigint":
            pk = Column(
                spec.pk, BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                autoincrement=True,
            )  # fmt: skip
        else:
            pk = Column(spec.pk, Integer(), primary_key=True, autoincrement=True)
        cols: list[Any] = [pk]
        cols += [
            Column(c.name, _column_type(case.backend, c.kind), nullable=c.nullable)
            for c in spec.columns
        ]
        if spec.fk is not None:
            parent = built[0]
            cols.append(Column(spec.fk, _pk(parent).type, nullable=True))
            cols.append(
                ForeignKeyConstraint(
                    [spec.fk],
                    [_pk(parent)],
                    name=f"fk;'`%{i}",
                    ondelete="CASCADE",
                )
            )
        kwargs: dict[str, Any] = {}
        if spec.autoincrement_keyword:
            kwargs["sqlite_autoincrement"] = True
        if case.backend == "mysql":
            kwargs["mysql_charset"] = "utf8mb4"
        built.append(Table(spec.name, metadata, *cols, **kwargs))
    return metadata, built


def _quote(backend: str, name: str) -> str:
    if backend == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def raw(conn: Connection, sql: str) -> None:
    """Run ``sql`` on the driver's cursor without parameters (no ``%`` / ``:name`` parsing)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def _pk(table: Table) -> Column[Any]:
    return table.primary_key.columns.values()[0]


def snapshot(engine: Engine, tables: Sequence[Table]) -> list[list[tuple[Any, ...]]]:
    """Every row of every table, by value, in primary key order."""
    with engine.connect() as conn:
        return [[tuple(r) for r in conn.execute(select(t).order_by(*_order(t)))] for t in tables]


def _order(table: Table) -> list[Column[Any]]:
    return [_pk(table)] if table.primary_key.columns else list(table.columns)


def probe_ids(engine: Engine, case: Case, tables: Sequence[Table]) -> list[int]:
    """Insert one row per table (committed) and return the ids the tables handed out."""
    ids = []
    with engine.begin() as conn:
        for spec, table, row in zip(case.tables, tables, case.probes, strict=True):
            values = dict(row)
            if spec.fk is not None:
                values[spec.fk] = None
            ids.append(int(conn.execute(insert(table).values(values)).inserted_primary_key[0]))
    return ids


def apply_writes(
    engine: Engine, case: Case, tables: Sequence[Table], *, truncate: bool
) -> set[int]:
    """Commit the case's writes (a transaction each few); the indexes of the tables written."""
    backend = case.backend
    written: set[int] = set()
    referenced = {0} if any(t.fk for t in case.tables) else set()
    conn = engine.connect()
    try:
        conn.begin()
        for step, op in enumerate(case.writes):
            kind, index = op[0], op[1]
            table, spec = tables[index], case.tables[index]
            pk = _pk(table)
            ids = [r[0] for r in conn.execute(select(pk).order_by(pk))]
            if kind == "insert":
                values = dict(op[3])
                if spec.fk is not None:
                    parents = [r[0] for r in conn.execute(select(_pk(tables[0])))]
                    values[spec.fk] = parents[op[2] % len(parents)] if parents else None
                conn.execute(insert(table).values(values))
            elif kind in ("update", "delete"):
                if not ids:
                    continue
                target = bindparam("row_id", ids[op[2] % len(ids)])
                if kind == "update":
                    conn.execute(update(table).where(pk == target).values(op[3]))
                else:
                    conn.execute(delete(table).where(pk == target))
            else:  # truncate
                qualified = _quote(backend, table.name)
                if case.schema is not None:
                    qualified = f"{_quote(backend, case.schema)}.{qualified}"
                if (
                    backend == "sqlite"
                    or not truncate
                    or (backend == "mysql" and index in referenced)
                ):
                    if not ids:
                        continue
                    conn.execute(delete(table))
                else:
                    conn.commit()  # MySQL: TRUNCATE commits implicitly
                    raw(
                        conn,
                        f"TRUNCATE {qualified}" + (" CASCADE" if backend == "postgresql" else ""),
                    )
                    conn.commit()
            written.add(index)
            if step % 3 == 2:
                conn.commit()
                conn.begin()
        conn.commit()
    finally:
        conn.close()
    return written


# --------------------------------------------------------------------- checks


@dataclass
class Bench:
    """One database reused by every example: a Rewinder, an application engine."""

    backend: str
    url: URL
    engine: Engine
    options: dict[str, Any] = field(default_factory=dict)
    """Rewinder options for every example."""

    def schemas(self, case: Case) -> tuple[str, ...]:
        return (case.schema,) if case.schema is not None else ()

    @contextmanager
    def prepared(self, case: Case, **options: Any) -> Iterator[tuple[Rewinder, list[Table]]]:
        metadata, tables = build(case)

        def setup(conn: Connection) -> None:
            if case.schema is not None:
                conn.execute(CreateSchema(case.schema))
            metadata.create_all(conn)
            for table, rows in zip(tables, case.baseline, strict=True):
                for row in rows:
                    conn.execute(insert(table).values(row))

        # "always": these cases compare counters with the baseline's after every rewind,
        # which the default ("auto") does on MySQL/MariaDB only for the tests that ask
        options = {
            "schemas": self.schemas(case),
            "allow": True,
            "reset_sequences": "always",
            **self.options,
            **options,
        }
        rewinder = Rewinder(self.url, **options)
        try:
            rewinder.prepare(setup)
            yield rewinder, tables
        finally:
            try:
                rewinder.uninstall()
            finally:
                rewinder.close()
                self.engine.dispose()
                with self.engine.begin() as conn:
                    metadata.drop_all(conn)
                    if case.schema is not None:
                        conn.execute(DropSchema(case.schema, cascade=True))


def tracked_key(case: Case, index: int) -> str:
    """The key dbrewind gives the case's table ``index``."""
    name = case.tables[index].name
    if case.backend == "postgresql":
        return f"{case.schema or 'public'}.{name}"
    return name


def truncated_only(case: Case) -> set[str]:
    """Keys of tables whose only writes are TRUNCATEs (no trigger sees those everywhere)."""
    ops: dict[int, set[str]] = {}
    for op in case.writes:
        ops.setdefault(op[1], set()).add(op[0])
    return {tracked_key(case, i) for i, kinds in ops.items() if kinds == {"truncate"}}


def check_rewind(bench: Bench, case: Case) -> None:
    """Baseline, counters, writes, rewind: the baseline back exactly, nothing dirty."""
    with bench.prepared(case) as (rewinder, tables):
        engine = bench.engine
        keys = sorted(rewinder.dirty_tables())
        assert keys == [], f"dirty right after prepare: {keys}"
        baseline = snapshot(engine, tables)

        next_ids = probe_ids(engine, case, tables)
        rewinder.rewind()
        assert snapshot(engine, tables) == baseline, "a probe insert was not rewound"

        written = apply_writes(engine, case, tables, truncate=True)
        tracked = sorted(rewinder.schema.tables)
        with rewinder.connection() as conn:
            found = rewinder.dialect.installation(conn)
        assert found.intact, found
        assert list(found.tracked) == tracked
        named = {tracked_key(case, i) for i in written}
        assert set(found.dirty) <= set(tracked), found.dirty
        if case.backend != "mysql":  # MySQL: a TRUNCATE fires no trigger
            assert set(found.dirty) >= named - truncated_only(case), (found.dirty, named)
        rewinder.rewind()
        assert rewinder.dirty_tables() == [], "dirty after a rewind"
        after = snapshot(engine, tables)
        for spec, want, got in zip(case.tables, baseline, after, strict=True):
            assert got == want, f"rows of {spec.name!r} differ from the baseline after a rewind"
        assert probe_ids(engine, case, tables) == next_ids, "counters not back at the baseline"
        rewinder.rewind()
        assert snapshot(engine, tables) == baseline

        # a baseline layer on top (what a wider fixture commits), then popped again
        apply_writes(engine, case, tables, truncate=False)
        layered = snapshot(engine, tables)
        with rewinder.connection() as conn:
            rewinder.dialect.write_state(conn, {"fingerprint;'%s": "`\\'--"})
            rewinder.dialect.push_baseline(conn)
        apply_writes(engine, case, tables, truncate=True)
        rewinder.rewind()
        assert snapshot(engine, tables) == layered, "not rewound to the pushed layer"
        with rewinder.connection() as conn:
            rewinder.dialect.pop_baseline(conn, 0)
        with rewinder.connection() as conn:  # after what the pop left running (MySQL)
            found = rewinder.dialect.installation(conn)
        assert snapshot(engine, tables) == baseline, "popping the layer did not restore"
        assert found.intact, found
        assert (found.depth, found.dirty) == (0, ()), found
        assert found.state.get("fingerprint;'%s") == "`\\'--"
        assert probe_ids(engine, case, tables) == next_ids, "counters not back after a pop"
        rewinder.mark_dirty(*tracked)
        rewinder.rewind()
        assert snapshot(engine, tables) == baseline

        # the same writes in the rollback sandbox, with the rewinder as its safety net
        with Sandbox(engine, rewinder=rewinder) as sandbox:
            apply_writes(engine, case, tables, truncate=False)
        assert sandbox.leaked is None, f"the sandbox leaked: {sandbox.leaked}"
        assert snapshot(engine, tables) == baseline, "the sandbox did not roll back exactly"
        assert rewinder.dirty_tables() == []
        if bench.backend != "mysql":  # MySQL never gives back an AUTO_INCREMENT value
            assert probe_ids(engine, case, tables) == next_ids, "sandbox moved a counter"
            rewinder.rewind()


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=IN_CI,
        database=None if IN_CI else settings().database,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
            HealthCheck.large_base_example,
        ],
    )


@pytest.fixture
def bench(backend: str, db_url: URL) -> Iterator[Bench]:
    eng = create_engine(db_url)
    try:
        yield Bench(backend, db_url, eng)
    finally:
        eng.dispose()


def test_generated_schemas_rewind_exactly(
    bench: Bench, record_property: Callable[[str, object], None]
) -> None:
    """generated schemas with hostile names and values of every type, rewound and rolled back"""
    seen = {"schemas": 0, "tables": 0, "rows": 0, "writes": 0}

    @_settings(EXAMPLES[bench.backend])
    @given(case=cases(bench.backend))
    def run(case: Case) -> None:
        check_rewind(bench, case)
        seen["schemas"] += 1
        seen["tables"] += len(case.tables)
        seen["rows"] += sum(len(rows) for rows in case.baseline)
        seen["writes"] += len(case.writes)

    run()
    record_property(
        "result",
        f"{seen['schemas']} generated schemas ({seen['tables']} tables, {seen['rows']} "
        f"baseline rows, {seen['writes']} writes) rewound and rolled back exactly",
    )


# ------------------------------------------------- bugs the generated schemas found


def _case(backend: str, *tables: TableSpec, schema: str | None = None) -> Case:
    """A fixed case: one baseline row and one probe row per table, a few writes to each."""
    rows = [{c.name: _sample(c.kind) for c in t.columns} for t in tables]
    writes: list[tuple[Any, ...]] = []
    for i, row in enumerate(rows):
        writes += [("insert", i, 0, row), ("update", i, 0, row), ("delete", i, 1)]
    return Case(backend, schema, list(tables), [[r] for r in rows], list(rows), writes)


def _sample(kind: str) -> Any:
    return {"int": 7, "varchar": "it's 100% \\ :name", "binary": b"\x00'%s"}[kind]


def _int_table(name: str, pk: str = "id", column: str = "n") -> TableSpec:
    return TableSpec(name, pk, "int", [Col(column, "int", nullable=False)])


def test_percent_in_a_sequence_name(bench: Bench) -> None:
    """a table and its key column named with % and a quote (PostgreSQL: the sequence '_%_seq)"""
    # found by the generated schemas: the install's sequence probe reached psycopg with the
    # name's % read as a placeholder ("only '%s', '%b', '%t' are allowed as placeholders")
    check_rewind(bench, _case(bench.backend, _int_table("'_%", pk="%", column="'")))


def test_long_names_that_differ_only_at_the_end(
    bench: Bench, record_property: Callable[[str, object], None]
) -> None:
    """two tables with names at the length limit that differ only in their last character"""
    # MySQL keeps a table in files named after it: a 64-character name must be mostly ASCII
    stem = pad_to_limit(bench.backend, "order;'%s", "x" if bench.backend == "mysql" else "名")
    first, second = stem[:-1] + "a", stem[:-1] + "b"
    while not (_fits(bench.backend, first) and _fits(bench.backend, second)):
        stem = stem[:-2] + "x"
        first, second = stem[:-1] + "a", stem[:-1] + "b"
    long_column = pad_to_limit(bench.backend, "select%", "é")
    case = _case(
        bench.backend, _int_table(first, column=long_column), _int_table(second, pk=long_column)
    )
    with bench.prepared(case) as (rewinder, tables):
        with bench.engine.begin() as conn:
            conn.execute(insert(tables[1]).values({"n": 1}))
        assert rewinder.dirty_tables() == [tracked_key(case, 1)], "derived names collide"
        rewinder.rewind()
        assert rewinder.dirty_tables() == []
    check_rewind(bench, case)
    record_property("result", f"{_length(bench.backend, first)}-long names kept apart")


def test_tables_a_test_creates_are_dropped(bench: Bench) -> None:
    """a test creates tables named with :name, %s, quotes and backticks; the rewind drops them"""
    # found while hunting: the Rewinder dropped them through text(), which read ":name" as a
    # bind parameter and doubled the quoting's doubled "%" (MySQL: "Unknown table 'x%%s'")
    schema = "s.c;h'%" if bench.backend == "postgresql" else None
    case = _case(bench.backend, _int_table("t"), schema=schema)
    with bench.prepared(case, drop_created_tables=True) as (rewinder, tables):
        extra = [
            Table(name, tables[0].metadata, Column("id", Integer, primary_key=True))
            for name in ("x :name", "%s'`\"", "100%")
        ]
        for table in extra:
            table.create(bench.engine)
        result = rewinder.rewind()
        assert sorted(result.created_tables) == sorted(
            f"{schema}.{t.name}" if schema else t.name for t in extra
        )
        with bench.engine.connect() as conn:
            left = [t.name for t in extra if bench.engine.dialect.has_table(conn, t.name, schema)]
        assert left == [], f"tables a test created were not dropped: {left}"
        assert rewinder.rewind().clean


@pytest.mark.backends("postgresql")
def test_schema_names_with_a_dot_and_a_bang(bench: Bench) -> None:
    """PostgreSQL schemas named 'a.b' and '!ddl': tables found by bare name, marks reported"""
    # found while hunting: keys are "<schema>.<table>" and were split at the first ".", and
    # dirty_tables() hid every mark starting with "!" (dbrewind's own "!ddl" mark)
    for schema in ("s.c;h'%", "!ddl"):
        case = _case(bench.backend, _int_table("t.u"), schema=schema)
        with bench.prepared(case) as (rewinder, tables):
            key = f"{schema}.t.u"
            assert rewinder.mark_dirty("t.u") == [key]
            assert rewinder.dirty_tables() == [key]
            assert rewinder.rewind().tables == (key,)
            with bench.engine.begin() as conn:
                conn.execute(insert(tables[0]).values({"n": 1}))
            assert rewinder.dirty_tables() == [key]
            rewinder.rewind()
        check_rewind(bench, case)


@pytest.mark.backends("postgresql")
def test_a_schema_named_with_the_rewind_functions_dollar_quote(bench: Bench) -> None:
    """a PostgreSQL schema named 'x$rewind$y', the dollar quote of dbrewind's rewind function"""
    # found while hunting: the schema names are spelt inside the function's $rewind$ body
    check_rewind(bench, _case(bench.backend, _int_table("t"), schema="x$rewind$y"))


@pytest.mark.backends("postgresql")
def test_backslashes_with_standard_conforming_strings_off(bench: Bench) -> None:
    """names with backslashes on a PostgreSQL database set to standard_conforming_strings=off"""
    # found while hunting: with the setting off, a backslash in a string literal escapes
    with bench.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        raw(conn, f"ALTER DATABASE {_quote('postgresql', bench.url.database or '')} "
                  "SET standard_conforming_strings = off")  # fmt: skip
    bench.engine.dispose()
    with bench.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW standard_conforming_strings").scalar() == "off"
    case = _case(bench.backend, _int_table("a\\'b\\", pk="\\", column="\\'"), schema="s\\")
    check_rewind(bench, case)


@pytest.mark.backends("mysql")
def test_backslashes_and_quotes_under_ansi_quotes_and_no_backslash_escapes(
    bench: Bench, record_property: Callable[[str, object], None]
) -> None:
    """names with backslashes and double quotes under sql_mode ANSI_QUOTES,NO_BACKSLASH_ESCAPES"""
    mode = "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES"
    connect_args = {"init_command": f"SET sql_mode = '{mode}'"}
    app, own = (create_engine(bench.url, connect_args=connect_args) for _ in range(2))
    try:
        with app.connect() as conn:
            assert "ANSI_QUOTES" in conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
        moded = Bench(bench.backend, bench.url, app, {"engine": own})
        case = _case(bench.backend, _int_table('a\\"b\\', pk='\\"', column="\\'"))
        check_rewind(moded, case)
    finally:
        app.dispose()
        own.dispose()
    record_property("result", f"rewound exactly under sql_mode {mode}")


def test_recreated_tables_and_clones(bench: Bench, tmp_path: Any) -> None:
    """a table named with quotes, % and :name dropped and created again, then the database cloned"""
    from conftest import SERVER_URLS, drop_database

    schema = "s;'%" if bench.backend == "postgresql" else None
    name = "o'r\"d`e;r %s:name\\ --"
    case = _case(bench.backend, _int_table(name, column="%(x)s:c"), schema=schema)
    key = tracked_key(case, 0)
    if bench.backend == "sqlite":
        clone = make_url(f"sqlite:///{tmp_path / 'hostile_clone_test.db'}")
    else:
        name_of_clone = f"dbrewind_{uuid.uuid4().hex[:8]}_clone_test"
        clone = make_url(SERVER_URLS[bench.backend]).set(database=name_of_clone)
    with bench.prepared(case) as (rewinder, tables):
        baseline = snapshot(bench.engine, tables)
        with bench.engine.begin() as conn:
            tables[0].drop(conn)
            tables[0].create(conn)
        if rewinder.dialect.sees_recreated_tables:
            result = rewinder.rewind()
        else:  # MySQL: the schema stamp tells, retrack mends
            with rewinder.connection() as conn:
                result = rewinder.dialect.retrack(conn, [key])
        assert key in result.tables
        assert snapshot(bench.engine, tables) == baseline
        with bench.engine.begin() as conn:
            conn.execute(insert(tables[0]).values({"%(x)s:c": 1}))
        assert rewinder.dirty_tables() == [key], "the table created again is not tracked"
        rewinder.rewind()

        rewinder.close()
        bench.engine.dispose()
        copy = Rewinder(clone, schemas=bench.schemas(case), allow=True)
        clone_engine = create_engine(clone)
        try:
            copy.create(template=rewinder.url)
            with copy.connection() as conn:
                assert copy.dialect.installation(conn).intact
            assert snapshot(clone_engine, tables) == baseline
            with clone_engine.begin() as conn:
                conn.execute(insert(tables[0]).values({"%(x)s:c": 2}))
                conn.execute(delete(tables[0]))
            assert copy.rewind().tables == (key,)
            assert snapshot(clone_engine, tables) == baseline
        finally:
            clone_engine.dispose()
            copy.close()
            drop_database(bench.backend, clone)


@pytest.mark.backends("postgresql")
def test_partitions_with_hostile_names(bench: Bench) -> None:
    """a PostgreSQL partitioned table and its partitions named with quotes, ; and %"""
    schema, parent = "p;'%", 'sales"%s'
    q = f"{_quote('postgresql', schema)}.{_quote('postgresql', parent)}"
    parts = [f"{_quote('postgresql', schema)}.{_quote('postgresql', parent + s)}" for s in "12"]
    metadata = MetaData(schema=schema)
    table = Table(parent, metadata, Column("id", Integer), Column("%(v)s", Text))

    def setup(conn: Connection) -> None:
        conn.execute(CreateSchema(schema))
        raw(conn, f'CREATE TABLE {q} (id integer, "%(v)s" text) PARTITION BY RANGE (id)')
        raw(conn, f"CREATE TABLE {parts[0]} PARTITION OF {q} FOR VALUES FROM (0) TO (10)")
        raw(conn, f"CREATE TABLE {parts[1]} PARTITION OF {q} FOR VALUES FROM (10) TO (20)")
        conn.execute(insert(table).values([{"id": 1, "%(v)s": "a"}, {"id": 11, "%(v)s": "b"}]))

    rewinder = Rewinder(bench.url, schemas=[schema], allow=True)
    try:
        rewinder.prepare(setup)
        baseline = snapshot(bench.engine, [table])
        with bench.engine.begin() as conn:
            conn.execute(insert(table).values({"id": 12, "%(v)s": "c"}))
            raw(conn, f"DELETE FROM {parts[0]}")  # straight at a partition
        assert rewinder.dirty_tables() == [f"{schema}.{parent}"]
        rewinder.rewind()
        assert snapshot(bench.engine, [table]) == baseline
    finally:
        rewinder.uninstall()
        rewinder.close()


def test_a_database_named_with_quotes_and_percent(backend: str, tmp_path: Any) -> None:
    """a test database named with a quote, %, ; and é: prepared, rewound, recreated tables seen"""
    # found while hunting: MySQL's schema stamp looked the database up in InnoDB's dictionary
    # by its plain name, which spells it in the file-name encoding ("x'" is "x@0027"): the
    # stamp stayed "0:0", so a table dropped and created again was never noticed
    from conftest import SERVER_URLS

    name = f"dbrewind_{uuid.uuid4().hex[:6]}_x'%;-é_test"
    if backend == "sqlite":
        url = make_url(f"sqlite:///{tmp_path / (name + '.db')}")
    else:
        url = make_url(SERVER_URLS[backend]).set(database=name)
    case = _case(backend, _int_table("t"))
    metadata, tables = build(case)

    def setup(conn: Connection) -> None:
        metadata.create_all(conn)
        conn.execute(insert(tables[0]).values({"n": 1}))

    rewinder = Rewinder(url)
    engine = create_engine(url)
    try:
        rewinder.prepare(setup)
        baseline = snapshot(engine, tables)
        with engine.begin() as conn:
            conn.execute(insert(tables[0]).values({"n": 2}))
        assert rewinder.rewind().tables == ("public.t" if backend == "postgresql" else "t",)
        assert snapshot(engine, tables) == baseline
        with rewinder.connection() as conn:
            before = rewinder.dialect.schema_stamp(conn)
        with engine.begin() as conn:
            tables[0].drop(conn)
            tables[0].create(conn)
        with rewinder.connection() as conn:
            after = rewinder.dialect.schema_stamp(conn)
        if rewinder.dialect.sees_recreated_tables:
            assert before is after is None
            rewinder.rewind()
        else:
            assert before not in (None, "0:0")
            assert after != before, "a table dropped and created again left the stamp as it was"
            with rewinder.connection() as conn:
                rewinder.dialect.retrack(conn, rewinder.dialect.tracked_tables(conn))
        assert snapshot(engine, tables) == baseline
    finally:
        engine.dispose()
        rewinder.drop()
