"""peewee-async's own test suite, with its ``TransactionTestCase`` and with dbrewind's drop-in.

The peer suite (a checkout of https://github.com/05bit/peewee-async with a virtualenv
holding it and dbrewind) runs in real pytest subprocesses, alternately with
``peewee_async.testing.TransactionTestCase`` and ``dbrewind.peewee_async.TransactionTestCase``
as the class its ``tests/conftest.py`` wraps every ``use_transaction`` test in
(``tests/aio_model/``: selecting, updating, deleting, related), rounds interleaved
(the order flips every round). The peer's code is not changed: the plugin
``benchmarks/_peewee_async_plugin.py`` (loaded with ``-p``) sets the class on the
conftest module, points the suite at scratch databases this benchmark creates
(``dbrewind_bench_<hex>_pa_test`` on PostgreSQL and MariaDB, a file in a temporary
folder for SQLite; dropped at the end) and writes each test's setup, call and
teardown durations to a JSON file.

Per backend (the suite's ``db`` parameter: ``aiopg-pool``, ``psycopg-pool``,
``mysql-pool``, ``sqlite-pool``) and class: each ``use_transaction`` test's time
(setup + call + teardown) is its median over the rounds; the table shows the
median and the mean of those per-test medians (each run's first such test apart:
it pays for the session's first use of the database), the ratios dbrewind /
peewee-async, the phases, and PASS/FAIL against the target: dbrewind's drop-in
costs at most 1.05x peewee-async's own class per test (the median). Each backend
runs in pytest sessions of its own (``-k aiopg-pool`` ...: the backend's whole
suite; ``--only-transaction`` adds ``-m use_transaction``), as a suite on one
database would. ``--without-plugin`` runs both with ``-p no:dbrewind``. A run in
which any test fails stops the benchmark (exit 1), as does a failed target.

The peer checkout: ``--peer PATH`` or the environment variable
``DBREWIND_PEER_PEEWEE_ASYNC`` (default ``/tmp/peers/pa``); its interpreter
``--python`` (default ``PATH/.venv/bin/python``). When it is missing, the benchmark
says how to make it and exits 2::

    git clone https://github.com/05bit/peewee-async /tmp/peers/pa
    python3 -m venv /tmp/peers/pa/.venv
    /tmp/peers/pa/.venv/bin/pip install -e "/tmp/peers/pa[dev]" -e /path/to/dbrewind

Run::

    python benchmarks/bench_peewee_async.py [--peer /tmp/peers/pa] [--rounds 7]
        [--backends aiopg,psycopg,mysql,sqlite] [--only-transaction] [--without-plugin]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from _common import Check, checks_table, fmt_ms, scratch_databases

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = 1.05
CLASSES = ("peewee_async", "dbrewind")
BACKENDS = {  # --backends name -> the suite's db parameter, and the server it needs
    "aiopg": ("aiopg-pool", "postgresql"),
    "psycopg": ("psycopg-pool", "postgresql"),
    "mysql": ("mysql-pool", "mysql"),
    "sqlite": ("sqlite-pool", "sqlite"),
}
RUN_TIMEOUT = 600.0


def _missing_peer(peer: Path, python: Path) -> str:
    return (
        f"The peer checkout of peewee-async is missing: {python} does not exist.\n"
        "Make it (any folder; pass it with --peer or DBREWIND_PEER_PEEWEE_ASYNC):\n\n"
        f"    git clone https://github.com/05bit/peewee-async {peer}\n"
        f"    python3 -m venv {peer}/.venv\n"
        f'    {peer}/.venv/bin/pip install -e "{peer}[dev]" -e {ROOT}\n\n'
        "Its code needs no change: this benchmark's plugin picks the class and the databases."
    )


@dataclass
class Run:
    """One pytest run of the peer suite on one backend: each test's record (see the plugin)."""

    which: str
    records: dict[str, dict[str, object]]
    seconds: float


