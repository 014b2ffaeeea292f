"""BENCHMARKS.md, its plot and its raw figures: the benchmarks run one after another.

Run::

    .venv/bin/python benchmarks/report.py                 # everything; writes the three files
    .venv/bin/python benchmarks/report.py --quick         # a smoke run of minutes, into /tmp
    .venv/bin/python benchmarks/report.py --benchmarks scale,rewind --backends postgresql
    .venv/bin/python benchmarks/report.py --from-json benchmarks/benchmarks.json   # render only
    .venv/bin/python benchmarks/report.py --compare OLD.json [NEW.json]            # what moved

Each benchmark (``bench_<name>.py``) runs in a subprocess of its own with ``--json``
(``_common``'s sink); its progress goes to stderr as it runs, its markdown is kept.
From their JSON this writes:

* ``BENCHMARKS.md`` (the repository's top level): per database and number of tables,
  each contender's per-test isolation cost and its ratio to dbrewind's
  (``bench_scale``); the tracking overhead (``bench_rewind``); the session start-up,
  cold and warm (``bench_lifecycle``); the xdist speed-up (``bench_xdist``); every
  target of the benchmarks' check lists, met or not met; the other benchmarks'
  tables; the machine, the command, the date and the commit;
* ``benchmarks/benchmarks.json``: everything the benchmarks recorded, for scripts
  and for ``--compare``;
* ``benchmarks/per_test_cost.png``: per-test cost against the number of tables, log
  scales, one line per contender, one panel per database (matplotlib, the ``bench``
  extra).

``--out DIR`` writes the three files into ``DIR`` instead; ``--quick`` always does
(``/tmp/dbrewind-bench-report`` by default), so a smoke run's figures never land
where the real ones are kept. The file says when it comes from a quick run, and
whether the machine was quiet (load average below 1.5 when the run started).

The pure parts (``render_markdown``, ``plot``, ``compare``) take the combined JSON
and touch no database.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ALL_BACKENDS = ("postgresql", "mysql", "sqlite")
BACKEND_NAMES = {"postgresql": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite (file)"}
QUIET_LOAD = 1.5
QUICK_OUT = Path(tempfile.gettempdir()) / "dbrewind-bench-report"


@dataclass(frozen=True)
class Benchmark:
    name: str
    what: str
    backends: tuple[str, ...]
    quick: tuple[str, ...]
    """its options for a smoke run"""


BENCHMARKS = (
    Benchmark(
        "scale",
        "per-test isolation cost at 10, 100 and 500 tables, every contender, through pytest",
        ALL_BACKENDS,
        ("--rounds", "1", "--tests", "24", "--budget", "1", "--tables", "10,100"),
    ),
    Benchmark("rewind", "the rewind and the tracking overhead", ALL_BACKENDS, ("--quick",)),
    Benchmark("fixtures", "the sandbox fixtures per test", ALL_BACKENDS, ("--quick",)),
    Benchmark(
        "lifecycle", "session start-up, cold and warm; the lease", ALL_BACKENDS, ("--quick",)
    ),
    Benchmark("xdist", "a 200-test suite, -n 2 against -n 0", ALL_BACKENDS, ("--quick",)),
    Benchmark("clone", "a cold per-worker clone", ("postgresql", "mysql"), ("--quick",)),
    Benchmark(
        "clean_check", "the check after a test that wrote nothing", ALL_BACKENDS, ("--rounds", "30")
    ),
)
BY_NAME = {b.name: b for b in BENCHMARKS}

# bench_scale's contenders, in the order the tables and the plot show them
DBREWIND = "dbrewind"
FLOOR = "no isolation"
SCALE_ORDER = (
    DBREWIND,
    "TRUNCATE all",
    "pytest-clean-database",
    "seed-004 recipe",
    "database per test",
    "BEGIN; ROLLBACK",
    FLOOR,
)
SCALE_NOTES = {
    "TRUNCATE all": "TRUNCATE all (SQLite: DELETE)",
    "database per test": "a database per test, cloned from a template",
}


# ------------------------------------------------------------------ running them


def run_benchmark(
    bench: Benchmark, backends: Sequence[str], rounds: int | None, quick: bool, tmp: Path
) -> dict[str, Any]:
    """Run one benchmark in a subprocess; its sink's record, with its exit code, time and
    markdown (or, when it broke before writing one, what is known)."""
    chosen = [b for b in backends if b in bench.backends]
    out = tmp / f"{bench.name}.json"
    command = [sys.executable, str(HERE / f"bench_{bench.name}.py"), "--backends", ",".join(chosen)]
    if quick:
        command += bench.quick
    elif rounds is not None:
        command += ["--rounds", str(rounds)]
    command += ["--json", str(out)]
    shown = shlex.join(["python", f"benchmarks/bench_{bench.name}.py", *command[2:-2]])
    print(f"\n== {shown}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    record: dict[str, Any] = {"benchmark": f"bench_{bench.name}", "checks": []}
    if out.exists():
        record = json.loads(out.read_text())
    if "error" in record or not out.exists():  # an uncaught exception also exits 1
        record["broke"] = record.get("error") or f"no figures written (exit {done.returncode})"
    record.update(
        exit_code=done.returncode,
        wall_seconds=seconds,
        markdown=done.stdout,
        command_line=shown,
        what=bench.what,
    )
    status = {0: "every target met", 1: "a target not met"}.get(
        done.returncode, f"broke (exit {done.returncode})"
    )
    if "broke" in record:
        status = f"broke: {record['broke']}"
    print(f"== bench_{bench.name}: {seconds / 60:.1f} min, {status}", file=sys.stderr, flush=True)
    return record


def machine_now() -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from _common import machine

    return machine()


# -------------------------------------------------------------- the markdown


def fmt(value: float | None, unit: str = "") -> str:
    """Three significant figures or so, as the benchmarks print them."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}" if unit in ("", " ms", "ms") else f"{value:.2f}"
    return text + unit


