"""What isolating the tests cost, for the terminal summary (merged across xdist workers)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .._strategy import Strategy

__all__ = ["Stats", "TestRecord"]


@dataclass
class TestRecord:
    """What isolating one test cost."""

    nodeid: str
    strategy: Strategy
    seconds: float = 0.0
    tables: tuple[str, ...] = ()
    forced: bool = False
    """Cleaned because the application's async engine committed for real in a sync test
    (``dbrewind_engines``), not because the test asked for real commits."""


@dataclass
class Stats:
    """Counts and timings for the terminal summary (merged across xdist workers)."""

    tests: list[TestRecord] = field(default_factory=list)
    prepare_seconds: float = 0.0
    templates_built: int = 0
    templates_reused: int = 0
    notes: list[str] = field(default_factory=list)
    """What the lifecycle did that the user should hear of (its own clone, a reinstall)."""

    def add(self, record: TestRecord) -> None:
        self.tests.append(record)

    def note(self, text: str) -> None:
        """Add a line for the summary (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            # plain str: execnet, which carries this from xdist workers, refuses an enum
            "tests": [
                [t.nodeid, t.strategy.value, t.seconds, list(t.tables), t.forced]
                for t in self.tests
            ],
            "prepare_seconds": self.prepare_seconds,
            "templates_built": self.templates_built,
            "templates_reused": self.templates_reused,
            "notes": list(self.notes),
        }

    def merge_json(self, data: dict[str, Any]) -> None:
        for nodeid, strategy, seconds, tables, forced in data.get("tests", []):
            self.tests.append(
                TestRecord(nodeid, Strategy(strategy), float(seconds), tuple(tables), bool(forced))
            )
        self.prepare_seconds += float(data.get("prepare_seconds", 0.0))
        self.templates_built += int(data.get("templates_built", 0))
        self.templates_reused += int(data.get("templates_reused", 0))
        for text in data.get("notes", []):
            self.note(str(text))

    def lines(self) -> list[str]:
        """The terminal summary, or nothing when no test used a database."""
        if not self.tests and not self.prepare_seconds and not self.notes:
            return []
        out = [
            strategies_line(Counter(t.strategy for t in self.tests))
            + f"isolating took {sum(t.seconds for t in self.tests) * 1000:.0f} ms in all"
            + f", preparing {self.prepare_seconds * 1000:.0f} ms"
            + f" (templates built {self.templates_built}, reused {self.templates_reused})"
        ]
        # a test that rewound nothing paid only the after-test check: not a rewind
        rewound = (t for t in self.tests if t.tables and t.seconds > 0)
        slowest = sorted(rewound, key=lambda t: -t.seconds)[:5]
        if slowest:
            out.append("slowest rewinds:")
            out += [
                f"  {t.seconds * 1000:8.1f} ms  {t.nodeid}  ({', '.join(t.tables)})"
                for t in slowest
            ]
        dirtied = Counter(table for t in self.tests for table in t.tables)
        if dirtied:
            out.append(
                "tables most often dirtied: "
                + ", ".join(f"{name} ({n})" for name, n in dirtied.most_common(5))
            )
        out += [f"note: {text}" for text in self.notes]
        narrow = [
            t
            for t in self.tests
            if t.strategy is Strategy.CLEAN and not t.forced and 0 < len(t.tables) <= 2
        ]
        if narrow:
            out.append(
                f"hint: {len(narrow)} tests under the clean strategy touched only 1-2 tables; "
                "unless they need real commits (other connections, threads, SELECT ... FOR "
                "UPDATE), the rollback sandbox (db / db_session, no transactional=True) "
                "isolates them for two or three round trips."
            )
        forced = [t for t in self.tests if t.forced]
        if forced:
            named = ", ".join(t.nodeid for t in forced[:3]) + (", ..." if len(forced) > 3 else "")
            out.append(
                f"hint: {len(forced)} sync tests used an async engine of dbrewind_engines "
                f"({named}), which a sync test's sandbox cannot hold: what they wrote through "
                "it was committed for real, and rewound after. Written as async tests (async "
                "def, with an async client), they run in the rollback sandbox."
            )
        return out


def strategies_line(counts: Counter[Strategy]) -> str:
    """``"strategies: rollback 412, clean 37; "``: how many tests each strategy isolated,
    in :class:`~dbrewind.Strategy`'s order (nothing when no test was recorded)."""
    named = [f"{strategy.value} {counts[strategy]}" for strategy in Strategy if counts[strategy]]
    return f"strategies: {', '.join(named)}; " if named else ""
