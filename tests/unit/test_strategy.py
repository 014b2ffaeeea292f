"""One set of strategy names: the README, the terminal summary and ``bench --json`` agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dbrewind import Strategy
from dbrewind.cli._bench import bench_report
from dbrewind.pytest_plugin import report

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
NAMES = {strategy.value for strategy in Strategy}


def _readme_table_names() -> set[str]:
    """The bold names of the README's strategy table ("How it isolates a test")."""
    section = README.split("## How it isolates a test", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| \*\*([^*]+)\*\*", section, flags=re.MULTILINE))


def _readme_summary_names() -> set[str]:
    """The strategy names in the README's terminal summary example."""
    line = re.search(r"^strategies: (.*?);", README, flags=re.MULTILINE)
    assert line is not None, "the README shows no terminal summary"
    return {re.sub(r" \d+$", "", part) for part in line.group(1).split(", ")}


def test_readme_names_every_strategy_as_the_enum_does() -> None:
    assert _readme_table_names() == NAMES
    assert _readme_summary_names() == NAMES


def test_summary_names_each_strategy_by_its_value_in_the_enums_order() -> None:
    stats = report.Stats()
    for n, strategy in enumerate([*Strategy, Strategy.ROLLBACK]):
        stats.add(report.TestRecord(f"t{n}", strategy))
    first = stats.lines()[0]
    assert first.startswith("strategies: rollback 2, clean 1, safety net 1; isolating took")
    assert _summary_names(first) == NAMES


def test_summary_round_trips_through_the_xdist_json() -> None:
    stats = report.Stats()
    stats.add(report.TestRecord("a", Strategy.CLEAN, 0.5, ("users",)))
    data = stats.to_json()
    # execnet (xdist's channel) carries only builtin types, a str subclass not
    assert type(data["tests"][0][1]) is str
    merged = report.Stats()
    merged.merge_json(json.loads(json.dumps(data)))
    assert merged.tests == stats.tests
    assert merged.tests[0].strategy is Strategy.CLEAN


def test_summary_without_tests_names_no_strategy() -> None:
    stats = report.Stats()
    stats.prepare_seconds = 0.25
    assert stats.lines()[0].startswith("isolating took 0 ms in all, preparing 250 ms")


def test_bench_json_keys_are_the_strategies() -> None:
    said = json.loads(json.dumps(bench_report(0.1, 0.2, {"users": 0.3}, 0.4, rounds=3)))
    assert set(said["strategies"]) == NAMES
    assert said["recommendation"] in NAMES


def _summary_names(line: str) -> set[str]:
    counted = line.removeprefix("strategies: ").split(";", 1)[0]
    return {re.sub(r" \d+$", "", part) for part in counted.split(", ")}
