"""The lifecycle's costs, measured through real pytest runs on every backend.

A small generated suite whose session ``dbrewind_setup`` sleeps 2 s, then
creates two tables and seeds a row, runs in a subprocess against a scratch
database (``--dbrewind-url``). The plugin's summary line (``preparing N ms``)
gives each run's session-start cost:

(a) a cold run (the template is built) against warm runs (same fingerprint:
    the template and the clone are reused); target: warm <= 500 ms;
(b) a second run started while a first run of the same suite holds the
    database (the first run's test waits for a file the benchmark creates once
    the second run finished): it must pass on a clone of its own (its summary
    has a ``note:`` line saying so). Its first time the clone ``<name>_r1`` is
    made from the warm template, later it is reused; target: <= 1,000 ms each;
(c) the lease itself, in-process: ``get_dialect(backend).acquire_lock(url,
    "lease", wait=0)`` and ``release()``, and a try that another session's
    lease refuses (what a second run pays for each slot in use), median of 50.

At the end every database the runs made is dropped (the test database, its
templates ``<name>_tmpl_*`` and its clones ``<name>_r1``...), also after an error::

    python benchmarks/bench_lifecycle.py [--backends postgresql,mysql,sqlite] [--rounds 5]
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    SINK,
    Check,
    base_parser,
    checks_table,
    fmt_ms,
    scratch_databases,
    selected_backends,
)
from sqlalchemy.engine import URL

SETUP_SECONDS = 2
WARM_TARGET_MS = 500.0
SECOND_RUN_TARGET_MS = 1000.0
LEASE_ROUNDS = 50
HOLD_TIMEOUT = 180.0
"""Seconds the holding run waits for the benchmark's go (then its test fails)."""
RUN_TIMEOUT = 300.0

SCHEMA = f"""
import time

import sqlalchemy as sa

metadata = sa.MetaData()
authors = sa.Table(
    "authors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
)
books = sa.Table(
    "books",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("authors.id"), nullable=False),
    sa.Column("title", sa.String(100), nullable=False),
)


def setup(conn):
    time.sleep({SETUP_SECONDS})
    metadata.create_all(conn)
    conn.execute(authors.insert().values(id=1, name="Ada"))
"""

CONFTEST = """
import pytest

import schema


@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup
"""

TESTS = f"""
import os
import time
from pathlib import Path

import sqlalchemy as sa

from schema import authors, books


def count(conn, table):
    return conn.scalar(sa.select(sa.func.count()).select_from(table))


def test_hold(db, db_url):
    # In the holding run: say which database this run works on, then keep it
    # (and its lease) until the benchmark creates the release file.
    ready, release = os.environ.get("BENCH_READY"), os.environ.get("BENCH_RELEASE")
    if ready and release:
        Path(ready).write_text(db_url)
        deadline = time.monotonic() + {HOLD_TIMEOUT}
        while not Path(release).exists():
            assert time.monotonic() < deadline, "the benchmark never released the hold"
            time.sleep(0.02)
    assert count(db, authors) == 1


def test_rollback(db):
    db.execute(books.insert().values(author_id=1, title="Notes"))
    db.commit()
    assert count(db, books) == 1


def test_transactional(transactional_db):
    transactional_db.execute(authors.insert().values(id=2, name="Grace"))
    transactional_db.commit()
    assert count(transactional_db, authors) == 2


def test_baseline(db):
    assert count(db, authors) == 1
    assert count(db, books) == 0
"""

PASSED = "4 passed"


