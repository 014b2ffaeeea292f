"""Run the reliability suite and the long load run, and write RELIABILITY.md from them.

    .venv/bin/python scripts/reliability.py [--output PATH] [--tests N] [--check]

1. ``pytest tests/reliability`` with a recording plugin (``_reliability_record``):
   for each test, its section (its module docstring's first line), what it
   tried (its docstring's first line), the database it ran on, its outcome and
   its ``record_property("result", ...)``.
2. The load run (``_reliability_load``): per database, a generated suite of
   N tests in one pytest session; tests run, rows written, leaks found,
   per-test time, memory and connections of the first 100 against the last 100.
3. RELIABILITY.md: one table per section, a load table per database, totals.

``--check`` exits 1 when a reliability test failed, a load run failed, any
leak was found or a measure grew beyond noise. Nothing in RELIABILITY.md is
written by hand: run this command again to bring it up to date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _reliability_load as load  # noqa: E402

ROOT = load.ROOT
BACKENDS = ("sqlite", "postgresql", "mysql")
TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
MARKS = {"passed": "\u2714", "failed": "\u2718", "skipped": "\u2013"}
"""A cell: passed, failed, does not apply (a check mark, a cross, an en dash; ``skipped``
when skipped for another reason)."""
COMMAND = "python scripts/reliability.py"


# ------------------------------------------------------------------ the suite


def run_suite(record: Path, suite: str, workers: int, extra: list[str]) -> int:
    """``pytest <suite>`` (tests/reliability) with the recorder; its exit code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["RELIABILITY_RECORD"] = str(record)
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", suite, "-p", "_reliability_record"]
    command += ["-q", "-p", "no:randomly", "-n", str(workers), *extra]
    print("$", " ".join(command[1:]), flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def load_record(record: Path, code: int) -> list[dict[str, Any]]:
    if not record.exists():
        return [
            {
                "path": "tests/reliability",
                "line": 0,
                "section": "tests/reliability",
                "tried": "the reliability suite runs",
                "backend": None,
                "outcome": "failed",
                "message": f"pytest exited {code} and recorded nothing",
                "result": None,
            }
        ]
    tests: list[dict[str, Any]] = json.loads(record.read_text())["tests"]
    return tests


# ------------------------------------------------------------------ rendering


def _cell(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return ""
    outcomes = [e["outcome"] for e in entries]
    if "failed" in outcomes:
        mark = MARKS["failed"]
    elif "passed" in outcomes:
        mark = MARKS["passed"]
    elif all(_says_not_applicable(e) for e in entries):
        mark = MARKS["skipped"]
    else:
        return "skipped"
    if len(entries) > 1 and mark != MARKS["skipped"]:
        mark += f" {outcomes.count('passed')}/{len(entries) - outcomes.count('skipped')}"
    return mark


def _says_not_applicable(entry: dict[str, Any]) -> bool:
    return str(entry["message"]).startswith("not applicable")


def _say(entry: dict[str, Any]) -> str | None:
    if entry["outcome"] == "failed":
        return f"failed: {entry['message']}"
    if entry["outcome"] == "skipped":
        return None if _says_not_applicable(entry) else f"skipped: {entry['message']}"
    return entry["result"]


def _result_text(by_backend: dict[str | None, list[dict[str, Any]]]) -> str:
    said: dict[str, list[str]] = defaultdict(list)  # text -> where
    order = {b: i for i, b in enumerate(BACKENDS)}
    for backend, entries in sorted(by_backend.items(), key=lambda kv: order.get(kv[0] or "", 9)):
        for entry in entries:
            text = _say(entry)
            if text and TITLES.get(backend or "", "") not in said[text]:
                said[text].append(TITLES.get(backend or "", ""))
    parts = []
    for text, where in said.items():
        names = [w for w in where if w]
        whole = len(names) == len(by_backend) or not names
        parts.append(text if whole else f"{'/'.join(names)}: {text}")
    return "; ".join(parts).replace("|", "\\|").replace("\n", " ")


def render_sections(tests: list[dict[str, Any]]) -> list[str]:
    sections: dict[str, dict[str, dict[str | None, list[dict[str, Any]]]]] = {}
    first_seen: dict[tuple[str, str], tuple[str, int]] = {}
    section_order: dict[str, tuple[str, int]] = {}
    for entry in tests:
        section, tried = entry["section"], entry["tried"]
        where = (entry["path"], int(entry["line"]))
        rows = sections.setdefault(section, {})
        rows.setdefault(tried, defaultdict(list))[entry["backend"]].append(entry)
        first_seen[(section, tried)] = min(first_seen.get((section, tried), where), where)
        section_order[section] = min(section_order.get(section, where), where)
    out: list[str] = []
    for section in sorted(sections, key=lambda s: section_order[s]):
        rows = sections[section]
        general = any(None in by for by in rows.values())
        columns = [*(TITLES[b] for b in BACKENDS), *(["any database"] if general else [])]
        out += [f"### {section}", ""]
        out.append("| tried | " + " | ".join(columns) + " | result |")
        out.append("|---|" + ":-:|" * len(columns) + "---|")
        for tried in sorted(rows, key=lambda t: first_seen[(section, t)]):
            by = rows[tried]
            cells = [_cell(by.get(b, [])) or MARKS["skipped"] for b in BACKENDS]
            if general:
                cells.append(_cell(by.get(None, [])) or MARKS["skipped"])
            label = tried.replace("|", "\\|")
            out.append(f"| {label} | " + " | ".join(cells) + f" | {_result_text(by)} |")
        out.append("")
    return out


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def render_load(results: list[load.LoadResult], requested: int) -> list[str]:
    out = [
        "## Load",
        "",
        f"Per database, a generated suite of {requested:,} tests run in one pytest session "
        "(the same mix in every block of 20: 8 sandboxed ORM tests through `db_session`, "
        "3 `db` tests with a savepoint rolled back, 2 async tests through "
        f"`async_db_session`, 5 `transactional_db` tests that commit, one `transactional_db` "
        f"and one `db_session` test writing {load.MANY} rows). Each test first compares every "
        "table with the baseline: a difference is a leak, counted and failed. After the run "
        "the database is compared with its baseline from outside (rows, counters except on "
        "MariaDB, whose sandbox leaves AUTO_INCREMENT where it got to, and tracking). "
        "Time is a test's setup, call and teardown; RSS is the pytest process's; connections "
        "are those open to the test database as the server counts them (PostgreSQL "
        "`pg_stat_activity`, MariaDB `information_schema.PROCESSLIST`; SQLite: the process's "
        "descriptors on the database file), read after each teardown.",
        "",
        f"No growth beyond noise means: {load.THRESHOLDS}.",
        "",
    ]
    if not results:
        return [*out, "Not run (`--backends` named none).", ""]
    out.append("| | " + " | ".join(TITLES[r.backend] for r in results) + " |")
    out.append("|---|" + "---:|" * len(results))

    def row(label: str, values: list[str]) -> None:
        out.append(f"| {label} | " + " | ".join(values) + " |")

    row("tests run", [f"{r.tests:,}" for r in results])
    row("tests passed", [f"{r.passed:,}" for r in results])
    row("rows written", [f"{r.rows:,}" for r in results])
    row("**leaks found**", [f"**{r.leaks}**" for r in results])
    row("session wall time", [_fmt(r.seconds, " s") for r in results])
    row("per-test time, median", [_fmt(r.median_ms, " ms", 2) for r in results])
    row("per-test time, p95", [_fmt(r.p95_ms, " ms", 2) for r in results])
    for label, key, unit, digits in (
        ("per-test time, median", "median_ms", " ms", 2),
        ("RSS, median", "rss_mib", " MiB", 1),
        ("connections open, median", "connections_median", "", 0),
        ("connections open, most", "connections_max", "", 0),
    ):
        for window, name in (("first", "first"), ("last", "last")):
            row(
                f"{label}: {name} {load.WINDOW}",
                [_fmt(getattr(r, window).get(key), unit, digits) for r in results],
            )

    def spread(r: load.LoadResult, key: str, unit: str, digits: int) -> str:
        values = [float(v) for w in r.windows if (v := w.get(key)) is not None]
        if not values:
            return "n/a"
        return f"{_fmt(min(values), unit, digits)} to {_fmt(max(values), unit, digits)}"

    row(
        f"per-test time, median of each {load.WINDOW} in turn",
        [spread(r, "median_ms", " ms", 2) for r in results],
    )
    row(
        f"connections open, most in each {load.WINDOW} in turn",
        [spread(r, "connections_max", "", 0) for r in results],
    )
    row(
        "connections open after the session ended",
        ["n/a" if r.left_open is None else str(r.left_open) for r in results],
    )
    verdicts = []
    for r in results:
        if not r.growth:
            verdicts.append("not measured")
        else:
            verdicts.append(
                ", ".join(f"{k} {'PASS' if ok else 'FAIL'}" for k, ok in r.growth.items())
            )
    row("no growth beyond noise", verdicts)
    out.append("")
    for r in results:
        if r.error or r.leak_notes:
            out.append(f"{TITLES[r.backend]}: " + "; ".join([*r.leak_notes, r.error or ""]))
            out.append("")
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _server_versions() -> dict[str, str]:
    import sqlite3

    from sqlalchemy import create_engine, text

    found = {"SQLite": sqlite3.sqlite_version}
    for backend, query in (("postgresql", "SHOW server_version"), ("mysql", "SELECT VERSION()")):
        engine = create_engine(load.SERVER_URLS[backend])
        try:
            with engine.connect() as conn:
                found[TITLES[backend]] = str(conn.execute(text(query)).scalar())
        except Exception as exc:  # an unreachable server is reported, not fatal here
            found[TITLES[backend]] = f"unreachable ({type(exc).__name__})"
        finally:
            engine.dispose()
    return found


def _machine() -> str:
    import psutil

    memory = psutil.virtual_memory().total / 2**30
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {memory:.1f} GiB"


def _revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def render(
    tests: list[dict[str, Any]], results: list[load.LoadResult], args: argparse.Namespace
) -> str:
    servers = _server_versions()
    drivers = ", ".join(
        f"{d} {_version(d)}"
        for d in ("psycopg", "asyncpg", "PyMySQL", "aiomysql", "aiosqlite", "pytest")
    )
    failed = sum(t["outcome"] == "failed" for t in tests)
    passed = sum(t["outcome"] == "passed" for t in tests)
    skipped = sum(t["outcome"] == "skipped" for t in tests)
    leaks = sum(r.leaks for r in results)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability",
        "",
        "<!-- Generated by scripts/reliability.py; do not edit by hand. -->",
        "",
        f"Generated by `{COMMAND} --tests {args.tests}` on {now}, at revision {_revision()}. "
        "Never written by hand: run the command again to bring it up to date.",
        "",
        f"- Machine: {_machine()}",
        f"- Python {platform.python_version()}, SQLAlchemy {_version('SQLAlchemy')}, "
        f"dbrewind {_version('dbrewind')}",
        f"- Drivers: {drivers}",
        "- Servers: " + ", ".join(f"{k} {v}" for k, v in servers.items()),
        "",
        "## Totals",
        "",
        f"- Reliability tests: {len(tests)} run, {passed} passed, {failed} failed, "
        f"{skipped} not applicable or skipped",
        f"- Load: {sum(r.tests for r in results):,} tests run, "
        f"{sum(r.rows for r in results):,} rows written, **{leaks} leaks found**",
        f"- Verdict: **{'PASS' if ok(tests, results) else 'FAIL'}**",
        "",
        "## Faults and bad input tried",
        "",
        f"One table per area (`tests/reliability/`), one row per thing tried, a column per "
        f"database: {MARKS['passed']} passed, {MARKS['failed']} failed, "
        f"{MARKS['skipped']} does not apply. A number is passed/run when it was tried "
        "several ways.",
        "",
        *render_sections(tests),
        *render_load(results, args.tests),
    ]
    return "\n".join(lines).rstrip() + "\n"


def ok(tests: list[dict[str, Any]], results: list[load.LoadResult]) -> bool:
    return all(t["outcome"] != "failed" for t in tests) and all(r.ok for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--tests", type=int, default=2000, help="tests in each load run")
    parser.add_argument("--check", action="store_true", help="exit 1 on any failure or leak")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="load runs on these")
    parser.add_argument("--workers", type=int, default=2, help="-n for the reliability suite")
    parser.add_argument("--suite", default="tests/reliability", help="the reliability tests")
    parser.add_argument("--skip-suite", action="store_true", help="only the load run")
    parser.add_argument(
        "--record",
        type=Path,
        help="take the suite's results from this record of an earlier run (one that loaded "
        "-p _reliability_record with RELIABILITY_RECORD set, as .ci/run's test run does) "
        "instead of running the suite again",
    )
    parser.add_argument("pytest_args", nargs="*", help="more arguments for the suite's pytest")
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")

    with tempfile.TemporaryDirectory(prefix="dbrewind-reliability-") as tmp:
        tests: list[dict[str, Any]] = []
        if args.record is not None:
            suite = args.suite.rstrip("/")
            every = load_record(args.record, 0)
            tests = [t for t in every if t["path"] == suite or t["path"].startswith(suite + "/")]
            if not tests:
                tests = load_record(Path(tmp) / "missing.json", 0)  # says nothing was recorded
        elif not args.skip_suite:
            record = Path(tmp) / "record.json"
            code = run_suite(record, args.suite, args.workers, args.pytest_args)
            tests = load_record(record, code)
        results = []
        for backend in backends:
            print(f"load run: {args.tests} tests on {backend} ...", flush=True)
            try:
                result = load.run(backend, args.tests, Path(tmp))
            except Exception as exc:  # reported as that database's failure; the others still run
                result = load.LoadResult(backend, error=f"{type(exc).__name__}: {exc}")
            print(
                f"  {result.tests} tests, {result.rows:,} rows, {result.leaks} leaks, "
                f"{result.seconds:.0f} s, growth {result.growth or '-'}"
                + (f"\n  {result.error}" if result.error else ""),
                flush=True,
            )
            results.append(result)
    args.output.write_text(render(tests, results, args))
    print(f"wrote {args.output}")
    verdict = ok(tests, results)
    print("PASS" if verdict else "FAIL: a reliability test failed, or a load run failed or leaked")
    return 1 if args.check and not verdict else 0


if __name__ == "__main__":
    sys.exit(main())
