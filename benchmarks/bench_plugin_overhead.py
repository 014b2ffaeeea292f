"""What installing the plugin costs a project whose tests use no database.

A generated project of 1,000 no-op tests (no conftest, no database configured)
is collected (``pytest --collect-only -q``) and run, each with the plugin
active and with ``-p no:dbrewind`` (as if it were not installed), the four
cases interleaved round by round (the order inside each pair alternates).

Then the plugin's import time. The target figure: ``import
dbrewind.pytest_plugin`` timed in a fresh interpreter after ``import pytest``
and every other installed ``pytest11`` plugin, which is what a pytest process
has loaded when it comes to dbrewind. For comparison: the same after ``import
pytest`` only (the plugin may then be the first to import pytest-asyncio), and
``python -X importtime -m pytest --co`` on a one-test project (the ``dbrewind``
modules with what they were first to import; pytest loads the entry point with
``importlib``, which ``-X importtime`` does not see, so the bodies of
``dbrewind/__init__.py`` and ``dbrewind/pytest_plugin/__init__.py`` are left out).

Targets: the plugin costs at most 5% of the collection and of the run, its
import at most 50 ms::

    python benchmarks/bench_plugin_overhead.py [--rounds 9] [--tests 1000]
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import Case, Check, base_parser, checks_table, fmt_ms, median_ms

TESTS = 1000
MODULES = 10
RATIO_TARGET = 1.05
IMPORT_TARGET_MS = 50.0
MIN_ROUNDS = 7

QUIET = ["-p", "no:randomly", "-p", "no:cacheprovider"]
NO_PLUGIN = ["-p", "no:dbrewind"]


def _env() -> dict[str, str]:
    """The caller's environment without anything that would configure a database."""
    return {k: v for k, v in os.environ.items() if k not in ("DBREWIND_URL", "PYTEST_ADDOPTS")}