def figures(run: dict[str, Any], benchmark: str, name: str) -> list[dict[str, Any]]:
    record = run["benchmarks"].get(benchmark) or {}
    return [f for f in record.get("figures", []) if f["name"] == name]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cost_ratio(
    cost: dict[str, Any] | None, ours: dict[str, Any] | None, noise: float
) -> float | None:
    """A contender's isolation cost over dbrewind's, when both are above the noise."""
    if not cost or not ours or cost["value"] is None or ours["value"] is None:
        return None
    if cost["value"] <= noise or ours["value"] <= noise:
        return None
    return float(cost["value"] / ours["value"])


def scale_section(run: dict[str, Any]) -> str:
    costs = figures(run, "scale", "isolation cost ms")
    per_test = figures(run, "scale", "per-test ms")
    if not per_test:
        return ""
    index = {(f["backend"], f["contender"], f["tables"], f["fks"]): f for f in costs}
    plain = {(f["backend"], f["contender"], f["tables"], f["fks"]): f for f in per_test}
    sizes = sorted({f["tables"] for f in per_test})
    backends = [b for b in ALL_BACKENDS if any(f["backend"] == b for f in per_test)]
    scale = run["benchmarks"]["scale"]
    raw = scale.get("data", {}).get("scale", {})
    resolution = {
        (backend, entry["tables"], entry["fks"]): entry.get("resolution_ms", 0.01)
        for backend, fig in raw.get("backends", {}).items()
        for entry in fig.get("schemas", [])
    }
    parts = [
        "## Per-test isolation cost, through pytest (`bench_scale.py`)",
        "",
        f"{raw.get('tests', '?')} tests, each committing 10 rows into 2 tables of a generated "
        f"schema (with foreign keys, and without), {raw.get('rounds', '?')} round(s), "
        "contenders interleaved round by round. A test's figure is its whole protocol "
        "(set-up, call, tear-down), the median test of a run; the **isolation cost** is "
        "that minus the same round's run with no isolation at all (the floor, in the "
        "contender's own virtualenv), the median over the rounds. `x dbrewind`: the "
        "contender's cost over dbrewind's (none where either is within the noise: "
        "half the floor's spread over the rounds, at least 0.01 ms). A contender whose "
        "tests failed shows how many.",
    ]
    for backend in backends:
        for fks in (True, False):
            rows = []
            for contender in SCALE_ORDER:
                cells = []
                for n in sizes:
                    cost = index.get((backend, contender, n, fks))
                    if cost is None:
                        cells.append("-")
                        continue
                    ours = index.get((backend, DBREWIND, n, fks))
                    cell = "0 (floor)" if contender == FLOOR else fmt(cost["value"])
                    ratio = cost_ratio(cost, ours, resolution.get((backend, n, fks), 0.01))
                    if contender not in (DBREWIND, FLOOR) and ratio is not None:
                        cell += f" ({ratio:,.1f}x)" if ratio < 100 else f" ({ratio:,.0f}x)"
                    if cost.get("errors"):
                        cell += f", **{cost['errors']} tests failed**"
                    cells.append(cell)
                if any(c != "-" for c in cells):
                    rows.append([SCALE_NOTES.get(contender, contender), *cells])
            if not rows:
                continue
            schema = "with foreign keys" if fks else "without foreign keys"
            parts += [
                "",
                f"**{BACKEND_NAMES.get(backend, backend)}, {schema}: isolation cost per test, "
                "ms (x dbrewind)**",
                "",
                table(["contender", *(f"{n} tables" for n in sizes)], rows),
            ]
        rows = []
        for contender in SCALE_ORDER:
            cells = [
                fmt(plain[(backend, contender, n, True)]["value"])
                if (backend, contender, n, True) in plain
                else "-"
                for n in sizes
            ]
            if any(c != "-" for c in cells):
                rows.append([SCALE_NOTES.get(contender, contender), *cells])
        parts += [
            "",
            f"{BACKEND_NAMES.get(backend, backend)}, with foreign keys, the whole per-test "
            "figure (ms): "
            + "; ".join(f"{r[0]} {' / '.join(r[1:])}" for r in rows)
            + f" ({' / '.join(str(n) for n in sizes)} tables).",
        ]
    return "\n".join(parts)


