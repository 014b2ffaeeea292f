"""benchmarks/report.py's pure parts: the combined JSON to markdown, the plot, the comparison."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def scale_figures(backend: str, contender: str, costs: dict[int, float], errors: int = 0) -> list:
    out: list[dict[str, Any]] = []
    for tables, cost in costs.items():
        about = {"contender": contender, "tables": tables, "fks": True}
        per_test = 5.0 + cost
        out.append({"backend": backend, "name": "per-test ms", "value": per_test, "unit": "ms"})
        out[-1].update(about)
        out.append(
            {"backend": backend, "name": "isolation cost ms", "value": cost, "unit": "ms"}
            | about
            | {"errors": errors}
        )
    return out


def machine(load: float = 0.4) -> dict[str, Any]:
    return {
        "cpus": 2,
        "cpu_model": "Test CPU",
        "ram_gb": 8.0,
        "os": "Linux",
        "python": "3.11.7",
        "servers": {"postgresql": "PostgreSQL 15.20 on x86_64", "mysql": "10.11.19-MariaDB"},
        "load_average": load,
        "load_average_end": load + 0.1,
        "date": "2026-12-03T18:00:00Z",
        "commit": "0123456789abcdef",
        "uncommitted_changes": False,
    }


def a_run(*, quick: bool = False, dbrewind_cost: float = 1.0, load: float = 0.4) -> dict[str, Any]:
    figures = (
        scale_figures("postgresql", "dbrewind", {10: dbrewind_cost, 100: dbrewind_cost})
        + scale_figures("postgresql", "TRUNCATE all", {10: 10.0, 100: 100.0})
        + scale_figures("postgresql", "pytest-clean-database", {10: 3.0, 100: 3.0}, errors=12)
        + scale_figures("postgresql", "no isolation", {10: 0.0, 100: 0.0})
    )
    scale_data = {
        "tests": 200,
        "rounds": 3,
        "backends": {
            "postgresql": {
                "schemas": [
                    {"tables": n, "fks": True, "resolution_ms": 0.05, "cases": {}}
                    for n in (10, 100)
                ]
            }
        },
    }
    return {
        "command": "python benchmarks/report.py" + (" --quick" if quick else ""),
        "quick": quick,
        "seconds": 120.0,
        "machine": machine(load),
        "benchmarks": {
            "scale": {
                "machine": machine(load),
                "figures": figures,
                "checks": [
                    {
                        "backend": "postgresql",
                        "what": "TRUNCATE all / dbrewind, 100, FK (lower bound 90x)",
                        "value": 100.0 / dbrewind_cost,
                        "op": ">=",
                        "limit": 50.0,
                        "unit": "x",
                        "passed": 100.0 / dbrewind_cost >= 50.0,
                    }
                ],
                "cases": [],
                "data": {"scale": scale_data},
                "exit_code": 0,
            },
            "rewind": {
                "machine": machine(load),
                "figures": [
                    {
                        "backend": "postgresql",
                        "name": "tracking overhead, multi-row INSERT",
                        "value": 12.5,
                        "unit": "%",
                    },
                    {
                        "backend": "postgresql",
                        "name": "tracking overhead, executemany",
                        "value": 31.0,
                        "unit": "%",
                    },
                ],
                "checks": [
                    {
                        "backend": "postgresql",
                        "what": "tracking overhead, executemany",
                        "value": 31.0,
                        "op": "<=",
                        "limit": 15.0,
                        "unit": "%",
                        "passed": False,
                    }
                ],
                "cases": [
                    {
                        "backend": "postgresql",
                        "title": "Reset after a test",
                        "reference": "BEGIN; ROLLBACK",
                        "cases": [
                            {"label": "dbrewind rewind (auto)", "median_ms": 0.8, "samples_ms": []},
                            {"label": "BEGIN; ROLLBACK", "median_ms": 0.2, "samples_ms": []},
                        ],
                    }
                ],
                "exit_code": 1,
            },
            "lifecycle": {
                "machine": machine(load),
                "figures": [
                    {
                        "backend": "postgresql",
                        "name": "session start",
                        "value": v,
                        "unit": "ms",
                        "start": s,
                    }
                    for s, v in (("cold", 2247.0), ("warm", 32.0))
                ],
                "checks": [],
                "exit_code": 0,
            },
        },
    }


def test_markdown_has_each_contenders_cost_and_its_ratio_to_dbrewinds(report: ModuleType) -> None:
    text = report.render_markdown(a_run(), "per_test_cost.png")
    assert "| contender | 10 tables | 100 tables |" in text
    assert "| dbrewind | 1.000 | 1.000 |" in text
    assert "| TRUNCATE all (SQLite: DELETE) | 10.0 (10.0x) | 100 (100x) |" in text
    assert "3.000 (3.0x), **12 tests failed**" in text
    assert "| no isolation | 0 (floor) | 0 (floor) |" in text
    assert "![per-test cost against the number of tables](per_test_cost.png)" in text


def test_markdown_gives_no_ratio_when_dbrewinds_cost_is_within_the_noise(
    report: ModuleType,
) -> None:
    text = report.render_markdown(a_run(dbrewind_cost=0.02))
    assert "| TRUNCATE all (SQLite: DELETE) | 10.0 | 100 |" in text


def test_markdown_states_every_goal_met_or_not_met(report: ModuleType) -> None:
    text = report.render_markdown(a_run())
    assert "1 of 2 met" in text
    assert "| `bench_scale` | PostgreSQL | TRUNCATE all / dbrewind, 100, FK" in text
    assert "| 100.00x | >= 50x | met |" in text
    assert "| 31.00% | <= 15% | **not met** |" in text


def test_markdown_has_tracking_overhead_startup_machine_and_command(report: ModuleType) -> None:
    text = report.render_markdown(a_run())
    assert "| multi-row INSERT of 2,000 rows | +12.5% |" in text
    assert "| executemany of 2,000 rows | +31.0% |" in text
    assert "| cold run | 2,247 |" in text
    assert "| warm run | 32.0 |" in text
    assert "2 CPUs (Test CPU), 8.0 GB RAM" in text
    assert "a quiet machine." in text
    assert "Generated by `python benchmarks/report.py` on 2026-12-03" in text
    assert "commit `0123456789`" in text
    assert "| dbrewind rewind (auto) | 0.800 | 4.00 |" in text
    assert "quick smoke run" not in text


def test_markdown_says_a_quick_run_and_a_busy_machine(report: ModuleType) -> None:
    text = report.render_markdown(a_run(quick=True, load=2.5))
    assert "A quick smoke run (`--quick`)" in text
    assert "**not a quiet machine**" in text


def test_outputs_are_written_together_and_agree(report: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = a_run()
    md, raw, png = report.write_outputs(run, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(raw.read_text()) == json.loads(json.dumps(run))
    assert md.read_text() == report.render_markdown(run, "per_test_cost.png", "benchmarks.json")


def test_no_plot_without_scale_figures(report: ModuleType, tmp_path: Path) -> None:
    run = a_run()
    del run["benchmarks"]["scale"]
    assert not report.plot(run, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()
    assert "![" not in report.render_markdown(run)


def test_a_benchmark_that_broke_is_a_goal_not_met(report: ModuleType) -> None:
    run = a_run()
    run["benchmarks"]["lifecycle"]["broke"] = "OperationalError: (1010, 'Error dropping')"
    text = report.render_markdown(run)
    assert "1 of 3 met" in text
    assert "| `bench_lifecycle` | - | the benchmark ran to its end | - | - | **not met** |" in text
    assert "`bench_lifecycle` exited 0 (OperationalError: (1010, 'Error dropping'))" in text


def test_compare_shows_what_moved(report: ModuleType) -> None:
    table = report.compare(a_run(dbrewind_cost=1.0), a_run(dbrewind_cost=2.0), threshold=1.0)
    row = (
        "| scale, postgresql: isolation cost ms (contender=dbrewind, tables=10, fks=True) "
        "| 1.000 ms | 2.000 ms | +100.0% |"
    )
    assert row in table
    assert "contender=TRUNCATE all" not in table  # unchanged: under the threshold
    assert (
        "| scale, postgresql: target TRUNCATE all / dbrewind, 100, FK | 100 x | 50.0 x | -50.0% |"
        in table
    )
