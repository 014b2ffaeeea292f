"""MariaDB/MySQL: what a rewind costs when nothing, or little, is dirty.

Run::

    python benchmarks/bench_mysql_check.py                 # 300 rounds
    python benchmarks/bench_mysql_check.py --rounds 1000 --tables 100

The schema has 100 tables (``--tables``); two of them hold 10 baseline rows.
Cases, interleaved round by round in a shuffled order so drift hits them alike:

* **SELECT 1** — one trivial round trip on dbrewind's own connection (driver cursor).
* **BEGIN; ROLLBACK** — two round trips on the same cursor.
* **rewind, nothing dirty** — ``Rewinder.rewind()`` after a test that wrote
  nothing: the safety-net check that runs after every test (schema check,
  ``TRUNCATE`` probe, marks).
* **rewind, 2 dirty tables** — after a committed transaction updating the 10
  baseline rows of each of the two seeded tables (``AUTO_INCREMENT`` counters
  do not move): ``DELETE`` + re-insert of the baseline, one commit. Only the
  rewind is timed, not the writes.

Output: markdown medians with ratios to ``SELECT 1``. Set
``DBREWIND_BENCH_MYSQL_URL`` to use another server.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from typing import Any

from _common import (
    Case,
    base_parser,
    cases_table,
    numbered_tables,
    scratch_databases,
    seeded_setup,
    time_ms,
)
from sqlalchemy.engine import Connection

from dbrewind import Rewinder

__all__ = ["main"]

SEEDED = ("t017", "t042")
SEED_ROWS = 10


def build_schema(n_tables: int) -> Callable[[Connection], None]:
    return seeded_setup(numbered_tables(n_tables), SEEDED, SEED_ROWS)


def run(rounds: int, n_tables: int) -> str:
    with scratch_databases("mysql", ["check"]) as urls:
        rewinder = Rewinder(urls["check"])
        try:
            rewinder.prepare(build_schema(n_tables))
            writer = rewinder.engine.raw_connection()
            try:
                return _measure(rewinder, writer, rounds, n_tables)
            finally:
                writer.close()
        finally:
            rewinder.close()


def _measure(rewinder: Rewinder, writer: Any, rounds: int, n_tables: int) -> str:
    wcur = writer.cursor()

    def dirty_two() -> None:
        for name in SEEDED:
            wcur.execute(f"UPDATE `{name}` SET n = n + 1")
        writer.commit()

    with rewinder.connection() as conn:
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def select_one() -> None:
        cur.execute("SELECT 1")
        cur.fetchall()

    def begin_rollback() -> None:
        cur.execute("BEGIN")
        cur.execute("ROLLBACK")

    def rewind_dirty() -> float:
        dirty_two()
        ms = time_ms(rewinder.rewind)
        if rewinder.rewinds == 0:
            raise SystemExit("the dirty rewind found nothing to do: benchmark is broken")
        return ms

    cases: dict[str, tuple[Case, Callable[[], float]]] = {
        "one": (Case("SELECT 1"), lambda: time_ms(select_one)),
        "floor": (Case("BEGIN; ROLLBACK"), lambda: time_ms(begin_rollback)),
        "clean": (Case("rewind, nothing dirty"), lambda: time_ms(rewinder.rewind)),
        "dirty": (Case("rewind, 2 dirty tables (counters not moved)"), rewind_dirty),
    }
    for _ in range(20):  # warm-up: procedure cache, table cache, plans
        for _case, fn in cases.values():
            fn()
    keys = list(cases)
    for _ in range(rounds):
        random.shuffle(keys)
        for key in keys:
            case, fn = cases[key]
            case.samples.append(fn())
    result = rewinder.rewind()
    if result.tables:
        raise SystemExit(f"tables left dirty after the run: {result.tables}")
    title = f"MariaDB/MySQL, {n_tables} tables, {rounds} rounds"
    return cases_table(title, [c for c, _ in cases.values()], cases["one"][0])


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "", default_rounds=300)
    parser.add_argument("--tables", type=int, default=100, help="tables in the schema")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    print(run(rounds, args.tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
