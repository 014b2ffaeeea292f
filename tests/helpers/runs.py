"""Drive whole pytest runs of an inner suite, and look at the database between them.

A lifecycle test writes an inner suite with ``pytester``, runs it (often
several times, sometimes two at once or killed half-way) against a database
made for the test, and after each run compares what the database holds with
its baseline: rows, counters (the next id each table would hand out) and
dbrewind's tracking (installed, covering every table, nothing dirty, no
baseline layer left).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Engine

from conftest import SERVER_URLS, drop_database
from dbrewind import Rewinder, parse_url
from dbrewind.dialects import Installation

__all__ = [
    "Observation",
    "Run",
    "databases_named",
    "drop_derived",
    "observe",
    "pytest_args",
    "start",
    "wait_for_file",
]

# Inner runs: no cache, output we can parse.
BASE_ARGS = ("-p", "no:cacheprovider", "-q", "-rA")


def pytest_args(url: URL | str | None, *args: str, seed: int | None = None) -> list[str]:
    """The command line of an inner run against ``url`` (None: the suite's own config).

    Tests run in file order, or in the random order of ``seed`` (pytest-randomly).
    """
    out = list(BASE_ARGS)
    out += ["-p", "no:randomly"] if seed is None else [f"--randomly-seed={seed}"]
    if url is not None:
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        out.append(f"--dbrewind-url={rendered}")
    return out + list(args)


@dataclass
class Run:
    """An inner pytest run started in the background."""

    proc: subprocess.Popen[str]

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        """Wait for it; its exit code and output (stdout and stderr together)."""
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out

    def kill(self) -> None:
        """SIGKILL it (no teardown, no atexit: as a crash or a killed CI job)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=60)


def start(cwd: Path, args: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Start ``python -m pytest <args>`` in ``cwd`` without waiting for it."""
    environment = dict(os.environ)
    environment.pop("PYTEST_XDIST_WORKER", None)
    environment.pop("PYTEST_ADDOPTS", None)
    environment.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Run(proc)


def wait_for_file(path: Path, run: Run, timeout: float = 120) -> None:
    """Wait until ``path`` exists (the inner test reached its checkpoint)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if run.proc.poll() is not None:
            _, out = run.finish()
            raise AssertionError(f"the inner run ended before {path.name}:\n{out}")
        if time.monotonic() > deadline:
            run.kill()
            raise AssertionError(f"{path.name} did not appear in {timeout:.0f} s")
        time.sleep(0.05)


# ------------------------------------------------------------------ databases


def databases_named(backend: str, prefix: str, where: Path | None = None) -> list[str]:
    """Databases (SQLite: files in ``where``) whose names start with ``prefix``."""
    if backend == "sqlite":
        assert where is not None
        return sorted(
            p.name
            for p in where.glob(f"{prefix}*")
            if p.suffix == ".db" and not p.name.endswith(("-wal", "-shm", "-journal"))
        )
    engine = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                rows = conn.execute(text("SELECT datname FROM pg_database"))
            else:
                rows = conn.execute(text("SHOW DATABASES"))
            return sorted(str(r[0]) for r in rows if str(r[0]).startswith(prefix))
    finally:
        engine.dispose()


def drop_derived(backend: str, url: URL) -> None:
    """Drop ``url``'s database and every one derived from it (templates, clones)."""
    if backend == "sqlite":
        return  # files in the test's tmp_path
    stem = str(url.database)
    for name in databases_named(backend, stem):
        drop_database(backend, url.set(database=name))


@dataclass(frozen=True)
class Observation:
    """What a database holds after a run."""

    rows: dict[str, list[tuple[Any, ...]]]
    """Each table's rows, sorted."""
    counters: dict[str, int | None]
    """The next id each table would hand out (None: no counter)."""
    tracking: Installation

    @property
    def at_rest(self) -> bool:
        """Tracking intact, nothing dirty, no baseline layer left over."""
        found = self.tracking
        return found.intact and not found.dirty and found.depth == 0


def observe(url: URL, tables: Sequence[str]) -> Observation:
    """Read rows, counters and tracking of ``tables`` in ``url``'s database, writing nothing."""
    backend = parse_url(url).backend
    engine = create_engine(url)
    try:
        rows = {table: _rows(engine, table) for table in tables}
        counters = {table: _next_id(engine, backend, table) for table in tables}
    finally:
        engine.dispose()
    with Rewinder(url) as rewinder, rewinder.connection() as conn:
        tracking = rewinder.dialect.installation(conn)
    return Observation(rows, counters, tracking)


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote_identifier(name)


def _rows(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(
            tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {_quote(engine, table)}")
        )


def _next_id(engine: Engine, backend: str, table: str) -> int | None:
    with engine.connect() as conn:
        if backend == "postgresql":
            key = inspect(conn).get_pk_constraint(table)["constrained_columns"]
            if len(key) != 1:
                return None
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"),
                {"t": _quote(engine, table), "c": key[0]},
            ).scalar()
            if seq is None:
                return None
            last, called = conn.exec_driver_sql(f"SELECT last_value, is_called FROM {seq}").one()
            return int(last) + 1 if called else int(last)
        if backend == "mysql":
            if not getattr(engine.dialect, "is_mariadb", False):
                conn.exec_driver_sql("SET SESSION information_schema_stats_expiry = 0")
            value = conn.execute(
                text(
                    "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
                ),
                {"t": table},
            ).scalar()
            return None if value is None else int(value)
        has_sequence = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
        ).first()
        if has_sequence is not None:
            row = conn.execute(
                text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}
            ).first()
            if row is not None:
                return int(row[0]) + 1
        top = conn.exec_driver_sql(f"SELECT MAX(rowid) FROM {_quote(engine, table)}").scalar()
        return int(top or 0) + 1