def tracking_section(run: dict[str, Any]) -> str:
    found = figures(run, "rewind", "tracking overhead, multi-row INSERT") + figures(
        run, "rewind", "tracking overhead, executemany"
    )
    if not found:
        return ""
    backends = [b for b in ALL_BACKENDS if any(f["backend"] == b for f in found)]
    rows = []
    for name in ("tracking overhead, multi-row INSERT", "tracking overhead, executemany"):
        cells = {f["backend"]: f for f in found if f["name"] == name}
        label = name.replace("tracking overhead, ", "") + " of 2,000 rows"
        rows.append(
            [label, *(f"{cells[b]['value']:+.1f}%" if b in cells else "-" for b in backends)]
        )
    return "\n".join(
        [
            "## Tracking overhead (`bench_rewind.py`)",
            "",
            "What dbrewind's tracking triggers add to inserting 2,000 rows in one committed "
            "transaction, against the same table untracked (medians).",
            "",
            table(["", *(BACKEND_NAMES.get(b, b) for b in backends)], rows),
        ]
    )


def lifecycle_section(run: dict[str, Any]) -> str:
    found = figures(run, "lifecycle", "session start")
    if not found:
        return ""
    backends = [b for b in ALL_BACKENDS if any(f["backend"] == b for f in found)]
    starts = list(dict.fromkeys(f["start"] for f in found))
    rows = []
    for start in starts:
        cells = {f["backend"]: f["value"] for f in found if f["start"] == start}
        rows.append([f"{start} run" if start in ("cold", "warm") else start])
        rows[-1] += [fmt(cells.get(b)) for b in backends]
    lease = {
        f["backend"]: f["value"] for f in figures(run, "lifecycle", "lease, acquire + release")
    }
    if lease:
        rows.append(["the lease: acquire + release", *(fmt(lease.get(b)) for b in backends)])
    return "\n".join(
        [
            "## Session start-up, cold and warm (`bench_lifecycle.py`)",
            "",
            "The plugin's `preparing` figure, ms, of real pytest runs of a suite whose setup "
            "takes 2 s: cold (the template built, the clone made), warm (both reused), and a "
            "second run started while a first holds the database.",
            "",
            table(["ms", *(BACKEND_NAMES.get(b, b) for b in backends)], rows),
        ]
    )


