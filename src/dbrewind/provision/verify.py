"""``--dbrewind-verify``: every tracked table compared with its baseline, row by row.

A full read of every table: for hunting isolation bugs, not for every run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import text

from ..rewinder import Rewinder

__all__ = ["Snapshot", "TableState"]


@dataclass(frozen=True)
class TableState:
    """One table's rows, as a count, a checksum and the rows themselves (sorted reprs)."""

    count: int
    checksum: str
    rows: tuple[str, ...]


@dataclass
class Snapshot:
    """Contents of every tracked table, for ``--dbrewind-verify``."""

    tables: dict[str, TableState] = field(default_factory=dict)

    @classmethod
    def capture(cls, rewinder: Rewinder) -> Snapshot:
        schema = rewinder.schema
        out: dict[str, TableState] = {}
        with rewinder.connection() as conn:
            prep = conn.dialect.identifier_preparer
            for key, table in schema.tables.items():
                name = prep.quote_identifier(table.name)
                if table.schema:
                    name = f"{prep.quote_identifier(table.schema)}.{name}"
                rows = sorted(repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {name}")))
                digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
                out[key] = TableState(len(rows), digest, tuple(rows))
        return cls(out)

    def compare(self, now: Snapshot) -> list[str]:
        problems: list[str] = []
        for key in sorted(set(self.tables) | set(now.tables)):
            before, after = self.tables.get(key), now.tables.get(key)
            if before is None:
                problems.append(f"table {key!r} exists now but not in the baseline")
                continue
            if after is None:
                problems.append(f"table {key!r} of the baseline is gone")
                continue
            if before.checksum == after.checksum:
                continue
            extra = Counter(after.rows) - Counter(before.rows)
            missing = Counter(before.rows) - Counter(after.rows)
            lines = [
                f"table {key!r}: {after.count} rows, baseline has {before.count} "
                f"(checksum {after.checksum[:8]} != {before.checksum[:8]})"
            ]
            lines += [f"    + {row}" for row in list(extra.elements())[:5]]
            lines += [f"    - {row}" for row in list(missing.elements())[:5]]
            problems.append("\n".join(lines))
        return problems
