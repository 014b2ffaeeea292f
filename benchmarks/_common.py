"""Shared plumbing for the benchmarks: server URLs, scratch databases, timing, tables.

Every benchmark creates its own databases, named ``dbrewind_bench_<hex>_<role>_test``,
and drops them when it ends (also after an error or Ctrl-C).

Every benchmark also takes ``--json PATH`` (or the environment's ``DBREWIND_BENCH_JSON``,
which ``benchmarks/report.py`` sets): besides printing what it prints, it then writes
``SINK``'s record there when it exits -- the machine it ran on (CPUs, RAM, OS, Python,
the servers' versions, the load average at its start and end, the date, the git commit),
every table of cases ``cases_table`` rendered (each case's samples), the figures and raw
data the benchmark gave ``SINK``, and the targets ``checks_table`` rendered.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, text
from sqlalchemy.engine import URL, Connection, make_url

__all__ = [
    "ALL_BACKENDS",
    "SERVER_URLS",
    "SINK",
    "Case",
    "Check",
    "base_parser",
    "cases_table",
    "checks_table",
    "drop_databases",
    "finish",
    "fmt_ms",
    "machine",
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


JSON_ENV = "DBREWIND_BENCH_JSON"


class _BenchParser(argparse.ArgumentParser):
    """Opens ``SINK`` on ``--json`` when the arguments are parsed."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "json", None):
            SINK.open(Path(parsed.json), self.prog, vars(parsed))
        return parsed


def base_parser(description: str, default_rounds: int) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--backends``, ``--rounds``, ``--quick``,
    ``--json``."""
    parser = _BenchParser(description=description)
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
    parser.add_argument(
        "--json",
        type=Path,
        default=os.environ.get(JSON_ENV) or None,
        help=f"also write the cases, figures, targets and the machine here as JSON "
        f"(default: ${JSON_ENV})",
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
        for name in names.values():
            _drop_retrying(server, f"DROP DATABASE IF EXISTS {name}{force}", name)
        server.dispose()


def _drop_retrying(server: Any, statement: str, name: str) -> None:
    """Drop one scratch database; MariaDB sometimes refuses at first (error 1010, a file
    its DDL left in the directory for a moment): try again, then say so without raising
    over the benchmark's results."""
    for attempt in range(3):
        try:
            with server.connect() as conn:
                conn.execute(text(statement))
            return
        except Exception as exc:
            if attempt == 2:
                print(f"could not drop {name}: {exc}".splitlines()[0], file=sys.stderr)
                return
            time.sleep(1.0)


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


def cases_table(title: str, cases: Sequence[Case], reference: Case, backend: str = "") -> str:
    """A markdown table of medians, each with its ratio to ``reference`` (recorded in
    ``SINK`` under ``backend``)."""
    SINK.cases(backend, title, cases, reference)
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
    """The targets' markdown table (recorded in ``SINK``: the last table rendered wins)."""
    SINK.checks(checks)
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


# ------------------------------------------------------------------ the JSON sink


def _read(path: str, key: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return ""


def _git(*args: str) -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _server_version(backend: str) -> str:
    if backend == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    try:
        engine = create_engine(SERVER_URLS[backend], connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                return str(conn.execute(text("SELECT version()")).scalar_one())
        finally:
            engine.dispose()
    except Exception as exc:  # a server that is down is described, not raised
        return f"unreachable ({type(exc).__name__})"


def machine() -> dict[str, Any]:
    """What a run's figures depend on: the machine, its load now, the servers, the code."""
    memory_kb = _read("/proc/meminfo", "MemTotal").split(" ")[0]
    status = _git("status", "--porcelain", "--", "src", "benchmarks")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _read("/proc/cpuinfo", "model name") or platform.processor(),
        "ram_gb": round(int(memory_kb) / 1024**2, 1) if memory_kb.isdigit() else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "servers": {backend: _server_version(backend) for backend in ALL_BACKENDS},
        "load_average": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(status),
    }


class Sink:
    """A benchmark's figures as JSON: opened by ``--json``, written when the process ends.

    Without ``--json`` every method does nothing, so a benchmark records unconditionally.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self.record: dict[str, Any] = {}

    def open(self, path: Path, benchmark: str, options: dict[str, Any]) -> None:
        first = self.path is None
        self.path = path
        self.record = {
            "benchmark": Path(benchmark).stem,
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "options": {k: v for k, v in options.items() if k != "json"},
            "machine": machine(),
            "cases": [],
            "figures": [],
            "checks": [],
            "data": {},
        }
        self._started = time.perf_counter()
        if first:
            atexit.register(self.write)
            previous = sys.excepthook

            def record_crash(kind: Any, value: Any, tb: Any) -> None:
                self.record["error"] = f"{kind.__name__}: {value}"[:500]
                previous(kind, value, tb)

            sys.excepthook = record_crash

    def cases(
        self, backend: str, title: str, cases: Sequence[Case], reference: Case | None = None
    ) -> None:
        """One table of cases, each with its samples and median."""
        if self.path is None:
            return
        self.record["cases"].append(
            {
                "backend": backend,
                "title": title,
                "reference": None if reference is None else reference.label,
                "cases": [
                    {
                        "label": c.label,
                        "median_ms": c.median if c.samples else None,
                        "samples_ms": list(c.samples),
                    }
                    for c in cases
                ],
            }
        )

    def figure(self, backend: str, name: str, value: float | None, unit: str, **about: Any) -> None:
        """One named figure (``about``: what it was measured on, e.g. ``tables=100``)."""
        if self.path is not None:
            self.record["figures"].append(
                {"backend": backend, "name": name, "value": value, "unit": unit, **about}
            )

    def data(self, key: str, value: Any) -> None:
        """A benchmark's own raw structure, kept as it is."""
        if self.path is not None:
            self.record["data"][key] = value

    def checks(self, checks: Sequence[Check]) -> None:
        if self.path is not None:
            self.record["checks"] = [dict(c.__dict__, passed=c.passed) for c in checks]

    def write(self) -> None:
        if self.path is None:
            return
        self.record["machine"]["load_average_end"] = os.getloadavg()[0]
        self.record["machine"]["date_end"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.record["seconds"] = time.perf_counter() - self._started
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.record, indent=1, default=str) + "\n")
        print(f"figures as JSON: {self.path}", file=sys.stderr)


SINK = Sink()
"""The one sink of this process (see the module's docstring)."""


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
