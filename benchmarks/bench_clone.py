"""A cold per-worker clone of a prepared 100-table template: what a new xdist worker waits for.

Run::

    python benchmarks/bench_clone.py                      # PostgreSQL and MariaDB, 7 rounds
    python benchmarks/bench_clone.py --tables 100 --rounds 11
    python benchmarks/bench_clone.py --quick

A template of ``--tables`` tables (every third one without a foreign key to the
one before, ten of them with two rows) is made and prepared (``Rewinder.prepare()``:
dbrewind's tracking installed, as the plugin's templates are). Then, round by
round in alternating order, a new database is cloned from it and dropped again:

* PostgreSQL — ``CREATE DATABASE .. TEMPLATE .. STRATEGY WAL_LOG`` (15's default,
  which dbrewind uses) against ``STRATEGY FILE_COPY`` (a checkpoint, then a copy
  of the files), and dbrewind's own ``create_database(template=...)``;
* MariaDB/MySQL — dbrewind's copy (``SHOW CREATE TABLE`` and ``CREATE TABLE`` per
  table, rows, counters, its triggers), and, to show the floor, the same number of
  bare ``CREATE TABLE`` statements and of ``CREATE TRIGGER`` statements alone:
  every clone of that schema pays at least those.

Target: a cold clone at most 100 ms. Databases are named
``dbrewind_bench_<hex>_...`` and dropped at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from _common import (
    SERVER_URLS,
    Case,
    Check,
    base_parser,
    cases_table,
    finish,
    fmt_ms,
    scratch_databases,
    selected_backends,
)
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, create_engine, text
from sqlalchemy.engine import URL

from dbrewind import Rewinder
from dbrewind._url import parse_url
from dbrewind.dialects import get_dialect

__all__ = ["main"]

TARGET_MS = 100.0
SERVERS = ("postgresql", "mysql")


def _schema(tables: int) -> MetaData:
    metadata = MetaData()
    previous: str | None = None
    for i in range(tables):
        name = f"t{i:03d}"
        columns: list[Column[object]] = [
            Column("id", Integer, primary_key=True),
            Column("name", String(40)),
        ]
        if previous is not None and i % 3:
            columns.append(Column("parent_id", Integer, ForeignKey(f"{previous}.id")))
        Table(name, metadata, *columns)
        previous = name
    return metadata


def _prepare(url: URL, tables: int) -> None:
    engine = create_engine(url)
    try:
        _schema(tables).create_all(engine)
        with engine.begin() as conn:
            for i in range(0, tables, max(1, tables // 10)):
                conn.execute(text(f"INSERT INTO t{i:03d} (id, name) VALUES (1, 'a'), (2, 'b')"))
    finally:
        engine.dispose()
    with Rewinder(url) as rewinder:
        rewinder.prepare()


def run_backend(backend: str, rounds: int, tables: int) -> tuple[str, list[Check]]:
    with scratch_databases(backend, ["tmpl", "bare"]) as urls:
        template = urls["tmpl"]
        print(f"  {backend}: preparing a {tables}-table template ...", file=sys.stderr)
        _prepare(template, tables)
        server = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
        dialect = get_dialect(backend)
        ours = parse_url(template.render_as_string(hide_password=False))
        clone_name = f"{template.database}_clone"
        force = " WITH (FORCE)" if backend == "postgresql" else ""

        def drop() -> None:
            with server.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {clone_name}{force}"))

        def raw(strategy: str) -> Callable[[], None]:
            def clone() -> None:
                with server.connect() as conn:
                    conn.execute(
                        text(
                            f"CREATE DATABASE {clone_name} TEMPLATE {template.database} "
                            f"STRATEGY {strategy}"
                        )
                    )

            return clone

        def dbrewinds() -> None:
            dialect.create_database(ours.with_database(clone_name), template=ours)

        ways: dict[str, Callable[[], None]] = {"dbrewind's clone": dbrewinds}
        if backend == "postgresql":
            ways["CREATE DATABASE .. STRATEGY WAL_LOG"] = raw("WAL_LOG")
            ways["CREATE DATABASE .. STRATEGY FILE_COPY"] = raw("FILE_COPY")
        cases = {label: Case(label) for label in ways}
        try:
            order = list(ways)
            for i in range(rounds):
                for label in order if i % 2 == 0 else list(reversed(order)):
                    drop()
                    started = time.perf_counter()
                    ways[label]()
                    cases[label].samples.append((time.perf_counter() - started) * 1000)
                    drop()
            floor_lines = []
            if backend == "mysql":
                floor_lines = _mysql_floor(urls["bare"], tables)
        finally:
            drop()
            server.dispose()
    best = min(cases.values(), key=lambda c: c.median)
    report = cases_table(
        f"{backend}: a cold clone of a prepared {tables}-table template, median of {rounds}",
        list(cases.values()),
        best,
        backend,
    )
    if floor_lines:
        report += "\n\n" + "\n".join(floor_lines)
    checks = [
        Check(
            backend,
            "cold clone (dbrewind's)",
            cases["dbrewind's clone"].median,
            "<=",
            TARGET_MS,
            " ms",
        )
    ]
    return report, checks


def _mysql_floor(url: URL, tables: int) -> list[str]:
    """What the DDL alone costs: ``tables`` bare CREATE TABLE, then 3 triggers each."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            started = time.perf_counter()
            for i in range(tables):
                conn.exec_driver_sql(
                    f"CREATE TABLE f{i:03d} (id int PRIMARY KEY, name varchar(40))"
                )
            create_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            for i in range(tables):
                for event in ("INSERT", "UPDATE", "DELETE"):
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER f{i:03d}_{event.lower()} AFTER {event} ON f{i:03d} "
                        "FOR EACH ROW SET @dbrewind_bench = 1"
                    )
            trigger_ms = (time.perf_counter() - started) * 1000
    finally:
        engine.dispose()
    return [
        f"The floor on this server: {tables} bare `CREATE TABLE` statements took "
        f"{fmt_ms(create_ms)} ms ({create_ms / tables:.1f} ms each), {3 * tables} "
        f"`CREATE TRIGGER` statements {fmt_ms(trigger_ms)} ms "
        f"({trigger_ms / (3 * tables):.1f} ms each): InnoDB makes a file and writes its "
        "data dictionary for each table, and the server a trigger file for each trigger. "
        f"A copy of this schema cannot take less than {fmt_ms(create_ms + trigger_ms)} ms "
        "whatever copies it, before a single row."
    ]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], default_rounds=7)
    parser.add_argument("--tables", type=int, default=100, help="tables in the template")
    parser.set_defaults(backends=",".join(SERVERS))
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    print(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    reports: list[str] = []
    checks: list[Check] = []
    for backend in selected_backends(args.backends, SERVERS):
        print(f"measuring {backend} ...", file=sys.stderr)
        report, found = run_backend(backend, rounds, args.tables)
        reports.append(report)
        checks += found
    return finish(reports, checks)


if __name__ == "__main__":
    raise SystemExit(main())