class RunFailed(Exception):
    """A pytest run of the generated suite did not do what the benchmark needs."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass
class Run:
    """What one pytest run of the suite reported."""

    prepare_ms: float
    wall_ms: float
    built: int
    reused: int
    notes: list[str]
    output: str


def _parse(proc_stdout: str, wall_ms: float) -> Run:
    prepare = re.search(r"preparing (\d+) ms \(templates built (\d+), reused (\d+)\)", proc_stdout)
    if prepare is None:
        raise RunFailed("no dbrewind summary line in the run's output", proc_stdout)
    notes = re.findall(r"^note: (.*)$", proc_stdout, flags=re.MULTILINE)
    return Run(
        prepare_ms=float(prepare.group(1)),
        wall_ms=wall_ms,
        built=int(prepare.group(2)),
        reused=int(prepare.group(3)),
        notes=notes,
        output=proc_stdout,
    )


def _command(url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        f"--dbrewind-url={url}",
    ]


def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DBREWIND_URL", "PYTEST_ADDOPTS", "BENCH_READY", "BENCH_RELEASE")
    }
    return {**env, "PYTHONPATH": str(project), **extra}


def _check(what: str, returncode: int, stdout: str, stderr: str) -> None:
    if returncode != 0 or PASSED not in stdout:
        raise RunFailed(
            f"{what}: the suite did not pass (pytest exit {returncode})", stdout + "\n" + stderr
        )


def _run(project: Path, url: str, what: str) -> Run:
    started = time.perf_counter()
    proc = subprocess.run(
        _command(url),
        cwd=project,
        capture_output=True,
        text=True,
        env=_env(project),
        timeout=RUN_TIMEOUT,
        check=False,
    )
    wall = (time.perf_counter() - started) * 1000
    _check(what, proc.returncode, proc.stdout, proc.stderr)
    return _parse(proc.stdout, wall)


def _second_run_while_held(project: Path, url: str, round_no: int) -> tuple[Run, Run, str]:
    """Start a run that holds the database, run the suite again meanwhile, then let go.

    Returns (the second run, the holding run, the database the holder worked on).
    """
    signals = Path(tempfile.mkdtemp(prefix=f"held{round_no}_", dir=project))
    ready, release = signals / "ready", signals / "release"
    started = time.perf_counter()
    holder = subprocess.Popen(
        _command(url),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(project, BENCH_READY=str(ready), BENCH_RELEASE=str(release)),
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not ready.exists():
            if holder.poll() is not None:
                out, err = holder.communicate()
                raise RunFailed("the holding run ended before it held the database", out + err)
            if time.monotonic() > deadline:
                raise RunFailed("the holding run never got to its test")
            time.sleep(0.02)
        held_url = ready.read_text()
        second = _run(project, url, "the second run (while another run holds the database)")
        release.write_text("go")
        out, err = holder.communicate(timeout=RUN_TIMEOUT)
        _check("the holding run", holder.returncode, out, err)
        first = _parse(out, (time.perf_counter() - started) * 1000)
    finally:
        if holder.poll() is None:  # only after an error: never leave it behind
            holder.kill()
            holder.communicate()
    own_clone = [n for n in second.notes if "own clone" in n]
    if not own_clone:
        raise RunFailed(
            "the second run's summary has no note saying it works on its own clone",
            second.output,
        )
    if first.notes or first.built:
        raise RunFailed("the holding run was not a plain warm start", first.output)
    return second, first, held_url


# ---------------------------------------------------------------------- leases


def _lease_ms(url: URL) -> tuple[float, float, float]:
    """Median ms of: acquire (get_dialect included), release, a try another lease refuses."""
    from dbrewind import parse_url
    from dbrewind.dialects import get_dialect

    db_url = parse_url(url)
    backend = db_url.backend
    warm = get_dialect(backend).acquire_lock(db_url, "lease", wait=0)  # imports, first connect
    if warm is None:
        raise RunFailed(f"the lease of {db_url.display()} is still held after the runs ended")
    warm.release()
    acquire: list[float] = []
    release: list[float] = []
    for _ in range(LEASE_ROUNDS):
        t0 = time.perf_counter_ns()
        lock = get_dialect(backend).acquire_lock(db_url, "lease", wait=0)
        t1 = time.perf_counter_ns()
        if lock is None:
            raise RunFailed(f"acquire_lock refused a free lease of {db_url.display()}")
        lock.release()
        t2 = time.perf_counter_ns()
        acquire.append((t1 - t0) / 1e6)
        release.append((t2 - t1) / 1e6)
    refused: list[float] = []
    held = get_dialect(backend).acquire_lock(db_url, "lease", wait=0)
    assert held is not None
    try:
        for _ in range(LEASE_ROUNDS):
            t0 = time.perf_counter_ns()
            other = get_dialect(backend).acquire_lock(db_url, "lease", wait=0)
            refused.append((time.perf_counter_ns() - t0) / 1e6)
            if other is not None:
                other.release()
                raise RunFailed(f"a second lease of {db_url.display()} was granted while held")
    finally:
        held.release()
    return statistics.median(acquire), statistics.median(release), statistics.median(refused)


# --------------------------------------------------------------------- cleanup


def _drop_everything(url: URL) -> list[str]:
    """Drop the test database and every template and clone derived from it."""
    from dbrewind import Rewinder, parse_url
    from dbrewind.dialects import get_dialect

    base = parse_url(url)
    dialect = get_dialect(base.backend)
    prefix = Path(base.database).stem if base.backend == "sqlite" else base.database
    names = dialect.list_databases(base, prefix)
    # clones before templates: a PostgreSQL template cannot go while a clone is being made
    names.sort(key=lambda n: ("_tmpl_" in n, n))
    dropped: list[str] = []
    for name in names:
        with Rewinder(base.with_database(name)) as rewinder:
            rewinder.drop()
        dropped.append(name)
    left = dialect.list_databases(base, prefix)
    if left:
        raise RunFailed(f"databases left after the clean-up: {', '.join(left)}")
    return dropped


# ---------------------------------------------------------------------- report


@dataclass
class Result:
    backend: str
    cold: Run | None = None
    warm: list[Run] = field(default_factory=list)
    second_new: Run | None = None
    second_reused: list[Run] = field(default_factory=list)
    lease: tuple[float, float, float] | None = None
    dropped: list[str] = field(default_factory=list)
    error: str = ""


def _med(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def _cell(value: float | None, scale: float = 1.0) -> str:
    return "-" if value is None else fmt_ms(value / scale)


def _measure(backend: str, rounds: int, concurrent: int) -> Result:
    result = Result(backend)
    with scratch_databases(backend, ["life"]) as urls, tempfile.TemporaryDirectory() as tmp:
        url = urls["life"]
        shown = url.render_as_string(hide_password=False)
        project = Path(tmp)
        (project / "schema.py").write_text(textwrap.dedent(SCHEMA).lstrip())
        (project / "conftest.py").write_text(textwrap.dedent(CONFTEST).lstrip())
        (project / "test_suite.py").write_text(textwrap.dedent(TESTS).lstrip())
        (project / "pytest.ini").write_text("[pytest]\n")
        try:
            try:
                cold = _run(project, shown, "the cold run")
                if cold.built != 1:
                    raise RunFailed("the cold run did not build the template", cold.output)
                result.cold = cold
                for i in range(rounds):
                    warm = _run(project, shown, f"warm run {i + 1}")
                    if warm.built != 0 or warm.reused != 1:
                        raise RunFailed("a warm run did not reuse the template", warm.output)
                    result.warm.append(warm)
                for i in range(concurrent):
                    second, _holder, _held = _second_run_while_held(project, shown, i)
                    if second.built != 0:
                        raise RunFailed("the second run rebuilt the template", second.output)
                    if i == 0:
                        result.second_new = second
                    else:
                        result.second_reused.append(second)
                result.lease = _lease_ms(url)
            finally:
                result.dropped = _drop_everything(url)
        except RunFailed as exc:
            result.error = str(exc)
            print(f"\n{backend}: FAILED: {exc}", file=sys.stderr)
            if exc.output:
                print(textwrap.indent(exc.output.strip()[-6000:], "    "), file=sys.stderr)
        except Exception as exc:  # a dbrewind error: show it, measure the other backends
            result.error = f"{type(exc).__name__}: {exc}"
            print(f"\n{backend}: FAILED:", file=sys.stderr)
            traceback.print_exc()
    return result


def main() -> int:
    parser = base_parser(__doc__ or "", default_rounds=5)
    args = parser.parse_args()
    rounds = 2 if args.quick else max(args.rounds, 1)
    concurrent = 2 if args.quick else max(rounds, 2)
    results = [_measure(b, rounds, concurrent) for b in selected_backends(args.backends)]

    print(
        f"### Lifecycle: setup sleeping {SETUP_SECONDS} s; {rounds} warm runs, "
        f"{concurrent} runs while another holds the database\n"
    )
    print("**session start (the summary's `preparing`), ms; wall time of the run, s**\n")
    print(
        "| backend | cold | warm (median) | second run, new own clone | "
        "second run, own clone reused (median) | wall: cold / warm / second |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in results:
        warm = _med(r.warm, "prepare_ms") if r.warm else None
        reused = _med(r.second_reused, "prepare_ms") if r.second_reused else None
        walls = [
            r.cold.wall_ms / 1000 if r.cold else None,
            _med(r.warm, "wall_ms") / 1000 if r.warm else None,
            r.second_new.wall_ms / 1000 if r.second_new else None,
        ]
        wall = " / ".join("-" if w is None else f"{w:.2f}" for w in walls)
        starts = {
            "cold": r.cold.prepare_ms if r.cold else None,
            "warm": warm,
            "second run, new own clone": r.second_new.prepare_ms if r.second_new else None,
            "second run, own clone reused": reused,
        }
        for start, value in starts.items():
            SINK.figure(r.backend, "session start", value, "ms", start=start)
        print(
            f"| {r.backend} | {_cell(r.cold.prepare_ms if r.cold else None)} | {_cell(warm)} | "
            f"{_cell(r.second_new.prepare_ms if r.second_new else None)} | {_cell(reused)} | "
            f"{wall} |"
        )
    print(f"\n**the lease, in-process, median of {LEASE_ROUNDS}, ms**\n")
    print("| backend | acquire (wait=0) | release | acquire + release | refused (held elsewhere) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        if r.lease is None:
            print(f"| {r.backend} | - | - | - | - |")
            continue
        acquire, release, refused = r.lease
        SINK.figure(r.backend, "lease, acquire + release", acquire + release, "ms")
        print(
            f"| {r.backend} | {fmt_ms(acquire)} | {fmt_ms(release)} | "
            f"{fmt_ms(acquire + release)} | {fmt_ms(refused)} |"
        )
    notes = [n for r in results if r.second_new for n in r.second_new.notes]
    if notes:
        print("\nthe second run's note, e.g.: " + notes[0])
    print()
    for r in results:
        names = ", ".join(os.path.basename(n) for n in r.dropped) or "-"
        print(f"{r.backend}: dropped {len(r.dropped)} database(s): {names}")
    print()
    checks: list[Check] = []
    for r in results:
        if r.error:
            checks.append(Check(r.backend, f"runs completed ({r.error[:80]})", 0, ">=", 1, ""))
            continue
        assert r.second_new is not None
        targets = [
            ("warm start: preparing", _med(r.warm, "prepare_ms"), WARM_TARGET_MS),
            ("second run, new own clone: preparing", r.second_new.prepare_ms, SECOND_RUN_TARGET_MS),
        ]
        if r.second_reused:
            reused = _med(r.second_reused, "prepare_ms")
            targets.append(
                ("second run, own clone reused: preparing", reused, SECOND_RUN_TARGET_MS)
            )
        checks += [
            Check(r.backend, what, value, "<=", limit, " ms") for what, value, limit in targets
        ]
    print(checks_table(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