def xdist_section(run: dict[str, Any]) -> str:
    walls = figures(run, "xdist", "wall s")
    speeds = figures(run, "xdist", "speed-up")
    if not walls:
        return ""
    backends = [b for b in ALL_BACKENDS if any(f["backend"] == b for f in walls)]
    keys = list(dict.fromkeys((f["suite"], f["mode"]) for f in walls))
    rows = []
    for suite, mode in keys:
        row = [f"{suite}, `{mode}`: wall s (speed-up)"]
        for b in backends:
            wall = next(
                (f for f in walls if (f["backend"], f["suite"], f["mode"]) == (b, suite, mode)),
                None,
            )
            speed = next(
                (f for f in speeds if (f["backend"], f["suite"], f["mode"]) == (b, suite, mode)),
                None,
            )
            row.append(
                "-"
                if wall is None
                else f"{wall['value']:.2f} ({speed['value'] if speed else float('nan'):.2f}x)"
            )
        rows.append(row)
    return "\n".join(
        [
            "## pytest-xdist (`bench_xdist.py`)",
            "",
            "The same 200-test suite under dbrewind and under hand-written per-worker "
            "databases (the seed-004 recipe), warm runs; speed-up: the suite's own `-n 0` "
            "wall time over this one.",
            "",
            table(["", *(BACKEND_NAMES.get(b, b) for b in backends)], rows),
        ]
    )


def goals_section(run: dict[str, Any]) -> str:
    rows = []
    met = total = 0
    for name, record in run["benchmarks"].items():
        for check in record.get("checks", []):
            total += 1
            met += bool(check["passed"])
            unit = check["unit"]
            rows.append(
                [
                    f"`bench_{name}`",
                    BACKEND_NAMES.get(check["backend"], check["backend"]),
                    check["what"].replace("|", "/"),
                    f"{check['value']:.2f}{unit}",
                    f"{check['op']} {check['limit']:g}{unit}",
                    "met" if check["passed"] else "**not met**",
                ]
            )
        if "broke" in record or record.get("exit_code") not in (0, 1, None):
            rows.append(
                [f"`bench_{name}`", "-", "the benchmark ran to its end", "-", "-", "**not met**"]
            )
            total += 1
    return "\n".join(
        [
            "## Goals",
            "",
            f"The targets of the speed issue, as the benchmarks check them: {met} of {total} met.",
            "",
            table(["benchmark", "database", "goal", "measured", "target", "met?"], rows, 3),
        ]
    )