def _write_project(root: Path, tests: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    per_module = tests // MODULES
    for m in range(MODULES):
        body = "".join(f"def test_{m}_{i}():\n    pass\n\n\n" for i in range(per_module))
        (root / f"test_noop_{m:02d}.py").write_text(body)


def _pytest(project: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET, *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )


def _check_output(proc: subprocess.CompletedProcess[str], what: str, expect: str) -> None:
    if proc.returncode != 0 or expect not in proc.stdout:
        raise SystemExit(
            f"{what}: expected {expect!r} and exit 0, got exit {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


def _sanity(project: Path, tests: int) -> None:
    """The plugin is really active in one case and really absent in the other."""
    on = _pytest(project, ["--co"])
    off = _pytest(project, ["--co", *NO_PLUGIN])
    _check_output(on, "collect with the plugin", f"collected {tests} items")
    _check_output(off, "collect without the plugin", f"collected {tests} items")
    if "dbrewind-" not in on.stdout:
        raise SystemExit("the plugin did not load (not in 'plugins:'):\n" + on.stdout[:3000])
    if "dbrewind: " in off.stdout or "dbrewind-" in off.stdout:
        raise SystemExit("-p no:dbrewind did not keep the plugin out:\n" + off.stdout[:3000])
    if "error" in on.stdout.lower() or "dbrewind" in on.stderr:
        raise SystemExit("the plugin reported a problem:\n" + on.stdout[:3000] + on.stderr)


def _timed(project: Path, args: Sequence[str], expect: str) -> tuple[float, float]:
    """One pytest run: (wall ms, CPU ms: user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter_ns()
    proc = _pytest(project, args)
    wall = (time.perf_counter_ns() - started) / 1e6
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    _check_output(proc, " ".join(args) or "pytest", expect)
    return wall, cpu


# ----------------------------------------------------------------- import time

_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def _dbrewind_import_us(stderr: str) -> tuple[float, float, list[str]]:
    """From ``-X importtime`` output: (everything dbrewind's imports cost, the
    self-time of ``dbrewind*`` modules alone, non-dbrewind modules they pulled in).

    The output lists each module after the modules it imported (post-order),
    indented by depth. Read backwards it is pre-order: a ``dbrewind*`` module not
    nested in another one counts with its cumulative time (itself and all it was
    first to import).
    """
    entries = []
    for line in stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            self_us, cum_us, indent, name = match.groups()
            entries.append((len(indent), name, int(self_us), int(cum_us)))
    total = own = 0.0
    pulled: list[str] = []
    stack: list[tuple[int, bool]] = []  # (depth, inside a dbrewind module)
    for depth, name, self_us, cum_us in reversed(entries):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        inside = any(flag for _d, flag in stack)
        ours = name == "dbrewind" or name.startswith("dbrewind.")
        if ours:
            own += self_us
            if not inside:
                total += cum_us
        elif inside:
            pulled.append(name)
        stack.append((depth, ours or inside))
    return total, own, pulled


def _import_in_pytest(tiny: Path) -> tuple[float, float, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest", *QUIET, "--co", "-q"],
        cwd=tiny,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    _check_output(proc, "importtime run", "1 test collected")
    total_us, own_us, pulled = _dbrewind_import_us(proc.stderr)
    if not total_us:
        raise SystemExit("no dbrewind module in the -X importtime output:\n" + proc.stderr[-3000:])
    return total_us / 1000, own_us / 1000, pulled


_FRESH = """
import sys, time
from importlib.metadata import entry_points
import pytest
if {others}:  # what a pytest process has loaded when it comes to dbrewind
    for ep in entry_points(group="pytest11"):
        if ep.name != "dbrewind":
            try:
                ep.load()
            except Exception:
                pass
t = time.perf_counter()
import dbrewind.pytest_plugin
print((time.perf_counter() - t) * 1000)
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def _import_fresh(cwd: Path, *, others: bool) -> tuple[float, set[str]]:
    """``import dbrewind.pytest_plugin`` timed in a fresh interpreter, after ``import
    pytest`` and (``others``) every other installed pytest plugin."""
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH.format(others=others)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit("import dbrewind.pytest_plugin failed:\n" + proc.stderr)
    first, modules = proc.stdout.splitlines()[:2]
    return float(first), set(modules.split())


# ---------------------------------------------------------------------- report


@dataclass
class Way:
    """One measured way of running pytest: wall and CPU samples (ms)."""

    label: str
    args: list[str]
    wall: Case = field(init=False)
    cpu: Case = field(init=False)

    def __post_init__(self) -> None:
        self.wall, self.cpu = Case(self.label), Case(self.label)


def _table(title: str, ways: Sequence[Way], reference: Way) -> str:
    lines = [
        f"**{title}**",
        "",
        f"| way | wall median ms | min ms | max ms | x {reference.label} | CPU median ms | CPU x |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for way in ways:
        ratio = way.wall.median / reference.wall.median
        cpu_ratio = way.cpu.median / reference.cpu.median
        lines.append(
            f"| {way.label} | {fmt_ms(way.wall.median)} | {fmt_ms(min(way.wall.samples))} | "
            f"{fmt_ms(max(way.wall.samples))} | {ratio:.3f} | {fmt_ms(way.cpu.median)} | "
            f"{cpu_ratio:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = base_parser(__doc__ or "", default_rounds=9)
    parser.add_argument("--tests", type=int, default=TESTS, help=f"default {TESTS}")
    args = parser.parse_args()
    rounds = 5 if args.quick else max(args.rounds, 1)
    if rounds < MIN_ROUNDS and not args.quick:
        print(f"note: {rounds} rounds; the targets assume at least {MIN_ROUNDS}", file=sys.stderr)
    tests = max(args.tests - args.tests % MODULES, MODULES)

    co_on = Way("collect, plugin active", ["--co", "-q"])
    co_off = Way("collect, -p no:dbrewind", ["--co", "-q", *NO_PLUGIN])
    run_on = Way("run, plugin active", ["-q"])
    run_off = Way("run, -p no:dbrewind", ["-q", *NO_PLUGIN])
    in_pytest: list[float] = []
    own_only: list[float] = []
    fresh: list[float] = []
    fresh_bare: list[float] = []
    pulled: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        project, tiny = Path(tmp) / "suite", Path(tmp) / "tiny"
        project.mkdir()
        tiny.mkdir()
        _write_project(project, tests)
        (tiny / "pytest.ini").write_text("[pytest]\n")
        (tiny / "test_one.py").write_text("def test_one():\n    pass\n")
        _sanity(project, tests)
        collected, passed = f"{tests} tests collected", f"{tests} passed"
        # one untimed round: warm the OS caches for both ways alike
        for way in (co_on, co_off):
            _timed(project, way.args, collected)
        for r in range(rounds):
            for pair, expect in (((co_on, co_off), collected), ((run_on, run_off), passed)):
                for way in pair if r % 2 == 0 else pair[::-1]:
                    wall, cpu = _timed(project, way.args, expect)
                    way.wall.samples.append(wall)
                    way.cpu.samples.append(cpu)
            total, own, pulled = _import_in_pytest(tiny)
            in_pytest.append(total)
            own_only.append(own)
            for others, samples in ((True, fresh), (False, fresh_bare)):
                ms, modules = _import_fresh(tiny, others=others)
                samples.append(ms)
                if "sqlalchemy" in modules:
                    raise SystemExit("import dbrewind.pytest_plugin imported SQLAlchemy")

    co_ratio = co_on.wall.median / co_off.wall.median
    run_ratio = run_on.wall.median / run_off.wall.median
    imp = median_ms(fresh)
    checks = [
        Check(
            "-", f"collect-only of {tests} tests, plugin / none", co_ratio, "<=", RATIO_TARGET, ""
        ),
        Check("-", f"run of {tests} no-op tests, plugin / none", run_ratio, "<=", RATIO_TARGET, ""),
        Check("-", "plugin import, other plugins loaded", imp, "<=", IMPORT_TARGET_MS, " ms"),
    ]
    print(f"### Plugin overhead on a project without a database ({rounds} rounds, interleaved)\n")
    print(_table(f"pytest --collect-only -q, {tests} tests", [co_on, co_off], co_off))
    print()
    print(_table(f"pytest -q, {tests} no-op tests", [run_on, run_off], run_off))
    print()
    for what, on, off in (("run", run_on, run_off), ("collection", co_on, co_off)):
        wall_us = (on.wall.median - off.wall.median) / tests * 1000
        cpu_us = (on.cpu.median - off.cpu.median) / tests * 1000
        print(f"plugin's cost per test, {what}: {wall_us:+.1f} us wall, {cpu_us:+.1f} us CPU")
    print()
    print("**plugin import**\n")
    print("| measured | median ms | min ms | max ms |")
    print("|---|---:|---:|---:|")
    for label, samples in (
        ("fresh interpreter, after import pytest and the other pytest11 plugins", fresh),
        ("fresh interpreter, after import pytest only", fresh_bare),
        ("pytest --co (-X importtime): dbrewind's imports, with what they pulled in", in_pytest),
        ("pytest --co (-X importtime): the dbrewind modules' own self-time", own_only),
    ):
        print(
            f"| {label} | {fmt_ms(median_ms(samples))} | {fmt_ms(min(samples))} | "
            f"{fmt_ms(max(samples))} |"
        )
    print()
    print(
        "imported on dbrewind's account inside pytest: "
        + (", ".join(sorted(set(pulled))) or "nothing outside dbrewind")
        + "\n"
    )
    print(checks_table(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
