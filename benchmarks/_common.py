"""Shared plumbing for the benchmarks: server URLs, scratch databases, timing, tables.

Every benchmark creates its own databases, named ``dbrewind_bench_<hex>_<role>_test``,
and drops them when it ends (also after an error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, text
from sqlalchemy.engine import URL, Connection, make_url

__all__ = [
    "ALL_BACKENDS",
    "SERVER_URLS",
    "Case",
    "Check",
    "base_parser",
    "cases_table",
    "checks_table",
    "drop_databases",
    "finish",
    "fmt_ms",
    "median_ms",
    "numbered_tables",
    "scratch_databases",
    "seeded_setup",
    "selected_backends",
    "subprocess_env",
    "time_ms",
]

ALL_BACKENDS = ("postgresql", "mysql", "sqlite")

SERVER_URLS = {
    "postgresql": os.environ.get(
        "DBREWIND_BENCH_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mysql": os.environ.get("DBREWIND_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/"),
}


def base_parser(description: str, default_rounds: int) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--backends``, ``--rounds``, ``--quick``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help=f"comma-separated, from {', '.join(ALL_BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=default_rounds,
        help=f"timed repetitions of each case (default {default_rounds})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run: 5 rounds, numbers are rough"
    )
    return parser


def selected_backends(spec: str, allowed: Sequence[str] = ALL_BACKENDS) -> list[str]:
    """Parse ``--backends``; unknown names stop the run with the list of valid ones."""
    names = [b.strip() for b in spec.split(",") if b.strip()]
    unknown = [b for b in names if b not in allowed]
    if unknown:
        raise SystemExit(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
        )
    return names


@contextmanager
def scratch_databases(backend: str, roles: Sequence[str]) -> Iterator[dict[str, URL]]:
    """Create one empty database per role (sync-driver URLs); drop them all afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = {role: f"dbrewind_bench_{tag}_{role}_test" for role in roles}
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="dbrewind_bench_")
        try:
            yield {role: make_url(f"sqlite:///{folder}/{name}.db") for role, name in names.items()}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    server = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            for name in names.values():
                conn.execute(text(f"CREATE DATABASE {name}"))
        base = make_url(SERVER_URLS[backend])
        yield {role: base.set(database=name) for role, name in names.items()}
    finally:
        force = " WITH (FORCE)" if backend == "postgresql" else ""
        with server.connect() as conn:
            for name in names.values():
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        server.dispose()


IGNORED_ENV = (
    "DBREWIND_URL",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_XDIST_WORKER",
    "PYTHONDONTWRITEBYTECODE",
)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for an inner pytest run: Python's defaults, as on a developer's
    machine (bytecode and pytest's rewritten test modules cached on disk), no outside
    pytest or dbrewind settings; plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in IGNORED_ENV}
    env.update(extra)
    return env


def drop_databases(backend: str, base: str) -> list[str]:
    """Drop every database whose name starts with ``base``; the names dropped."""
    server = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            if backend == "postgresql":
                names = conn.execute(text("SELECT datname FROM pg_database")).scalars().all()
            else:
                names = (
                    conn.execute(text("SELECT schema_name FROM information_schema.schemata"))
                    .scalars()
                    .all()
                )
            ours = sorted(str(n) for n in names if str(n).startswith(base))
            quote = conn.dialect.identifier_preparer.quote_identifier
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            for name in ours:
                conn.execute(text(f"DROP DATABASE IF EXISTS {quote(name)}{force}"))
        return ours
    finally:
        server.dispose()


def time_ms(fn: Callable[[], object]) -> float:
    """Wall time of one call, in milliseconds."""
    started = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - started) / 1e6


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


@dataclass
class Case:
    """One measured way of doing something, with its samples (ms)."""

    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median_ms(self.samples)


@dataclass
class Check:
    """A target: ``value`` compared with ``limit`` by ``op`` (``<=`` or ``>=``)."""

    backend: str
    what: str
    value: float
    op: str
    limit: float
    unit: str

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def row(self) -> str:
        shown = f"{self.value:.2f}{self.unit}"
        bound = f"{self.op} {self.limit:g}{self.unit}"
        return (
            f"| {self.backend} | {self.what} | {shown} | {bound} | "
            f"{'PASS' if self.passed else 'FAIL'} |"
        )


def cases_table(title: str, cases: Sequence[Case], reference: Case) -> str:
    """A markdown table of medians, each with its ratio to ``reference``."""
    lines = [
        f"**{title}**",
        "",
        f"| way | median ms | x {reference.label} |",
        "|---|---:|---:|",
    ]
    for case in cases:
        ratio = case.median / reference.median if reference.median else float("nan")
        lines.append(f"| {case.label} | {fmt_ms(case.median)} | {ratio:.2f} |")
    return "\n".join(lines)


def checks_table(checks: Sequence[Check]) -> str:
    lines = ["| backend | target | measured | limit | result |", "|---|---|---:|---:|---|"]
    lines += [c.row() for c in checks]
    return "\n".join(lines)


def finish(reports: Sequence[str], checks: Sequence[Check]) -> int:
    """Print the reports, the load average at the end and the targets' table; the exit
    code: 1 when a target was missed."""
    print("\n\n".join(reports))
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs).")
    print("\n### Targets\n")
    print(checks_table(checks))
    return 0 if all(c.passed for c in checks) else 1


def numbered_tables(n_tables: int, *, sqlite_autoincrement: bool = False) -> MetaData:
    """``n_tables`` tables ``t000``, ``t001``, ... of (id, name, n), no foreign keys."""
    metadata = MetaData()
    for i in range(n_tables):
        Table(
            f"t{i:03d}",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("name", String(50), nullable=False),
            Column("n", Integer, nullable=False),
            sqlite_autoincrement=sqlite_autoincrement,
        )
    return metadata


def seeded_setup(
    metadata: MetaData, seeded: Sequence[str], rows: int
) -> Callable[[Connection], None]:
    """A schema setup creating ``metadata``'s tables and ``rows`` rows in each of ``seeded``."""

    def setup(conn: Connection) -> None:
        metadata.create_all(conn)
        q = conn.dialect.identifier_preparer.quote_identifier
        values = ", ".join(f"('row {i}', {i})" for i in range(rows))
        for name in seeded:
            conn.exec_driver_sql(f"INSERT INTO {q(name)} (name, n) VALUES {values}")

    return setup