def cases_sections(run: dict[str, Any]) -> str:
    """Every table of cases the other benchmarks recorded, as they printed it."""
    parts = []
    for name, record in run["benchmarks"].items():
        groups = record.get("cases", [])
        fixtures = figures(run, name, "per-test ms") if name == "fixtures" else []
        if not groups and not fixtures:
            continue
        parts += [f"### `bench_{name}.py`: {record.get('what', '')}"]
        for group in groups:
            reference = next((c for c in group["cases"] if c["label"] == group["reference"]), None)
            rows = []
            for case in group["cases"]:
                ratio = "-"
                if reference and reference["median_ms"] and case["median_ms"] is not None:
                    ratio = f"{case['median_ms'] / reference['median_ms']:.2f}"
                rows.append([case["label"], fmt(case["median_ms"]), ratio])
            backend = BACKEND_NAMES.get(group["backend"], group["backend"])
            title = (
                group["title"]
                if group["title"].startswith(group["backend"])
                else f"{backend}: {group['title']}"
            )
            parts += [
                "",
                f"**{title}**",
                "",
                table(["way", "median ms", f"x {group['reference']}"], rows),
            ]
        if fixtures:
            kinds = list(dict.fromkeys(f["kind"] for f in fixtures))
            backends = [b for b in ALL_BACKENDS if any(f["backend"] == b for f in fixtures)]
            rows = []
            for kind in kinds:
                row = [kind.replace("_", " ")]
                for b in backends:
                    got = {
                        f["contender"]: f["value"]
                        for f in fixtures
                        if (f["backend"], f["kind"]) == (b, kind)
                    }
                    ours, recipe = got.get("dbrewind"), got.get("recipe")
                    ratio = f" ({ours / recipe:.2f}x)" if ours and recipe else ""
                    row.append(f"{fmt(ours)} / {fmt(recipe)}{ratio}")
                rows.append(row)
            parts += [
                "",
                "**ms per test, dbrewind / the seed-004 recipe (x)**",
                "",
                table(["", *(BACKEND_NAMES.get(b, b) for b in backends)], rows),
            ]
        parts.append("")
    return "\n".join(["## The other benchmarks", "", *parts]) if parts else ""


def machine_section(run: dict[str, Any]) -> str:
    m = run["machine"]
    servers = "; ".join(
        f"{BACKEND_NAMES.get(b, b)}: {v.split(' on ')[0]}" for b, v in m.get("servers", {}).items()
    )
    load_start, load_end = m.get("load_average"), m.get("load_average_end")
    quiet = load_start is not None and load_start < QUIET_LOAD
    loads = [
        f"`bench_{n}` {r['machine']['load_average']:.2f} -> "
        f"{r['machine'].get('load_average_end') or float('nan'):.2f}"
        for n, r in run["benchmarks"].items()
        if "machine" in r
    ]
    return "\n".join(
        [
            "## The machine",
            "",
            f"- {m.get('cpus')} CPUs ({m.get('cpu_model')}), {m.get('ram_gb')} GB RAM, "
            f"{m.get('os')}",
            f"- Python {m.get('python')}; {servers}; all on loopback",
            f"- load average (1 min) at the start {load_start:.2f}, at the end "
            f"{load_end or float('nan'):.2f}: "
            + (
                "a quiet machine."
                if quiet
                else f"**not a quiet machine** (at least {QUIET_LOAD} at the start): other work "
                "ran beside the benchmarks, and their absolute times are higher than on a quiet "
                "one; ratios taken round by round hold better."
            ),
            "- each benchmark's load average, start -> end: " + ", ".join(loads),
        ]
    )


def render_markdown(
    run: dict[str, Any], plot_link: str | None = None, raw_link: str = "benchmarks/benchmarks.json"
) -> str:
    """BENCHMARKS.md from the combined JSON (``run``); ``plot_link``, ``raw_link``: the PNG
    and the JSON, relative to it."""
    m = run["machine"]
    commit = (m.get("commit") or "?")[:10] + (
        " (with uncommitted changes)" if m.get("uncommitted_changes") else ""
    )
    head = [
        "# Benchmarks",
        "",
        "<!-- generated by benchmarks/report.py; do not edit by hand: run it again -->",
        "",
        f"Generated by `{run['command']}` on {m.get('date', '?')[:10]} "
        f"({m.get('date', '?')}), commit `{commit}`, in {run.get('seconds', 0) / 60:.0f} min. "
        f"The raw figures are in `{raw_link}`; "
        "`python benchmarks/report.py --compare OLD.json` shows what moved.",
    ]
    if run.get("quick"):
        head += [
            "",
            "**A quick smoke run (`--quick`): few rounds and tests, rough figures. These are "
            "not the project's measurements.**",
        ]
    sections = [
        "\n".join(head),
        goals_section(run),
        scale_section(run),
        f"![per-test cost against the number of tables]({plot_link})" if plot_link else "",
        tracking_section(run),
        lifecycle_section(run),
        xdist_section(run),
        cases_sections(run),
        machine_section(run),
    ]
    broken = [
        f"- `bench_{n}` exited {r.get('exit_code')} ({r.get('broke', 'see its output')}); "
        "its figures are missing or partial."
        for n, r in run["benchmarks"].items()
        if "broke" in r or r.get("exit_code") not in (0, 1, None)
    ]
    if broken:
        sections.append("## Benchmarks that broke\n\n" + "\n".join(broken))
    return "\n\n".join(s for s in sections if s).rstrip() + "\n"


