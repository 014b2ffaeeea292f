"""``bench``: the strategies timed on a scratch database with the schema of the one named.

The database the URL names is only read (its tables and foreign keys, by
SQLAlchemy's reflection); its rows are never read and nothing is written to it.
Beside it, dbrewind creates ``<name>_bench_<token>`` (leased while it works, so
``dbrewind clean`` leaves it alone), creates the same tables there, installs
tracking, times the strategies, and drops it again: on success, on an error, and
on Ctrl-C or SIGTERM alike.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateSchema

from .._strategy import Strategy
from .._url import DatabaseURL
from ..exceptions import ConfigurationError, DbrewindError, LeaseError
from ..provision.naming import scratch_name, sibling, stem
from ..rewinder import Rewinder
from ._console import ERROR, FINDINGS, OK, Console, error_text

__all__ = ["bench", "bench_report"]


def _median_ms(
    fn: Callable[[], object], rounds: int, *, setup: Callable[[], object] | None = None
) -> float:
    """Median milliseconds of ``fn`` over ``rounds`` calls, each after an untimed ``setup``."""
    samples = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _copy_schema(source: Rewinder) -> tuple[MetaData, int]:
    """The user tables of ``source`` (dbrewind's own left out), reflected; and how many."""
    dialect = source.dialect
    metadata = MetaData()
    with source.connection() as conn:
        tables = dialect.inspect(conn).tables
        by_schema: dict[str | None, list[str]] = {}
        for key in tables:
            schema, name = dialect.split_key(key)
            by_schema.setdefault(schema, []).append(name)
        for schema, names in sorted(by_schema.items(), key=lambda kv: kv[0] or ""):
            metadata.reflect(conn, schema=schema, only=sorted(names))
    return metadata, len(tables)


def _create_tables(metadata: MetaData) -> Callable[[Connection], None]:
    def setup(conn: Connection) -> None:
        for schema in sorted({t.schema for t in metadata.tables.values() if t.schema}):
            conn.execute(CreateSchema(schema, if_not_exists=True))
        metadata.create_all(conn)

    return setup


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Hold off Ctrl-C and SIGTERM while the scratch database is dropped (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Scratch:
    """The scratch database: leased, created with the schema, always dropped."""

    def __init__(self, source: Rewinder, console: Console) -> None:
        dialect = source.dialect
        name = scratch_name(stem(source.url), secrets.token_hex(4), dialect.name_limit)
        self.url: DatabaseURL = sibling(source.url, name)
        self.console = console
        self.rewinder = Rewinder(self.url, allow=True, schemas=dialect.schemas)
        self.dropped = False
        self.error: str | None = None
        self._lease = dialect.acquire_lock(self.url, "lease", wait=0)
        if self._lease is None:  # a random name: only a run of bench that drew it too
            raise LeaseError(f"The scratch database {self.url.display()} is leased; run again.")

    @property
    def name(self) -> str:
        """The scratch database's name (SQLite: its file's name), without the URL's query."""
        database = self.url.database
        return Path(database).name if self.rewinder.dialect.databases_are_files else database

    def drop(self) -> None:
        with _uninterrupted():
            try:
                self.rewinder.close()
                self.rewinder.dialect.drop_database(self.url)
                self.dropped = True
                self.console.progress(f"dropped the scratch database {self.name}")
            except (DbrewindError, SQLAlchemyError) as exc:
                self.error = self.console.mask(error_text(exc), self.url.display(), self.name)
                self.console.warning(
                    f"could not drop the scratch database {self.name}: {self.error} "
                    "(`dbrewind clean --yes URL` drops it later)"
                )
            finally:
                if self._lease is not None:
                    self._lease.release()
                    self._lease = None


def bench(source: Rewinder, console: Console, rounds: int) -> tuple[int, dict[str, Any]]:
    """Time the strategies on a scratch copy of ``source``'s schema, and recommend."""
    if source.url.is_memory:
        raise ConfigurationError(
            f"{source.url.display()} is an in-memory database: no other process can read "
            "its schema. Give bench the URL of a database file or server."
        )
    if rounds < 1:
        raise ConfigurationError(f"--rounds {rounds}: give 1 or more.")
    source.ensure_safe("benchmark beside")  # bench creates its scratch database there
    console.progress(f"reading the schema of {source.url.display()}")
    metadata, count = _copy_schema(source)
    if not count:
        report: dict[str, Any] = {"scratch": None, "tables": 0, "rounds": rounds}
        report.update(strategies=None, recommendation=None, advice=None)
        console.line(f"database:   {source.url.display()}")
        console.line("nothing to measure: it has no tables (run the schema's setup first)")
        return FINDINGS, report
    scratch = _Scratch(source, console)
    try:
        console.progress(f"creating the scratch database {scratch.name} ({count} tables)")
        scratch.rewinder.prepare(_create_tables(metadata))
        figures = _measure(scratch.rewinder, console, rounds)
    finally:
        scratch.drop()
    report = bench_report(*figures, rounds=rounds)
    report["scratch"] = {"database": scratch.name, "dropped": scratch.dropped}
    report["tables"] = count
    _render(report, source.url.display(), console)
    return (OK if scratch.dropped else ERROR), report


def _measure(
    rewinder: Rewinder, console: Console, rounds: int
) -> tuple[float, float, dict[str, float], float]:
    """``BEGIN; ROLLBACK``, the check with nothing to do, each table's rewind, all tables'."""
    with rewinder.connection() as conn:
        tracked = rewinder.dialect.tracked_tables(conn)
    console.progress(f"timing BEGIN; ROLLBACK ({rounds} rounds)")
    with rewinder.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # Both statements sent, on the driver's cursor: a DB-API rollback() with
        # nothing executed sends nothing on some drivers (psycopg).
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

        def begin_rollback() -> None:
            cursor.execute("BEGIN")
            cursor.execute("ROLLBACK")

        try:
            floor = _median_ms(begin_rollback, rounds)
        finally:
            cursor.close()
    console.progress(
        f"timing the safety net's check after a test that wrote nothing ({rounds} rounds)"
    )
    check = _median_ms(rewinder.rewind, rounds)

    def rewind_all_the_way() -> None:
        rewinder.rewind()
        rewinder.dialect.settle()  # MySQL: until the counters are back too

    # Each table marked dirty alone, then all of them: what the clean strategy
    # costs after a test that wrote them (the test's own writes not counted).
    each = max(1, min(5, rounds))
    per_table: dict[str, float] = {}
    step = max(1, len(tracked) // 10)
    for n, key in enumerate(tracked, 1):
        per_table[key] = _median_ms(
            rewind_all_the_way, each, setup=functools.partial(rewinder.mark_dirty, key)
        )
        if n % step == 0 or n == len(tracked):
            console.progress(f"timing the rewind of each table: {n}/{len(tracked)}", transient=True)
    console.progress(f"timing the rewind of all {len(tracked)} tables at once")
    every = _median_ms(
        rewind_all_the_way, each, setup=functools.partial(rewinder.mark_dirty, *tracked)
    )
    return floor, check, per_table, every


def bench_report(
    floor: float,
    check: float,
    per_table: dict[str, float],
    every: float,
    *,
    rounds: int,
) -> dict[str, Any]:
    """The figures by strategy (milliseconds, keys the :class:`~dbrewind.Strategy` values),
    the recommended strategy and the advice that goes with it."""
    clean: dict[str, Any] | None = None
    one = statistics.median(per_table.values()) if per_table else None
    if per_table:
        slowest = sorted(per_table.items(), key=lambda kv: kv[1], reverse=True)[:3]
        clean = {
            "one_table_ms": one,
            "all_tables_ms": every,
            "tables_ms": per_table,
            "slowest": [key for key, _ in slowest],
        }
    return {
        "rounds": rounds,
        "strategies": {
            Strategy.ROLLBACK.value: {"begin_rollback_ms": floor},
            Strategy.CLEAN.value: clean,
            Strategy.SAFETY_NET.value: {"check_ms": check},
        },
        "recommendation": Strategy.ROLLBACK.value,
        "advice": _advice(floor, one),
    }


def _advice(floor: float, one: float | None) -> str:
    if one is None:
        return "use the rollback sandbox (`db`, `db_session`): no tables are tracked here."
    if one <= 3 * floor:
        return (
            "use the rollback sandbox (`db`, `db_session`) by default; a test that must "
            f"commit (`transactional_db`) costs about {one:.3f} ms a table it writes here, "
            "not much more, so use it wherever real commits make a test simpler."
        )
    return (
        "use the rollback sandbox (`db`, `db_session`) by default and `transactional_db` "
        f"only for tests that must commit: each table such a test writes costs about "
        f"{one:.3f} ms to rewind here, {one / floor:.0f}x the sandbox's floor."
    )


def _render(report: dict[str, Any], shown: str, console: Console) -> None:
    line = console.line
    strategies = report["strategies"]
    floor = strategies[Strategy.ROLLBACK.value]["begin_rollback_ms"]
    check = strategies[Strategy.SAFETY_NET.value]["check_ms"]
    clean = strategies[Strategy.CLEAN.value]
    line(f"database:               {shown}")
    after = "dropped after" if report["scratch"]["dropped"] else "NOT dropped: see the warning"
    line(
        f"measured on:            {report['scratch']['database']} (its {report['tables']} "
        f"tables, no rows; {after})"
    )
    line(f"BEGIN; ROLLBACK:        {floor:.3f} ms  (the rollback sandbox's floor)")
    line(
        f"clean check, no writes: {check:.3f} ms  ({check / floor:.1f}x the floor; the safety net)"
    )
    if clean is not None:
        count = len(clean["tables_ms"])
        tables = f"{count} table{'s' if count != 1 else ''}"
        detail = f"median over {tables}, each rewound alone"
        if count > 1:
            slowest = ", ".join(f"{k} {clean['tables_ms'][k]:.3f} ms" for k in clean["slowest"])
            detail += f"; slowest: {slowest}"
        one = clean["one_table_ms"]
        line(f"rewind, 1 table:        {one:.3f} ms  ({one / floor:.1f}x the floor; {detail})")
        line(f"rewind, all tables:     {clean['all_tables_ms']:.3f} ms  ({tables})")
    line(f"recommendation:         {report['recommendation']}: {report['advice']}")