def run_suite(
    python: Path, peer: Path, which: str, env: dict[str, str], param: str, extra: list[str]
) -> Run:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        timings = handle.name
    command = [
        str(python),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "_peewee_async_plugin",
        *extra,
        "-k",
        param,
        "tests",
    ]
    run_env = {
        **os.environ,
        **env,
        "DBREWIND_PA_CLASS": which,
        "DBREWIND_PA_TIMINGS": timings,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=peer,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise SystemExit(f"the peer suite failed on {param} with {which}'s class:\n{tail}")
        with open(timings, encoding="utf-8") as source:
            records = json.load(source)
    finally:
        os.unlink(timings)
    return Run(which, records, seconds)


def _total_ms(record: dict[str, object]) -> float:
    return 1000 * sum(float(record[when]) for when in ("setup", "call", "teardown"))  # type: ignore[arg-type]


def _sandboxed(run: Run) -> list[tuple[str, dict[str, object]]]:
    """The run's ``use_transaction`` tests, in the order they ran."""
    found = [(n, r) for n, r in run.records.items() if r["transaction"]]
    return sorted(found, key=lambda item: int(item[1]["order"]))  # type: ignore[call-overload]


@dataclass
class Figures:
    """One class on one backend, over the rounds (ms)."""

    tests: int
    median: float
    """The median over the tests of each test's median time."""
    mean: float
    """Their mean, without each run's first ``use_transaction`` test (see ``first``)."""
    first: float
    """The median over the runs of the first ``use_transaction`` test's time: it pays
    for the session's first use of the database (peewee-async: nothing more; dbrewind:
    its lifecycle taking the database up, tracking installed for the suite's new tables)."""
    phases: tuple[float, float, float]
    """Medians of setup, call and teardown over every later test of every run."""
    seconds: float
    """The median wall time of a whole run (the backend's whole suite, process start)."""


def figures(runs: list[Run], names: set[str]) -> Figures:
    samples: dict[str, list[float]] = {}
    firsts: list[float] = []
    phases: list[list[float]] = [[], [], []]
    for run in runs:
        ordered = [(n, r) for n, r in _sandboxed(run) if n in names]
        for place, (nodeid, record) in enumerate(ordered):
            if place == 0:
                firsts.append(_total_ms(record))
                continue
            samples.setdefault(nodeid, []).append(_total_ms(record))
            for i, when in enumerate(("setup", "call", "teardown")):
                phases[i].append(1000 * float(record[when]))  # type: ignore[arg-type]
    per_test = [statistics.median(v) for v in samples.values()]
    return Figures(
        tests=len(per_test),
        median=statistics.median(per_test),
        mean=statistics.mean(per_test),
        first=statistics.median(firsts),
        phases=(
            statistics.median(phases[0]),
            statistics.median(phases[1]),
            statistics.median(phases[2]),
        ),
        seconds=statistics.median(r.seconds for r in runs),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--peer",
        default=os.environ.get("DBREWIND_PEER_PEEWEE_ASYNC", "/tmp/peers/pa"),
        help="the peewee-async checkout (default: $DBREWIND_PEER_PEEWEE_ASYNC or /tmp/peers/pa)",
    )
    parser.add_argument("--python", help="its interpreter (default: PEER/.venv/bin/python)")
    parser.add_argument(
        "--rounds", type=int, default=7, help="runs of each class per backend (default 7)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, from {', '.join(BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--without-plugin",
        action="store_true",
        help="run both classes with -p no:dbrewind: dbrewind's class as a plain library, "
        "without the pytest plugin's per-test safety net (which checks the database after "
        "every test once a sandbox took it up)",
    )
    parser.add_argument(
        "--only-transaction",
        action="store_true",
        help="run only the use_transaction tests (-m use_transaction), not the backend's "
        "whole suite: quicker, the same tests compared",
    )
    args = parser.parse_args()
    peer = Path(args.peer).resolve()
    python = Path(args.python) if args.python else peer / ".venv" / "bin" / "python"
    if not python.exists() or not (peer / "tests" / "conftest.py").exists():
        print(_missing_peer(peer, python), file=sys.stderr)
        return 2
    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown:
        raise SystemExit(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}"
        )
    extra = ["-p", "no:dbrewind"] if args.without_plugin else []
    if args.only_transaction:
        extra += ["-m", "use_transaction"]

    runs: dict[tuple[str, str], list[Run]] = {
        (name, which): [] for name in chosen for which in CLASSES
    }
    with ExitStack() as stack:
        # the suite creates its tables on every server at session start, so each gets a
        # scratch database; their names say test, so dbrewind's safety net is on there
        pg = stack.enter_context(scratch_databases("postgresql", ["pa"]))["pa"]
        my = stack.enter_context(scratch_databases("mysql", ["pa"]))["pa"]
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="dbrewind_bench_pa_"))
        env = {
            "DBREWIND_PA_POSTGRES_DB": str(pg.database),
            "DBREWIND_PA_MYSQL_DB": str(my.database),
            "DBREWIND_PA_SQLITE_FILE": str(Path(folder) / "pa_test.sqlite"),
        }
        print(
            f"peer suite {peer}: backends {', '.join(chosen)}, {args.rounds} rounds of each "
            f"class, interleaved{' (without the plugin)' if args.without_plugin else ''}",
            flush=True,
        )
        for name in chosen:  # a warm-up run of each (imports, the first installation)
            for which in CLASSES:
                run_suite(python, peer, which, env, BACKENDS[name][0], extra)
        for round_ in range(args.rounds):
            line = []
            for name in chosen:
                order = CLASSES if round_ % 2 == 0 else tuple(reversed(CLASSES))
                for which in order:
                    run = run_suite(python, peer, which, env, BACKENDS[name][0], extra)
                    runs[(name, which)].append(run)
                    line.append(f"{name}/{which} {run.seconds:.1f} s")
            print(f"  round {round_ + 1}: " + ", ".join(line), flush=True)

    checks: list[Check] = []
    lines = [
        "",
        "**peewee-async's test suite, its `use_transaction` tests: per-test time "
        "(setup + call + teardown), ms**",
        "",
        "| backend | tests | peewee-async median | dbrewind median | x | "
        "peewee-async mean | dbrewind mean | x | first test (pa / dbrewind) | "
        "setup / call / teardown (pa) | (dbrewind) | whole run s (pa / dbrewind) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for name in chosen:
        param = BACKENDS[name][0]
        theirs_runs, ours_runs = runs[(name, "peewee_async")], runs[(name, "dbrewind")]
        names = {n for r in theirs_runs for n, _ in _sandboxed(r)}
        names &= {n for r in ours_runs for n, _ in _sandboxed(r)}
        theirs, ours = figures(theirs_runs, names), figures(ours_runs, names)
        phases_t = " / ".join(fmt_ms(v) for v in theirs.phases)
        phases_o = " / ".join(fmt_ms(v) for v in ours.phases)
        lines.append(
            f"| {param} | {ours.tests} | {fmt_ms(theirs.median)} | {fmt_ms(ours.median)} | "
            f"{ours.median / theirs.median:.2f} | {fmt_ms(theirs.mean)} | {fmt_ms(ours.mean)} | "
            f"{ours.mean / theirs.mean:.2f} | {fmt_ms(theirs.first)} / {fmt_ms(ours.first)} | "
            f"{phases_t} | {phases_o} | {theirs.seconds:.2f} / {ours.seconds:.2f} |"
        )
        checks.append(
            Check(
                param,
                "median per test, x peewee-async",
                ours.median / theirs.median,
                "<=",
                TARGET,
                "x",
            )
        )
    lines += [
        "",
        "Per test: its median over the rounds; median and mean over the tests, without "
        "each run's first `use_transaction` test (shown apart: the session's first use "
        "of the database). The target is on the median.",
        "",
        checks_table(checks),
    ]
    print("\n".join(lines))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