# ------------------------------------------------------------------- the plot


def plot(run: dict[str, Any], path: Path) -> bool:
    """Per-test cost against the number of tables, log scales, one line per contender
    (with foreign keys solid, without dashed), one panel per database. False when
    bench_scale has no figures."""
    per_test = figures(run, "scale", "per-test ms")
    costs = {
        (f["backend"], f["contender"], f["tables"], f["fks"]): f
        for f in figures(run, "scale", "isolation cost ms")
    }
    if not per_test:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = [b for b in ALL_BACKENDS if any(f["backend"] == b for f in per_test)]
    fig, axes = plt.subplots(1, len(backends), figsize=(5.2 * len(backends), 4.6), squeeze=False)
    colours = dict(
        zip(SCALE_ORDER, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False)
    )
    for ax, backend in zip(axes[0], backends, strict=True):
        for contender in SCALE_ORDER:
            for fks in (True, False):
                points = sorted(
                    (f["tables"], f["value"])
                    for f in per_test
                    if (f["backend"], f["contender"], f["fks"]) == (backend, contender, fks)
                    and f["value"]
                    and f["value"] > 0
                )
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                failed = [
                    (x, y)
                    for x, y in points
                    if costs.get((backend, contender, x, fks), {}).get("errors")
                ]
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    linestyle="-" if fks else "--",
                    color=colours.get(contender),
                    label=contender if fks else None,
                    linewidth=2.2 if contender == DBREWIND else 1.4,
                )
                if failed:
                    fx, fy = zip(*failed, strict=True)
                    ax.plot(fx, fy, "x", color="black", markersize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(BACKEND_NAMES.get(backend, backend))
        ax.set_xlabel("tables in the schema")
        sizes = sorted({f["tables"] for f in per_test})
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("ms per test (set-up + call + tear-down)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(
        "per-test cost, 10 rows committed into 2 tables (solid: with foreign keys, dashed: "
        "without; x: tests failed)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- comparing runs


def _keyed(run: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """Every figure, case median and check of a run by a readable key."""
    out: dict[str, tuple[float, str]] = {}
    for name, record in run.get("benchmarks", {}).items():
        for f in record.get("figures", []):
            about = ", ".join(
                f"{k}={v}"
                for k, v in f.items()
                if k not in ("backend", "name", "value", "unit", "errors")
            )
            if f["value"] is not None:
                key = f"{name}, {f['backend']}: {f['name']}" + (f" ({about})" if about else "")
                out[key] = (f["value"], f["unit"])
        for group in record.get("cases", []):
            for case in group["cases"]:
                if case["median_ms"] is not None:
                    key = f"{name}, {group['backend']}: {group['title']}: {case['label']}"
                    out[key] = (case["median_ms"], " ms")
        for check in record.get("checks", []):
            what = check["what"].split(" (")[0]
            out[f"{name}, {check['backend']}: target {what}"] = (check["value"], check["unit"])
    return out


def compare(old: dict[str, Any], new: dict[str, Any], threshold: float = 0.0) -> str:
    """A markdown table of what moved between two runs: old, new, change."""
    a, b = _keyed(old), _keyed(new)
    rows = []
    for key in sorted(a.keys() & b.keys()):
        (va, unit), (vb, _) = a[key], b[key]
        change = (vb - va) / abs(va) * 100 if va else float("inf") if vb else 0.0
        if abs(change) >= threshold:
            cells = [f"{fmt(v)} {unit.strip()}".rstrip() for v in (va, vb)]
            rows.append([key.replace("|", "/"), *cells, f"{change:+.1f}%"])
    said = [
        f"{which}: {(r.get('machine', {}).get('commit') or '?')[:10]} "
        f"{r.get('machine', {}).get('date', '')}"
        for which, r in (("old", old), ("new", new))
    ]
    lines = [
        "; ".join(said),
        "",
        table(["figure", "old", "new", "change"], rows),
    ]
    only = sorted(a.keys() ^ b.keys())
    if only:
        lines += ["", f"{len(only)} figure(s) in one run only, e.g. {only[0]}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------- the command


def write_outputs(run: dict[str, Any], out: Path | None) -> tuple[Path, Path, Path]:
    """BENCHMARKS.md, benchmarks.json and per_test_cost.png, where they belong."""
    if out is None:
        md, raw, png = REPO / "BENCHMARKS.md", HERE / "benchmarks.json", HERE / "per_test_cost.png"
    else:
        md, raw, png = out / "BENCHMARKS.md", out / "benchmarks.json", out / "per_test_cost.png"
    md.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(run, indent=1, default=str) + "\n")
    link = os.path.relpath(png, md.parent) if plot(run, png) else None
    md.write_text(render_markdown(run, link, os.path.relpath(raw, md.parent)))
    return md, raw, png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--benchmarks",
        default=",".join(b.name for b in BENCHMARKS),
        help=f"comma-separated, from {', '.join(BY_NAME)} (default: all, in that order)",
    )
    parser.add_argument("--backends", default=",".join(ALL_BACKENDS), help="(default: all)")
    parser.add_argument("--rounds", type=int, help="every benchmark's --rounds (default: theirs)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of minutes, into --out")
    parser.add_argument(
        "--out", type=Path, help=f"write the three files here (--quick: {QUICK_OUT})"
    )
    parser.add_argument("--from-json", type=Path, help="run nothing: render this benchmarks.json")
    parser.add_argument(
        "--compare", nargs="+", type=Path, metavar="JSON", help="OLD [NEW]: print what moved"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.0, help="--compare: only |change| >= this %%"
    )
    args = parser.parse_args(argv)
    if args.compare and len(args.compare) == 2:
        old, new = (json.loads(p.read_text()) for p in args.compare)
        print(compare(old, new, args.threshold))
        return 0
    if args.from_json:
        run = json.loads(args.from_json.read_text())
        for path in write_outputs(run, args.out or args.from_json.parent):
            print(path)
        return 0
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [n for n in names if n not in BY_NAME] + [
        b for b in backends if b not in ALL_BACKENDS
    ]
    if unknown:
        raise SystemExit(f"unknown: {', '.join(unknown)}; benchmarks: {', '.join(BY_NAME)}")
    out = args.out or (QUICK_OUT if args.quick else None)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/report.py", *given])
    started = time.perf_counter()
    run: dict[str, Any] = {
        "generator": "benchmarks/report.py",
        "command": command,
        "quick": args.quick,
        "machine": machine_now(),
        "benchmarks": {},
    }
    print(
        f"load average {run['machine']['load_average']:.2f} ({run['machine']['cpus']} CPUs)",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="dbrewind_bench_report_") as tmp:
        for name in names:
            run["benchmarks"][name] = run_benchmark(
                BY_NAME[name], backends, args.rounds, args.quick, Path(tmp)
            )
    run["machine"]["load_average_end"] = os.getloadavg()[0]
    run["seconds"] = time.perf_counter() - started
    md, raw, png = write_outputs(run, out)
    print(f"\nwrote {md}, {raw}" + (f", {png}" if png.exists() else ""), file=sys.stderr)
    print(goals_section(run))
    if args.compare:
        print("\n" + compare(json.loads(args.compare[0].read_text()), run, args.threshold))
    return 0 if all(r.get("exit_code") == 0 for r in run["benchmarks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
