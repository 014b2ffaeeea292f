"""Rewind after a committing test: dbrewind against the usual ways, side by side.

Run::

    python benchmarks/bench_rewind.py                      # all backends, 30 rounds
    python benchmarks/bench_rewind.py --backends postgresql --rounds 100
    python benchmarks/bench_rewind.py --quick              # smoke run, rough numbers

The schema has 100 tables (``--tables``). A "test" writes 10 rows into 2 of them
(5 each, in one committed transaction); then the database is reset by:

* **dbrewind** — ``Rewinder.rewind()`` on a prepared database (tracking installed),
  under each ``reset_sequences`` setting: ``auto`` (the default: counters put back on
  PostgreSQL and SQLite, left on MySQL/MariaDB), ``always`` and ``never``; timed until
  it returns and, as a second row, until its background work is done too: on
  MySQL/MariaDB the ``ALTER TABLE .. AUTO_INCREMENT`` that puts counters back runs
  after ``rewind()`` returned, on a second connection holding a WRITE lock on those
  tables (the next write to them waits for it). Elsewhere the two rows are the same.
* **TRUNCATE all** — what most hand-written conftests do: PostgreSQL truncates
  every table in one statement; MariaDB/MySQL has no multi-table TRUNCATE, so one
  per table; SQLite (no TRUNCATE) deletes from every table in one transaction.
* **TRUNCATE dirty** — pytest-clean-database's way: row-level triggers flag each
  written table in a tracking table, and one server-side routine truncates the
  flagged tables, one statement each (SQLite: deletes them), and clears the flags.
* **BEGIN; ROLLBACK** — the floor: two round trips on a raw driver connection.

Then: one dirty table of 10 rows against BEGIN; ROLLBACK (also for a table whose
baseline holds 20 rows, ``t099``), and the cost of the
tracking triggers on a 2,000-row insert (one multi-row INSERT, and executemany),
with and without dbrewind's tracking. Every reset is timed alone (the writes are
not); dbrewind's cases and the floor are interleaved round by round so drift
hits all of them alike, and each TRUNCATE anchor runs in a block of its own
(the I/O a TRUNCATE leaves behind would land on the next case). The
output is markdown: medians, ratios, and PASS/FAIL against the targets.

Each way runs on its own database (dbrewind's, the anchor's triggers, a plain
one), all created for the run and dropped at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, cast

from _common import (
    SINK,
    Case,
    Check,
    base_parser,
    cases_table,
    checks_table,
    fmt_ms,
    numbered_tables,
    scratch_databases,
    selected_backends,
    time_ms,
)
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import URL, Connection, Engine

from dbrewind import Rewinder

__all__ = ["main"]

DIRTY = ("t017", "t042")
SEEDED = "t099"
"""The one table with baseline rows (on dbrewind's database): its counter goes back by
``ALTER`` on MySQL/MariaDB, where an empty table's goes back by ``TRUNCATE``."""
ROWS_PER_TABLE = 5
BIG_INSERT = 2000


def build_schema(n_tables: int) -> MetaData:
    return numbered_tables(n_tables)


class Raw:
    """A raw DB-API connection in autocommit mode, with the dialect's quoting."""

    def __init__(self, engine: Engine) -> None:
        self.backend = engine.dialect.name
        self.engine = engine
        self._pooled = engine.raw_connection()
        self.conn: Any = cast(Any, self._pooled.driver_connection)
        if self.backend == "postgresql":
            self.conn.autocommit = True
        elif self.backend == "mysql":
            self.conn.autocommit(True)
        else:
            self.conn.isolation_level = None
        self.cur = self.conn.cursor()
        self.q = engine.dialect.identifier_preparer.quote_identifier
        self.param = "?" if self.backend == "sqlite" else "%s"

    def run(self, *statements: str) -> None:
        for statement in statements:
            self.cur.execute(statement)

    def close(self) -> None:
        self.cur.close()
        self._pooled.close()


def values_sql(count: int, start: int = 0) -> str:
    return ", ".join(f"('row {i}', {i})" for i in range(start, start + count))


def write(raw: Raw, tables: tuple[str, ...], rows: int) -> None:
    """What the test does: one committed transaction writing ``rows`` rows per table."""
    raw.run("BEGIN")
    for name in tables:
        raw.run(f"INSERT INTO {raw.q(name)} (name, n) VALUES {values_sql(rows)}")
    raw.run("COMMIT")


def count_rows(engine: Engine, tables: tuple[str, ...]) -> int:
    q = engine.dialect.identifier_preparer.quote_identifier
    with engine.connect() as conn:
        return sum(
            int(conn.execute(text(f"SELECT COUNT(*) FROM {q(t)}")).scalar_one()) for t in tables
        )


# ----------------------------------------------------------------- the anchors
def truncate_all_fn(raw: Raw, names: list[str]) -> Callable[[], None]:
    quoted = [raw.q(n) for n in names]
    if raw.backend == "postgresql":
        statement = f"TRUNCATE TABLE {', '.join(quoted)} RESTART IDENTITY"
        return lambda: raw.run(statement)
    if raw.backend == "mysql":
        statements = [f"TRUNCATE TABLE {q}" for q in quoted]
        return lambda: raw.run(*statements)
    deletes = [f"DELETE FROM {q}" for q in quoted]
    return lambda: raw.run("BEGIN", *deletes, "COMMIT")


def install_anchor(conn: Connection, names: list[str]) -> None:
    """pytest-clean-database's tracking: a flag table, row triggers, a clean routine."""
    backend = conn.dialect.name
    q = conn.dialect.identifier_preparer.quote_identifier
    conn.execute(
        text("CREATE TABLE anchor_dirty_tables (name VARCHAR(64) PRIMARY KEY, is_dirty BOOLEAN)")
    )
    for name in names:
        conn.execute(text("INSERT INTO anchor_dirty_tables VALUES (:n, FALSE)"), {"n": name})
    if backend == "postgresql":
        conn.execute(
            text(
                """
                CREATE FUNCTION anchor_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  UPDATE anchor_dirty_tables SET is_dirty = TRUE WHERE name = TG_TABLE_NAME;
                  RETURN NULL;
                END $$"""
            )
        )
        conn.execute(
            text(
                """
                CREATE FUNCTION anchor_clean_tables() RETURNS void LANGUAGE plpgsql AS $$
                DECLARE t text;
                BEGIN
                  FOR t IN SELECT name FROM anchor_dirty_tables WHERE is_dirty LOOP
                    EXECUTE format('TRUNCATE TABLE %I RESTART IDENTITY', t);
                  END LOOP;
                  UPDATE anchor_dirty_tables SET is_dirty = FALSE WHERE is_dirty;
                END $$"""
            )
        )
        for name in names:
            conn.execute(
                text(
                    f"CREATE TRIGGER {q('anchor_' + name)} AFTER INSERT OR UPDATE OR DELETE "
                    f"ON {q(name)} FOR EACH ROW EXECUTE FUNCTION anchor_mark_dirty()"
                )
            )
    elif backend == "mysql":
        conn.execute(
            text(
                """
                CREATE PROCEDURE anchor_clean_tables()
                BEGIN
                  DECLARE done INT DEFAULT 0;
                  DECLARE tname VARCHAR(64);
                  DECLARE cur CURSOR FOR SELECT name FROM anchor_dirty_tables WHERE is_dirty;
                  DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
                  OPEN cur;
                  each_table: LOOP
                    FETCH cur INTO tname;
                    IF done THEN LEAVE each_table; END IF;
                    SET @anchor_sql = CONCAT('TRUNCATE TABLE `', tname, '`');
                    PREPARE stmt FROM @anchor_sql;
                    EXECUTE stmt;
                    DEALLOCATE PREPARE stmt;
                  END LOOP;
                  CLOSE cur;
                  UPDATE anchor_dirty_tables SET is_dirty = FALSE WHERE is_dirty;
                END"""
            )
        )
        for name in names:
            for event in ("INSERT", "UPDATE", "DELETE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER {q('anchor_' + name + '_' + event.lower())} "
                        f"AFTER {event} ON {q(name)} FOR EACH ROW "
                        f"UPDATE anchor_dirty_tables SET is_dirty = TRUE WHERE name = '{name}'"
                    )
                )
    else:
        for name in names:
            for event in ("INSERT", "UPDATE", "DELETE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER {q('anchor_' + name + '_' + event.lower())} "
                        f"AFTER {event} ON {q(name)} FOR EACH ROW BEGIN "
                        f"UPDATE anchor_dirty_tables SET is_dirty = 1 WHERE name = '{name}'; END"
                    )
                )


def truncate_dirty_fn(raw: Raw) -> Callable[[], None]:
    if raw.backend == "postgresql":
        return lambda: raw.run("SELECT anchor_clean_tables()")
    if raw.backend == "mysql":
        return lambda: raw.run("CALL anchor_clean_tables()")

    def sqlite_clean() -> None:
        raw.run("BEGIN")
        raw.cur.execute("SELECT name FROM anchor_dirty_tables WHERE is_dirty")
        for (name,) in raw.cur.fetchall():
            raw.run(f"DELETE FROM {raw.q(name)}")
        raw.run("UPDATE anchor_dirty_tables SET is_dirty = 0 WHERE is_dirty", "COMMIT")

    return sqlite_clean


# ---------------------------------------------------------------------- run
def run_backend(backend: str, rounds: int, n_tables: int) -> tuple[str, list[Check]]:
    metadata = build_schema(n_tables)
    names = [t.name for t in metadata.sorted_tables]
    with scratch_databases(backend, ["rewind", "anchor", "plain"]) as urls:
        engines: dict[str, Engine] = {role: create_engine(url) for role, url in urls.items()}
        rewinder = Rewinder(urls["rewind"])
        raws: list[Raw] = []
        try:
            return _measure(backend, rounds, metadata, names, urls, engines, rewinder, raws)
        finally:
            for raw in raws:
                raw.close()
            rewinder.close()
            for engine in engines.values():
                engine.dispose()


def _measure(
    backend: str,
    rounds: int,
    metadata: MetaData,
    names: list[str],
    urls: dict[str, URL],
    engines: dict[str, Engine],
    rewinder: Rewinder,
    raws: list[Raw],
) -> tuple[str, list[Check]]:
    def seed(conn: Connection) -> None:
        q = conn.dialect.identifier_preparer.quote_identifier
        conn.execute(text(f"INSERT INTO {q(SEEDED)} (name, n) VALUES {values_sql(20)}"))

    rewinder.prepare([metadata.create_all, seed])
    metadata.create_all(engines["plain"])
    metadata.create_all(engines["anchor"])
    with engines["anchor"].begin() as conn:
        install_anchor(conn, names)

    tracked, anchor, plain = Raw(engines["rewind"]), Raw(engines["anchor"]), Raw(engines["plain"])
    raws += [tracked, anchor, plain]
    truncate_all = truncate_all_fn(plain, names)
    truncate_dirty = truncate_dirty_fn(anchor)

    def begin_rollback() -> None:
        plain.run("BEGIN", "ROLLBACK")

    # Warm up every path (plans, caches, connections) before timing.
    for _ in range(2):
        write(tracked, DIRTY, ROWS_PER_TABLE)
        rewinder.rewind()
        write(anchor, DIRTY, ROWS_PER_TABLE)
        truncate_dirty()
        write(plain, DIRTY, ROWS_PER_TABLE)
        truncate_all()
        begin_rollback()

    c_rewind = Case("dbrewind rewind (auto)")
    c_always = Case("dbrewind rewind (always)")
    c_always_settled = Case("dbrewind rewind (always), until counters are back")
    c_never = Case("dbrewind rewind (never)")
    c_all = Case("TRUNCATE all" if backend != "sqlite" else "DELETE all")
    c_dirty = Case("TRUNCATE dirty" if backend != "sqlite" else "DELETE dirty")
    c_floor = Case("BEGIN; ROLLBACK")
    c_settled = Case("dbrewind rewind (auto), until counters are back")
    c_one = Case("dbrewind rewind, 1 table")
    c_one_settled = Case("dbrewind rewind, 1 table, until counters are back")
    c_none = Case("dbrewind rewind, nothing dirty")
    c_seeded = Case("dbrewind rewind, 1 table with baseline rows")
    c_seeded_settled = Case("dbrewind rewind, 1 table with baseline rows, until counters are back")

    def rewind_timed(returned: Case, settled: Case) -> None:
        """Time the rewind until it returns, and until its background work is done too
        (MySQL puts AUTO_INCREMENT counters back after returning; see the README)."""
        started = time_ms(rewinder.rewind)
        returned.samples.append(started)
        settled.samples.append(started + time_ms(rewinder.dialect.settle))

    # dbrewind's cases and the floor are interleaved round by round (so drift
    # hits them all alike). The TRUNCATE anchors are timed in blocks of their
    # own afterwards: the I/O a TRUNCATE leaves behind (relation files created
    # and unlinked, WAL) lands on whatever runs next, measured at 0.3-0.4 ms on
    # PostgreSQL, and would be charged to the wrong case.
    never = Case("never, until counters are back")  # the same as c_never: nothing runs later
    for _ in range(rounds):
        write(tracked, DIRTY, ROWS_PER_TABLE)
        rewind_timed(c_rewind, c_settled)
        c_floor.samples.append(time_ms(begin_rollback))
        rewinder.reset_sequences = "always"
        write(tracked, DIRTY, ROWS_PER_TABLE)
        rewind_timed(c_always, c_always_settled)
        rewinder.reset_sequences = "never"
        write(tracked, DIRTY, ROWS_PER_TABLE)
        rewind_timed(c_never, never)
        rewinder.reset_sequences = "auto"
        write(tracked, DIRTY[:1], 2 * ROWS_PER_TABLE)
        rewind_timed(c_one, c_one_settled)
        c_none.samples.append(time_ms(rewinder.rewind))
        write(tracked, (SEEDED,), 2 * ROWS_PER_TABLE)
        rewind_timed(c_seeded, c_seeded_settled)
    for _ in range(rounds):
        write(anchor, DIRTY, ROWS_PER_TABLE)
        c_dirty.samples.append(time_ms(truncate_dirty))
    for r in range(rounds):
        write(plain, DIRTY, ROWS_PER_TABLE)
        c_all.samples.append(time_ms(truncate_all))
        if r in (0, rounds - 1):
            left = {
                role: count_rows(engines[role], DIRTY) for role in ("rewind", "anchor", "plain")
            }
            if any(left.values()):
                raise SystemExit(f"{backend}: rows left after a reset: {left}")

    # Trigger overhead on a 2,000-row insert (each committed; cleanup untimed).
    big = "t000"
    multi = {
        raw: f"INSERT INTO {raw.q(big)} (name, n) VALUES {values_sql(BIG_INSERT)}"
        for raw in (tracked, plain)
    }
    params = [(f"row {i}", i) for i in range(BIG_INSERT)]
    many = {
        raw: f"INSERT INTO {raw.q(big)} (name, n) VALUES ({raw.param}, {raw.param})"
        for raw in (tracked, plain)
    }

    def multi_insert(raw: Raw) -> Callable[[], None]:
        return lambda: raw.run("BEGIN", multi[raw], "COMMIT")

    def executemany(raw: Raw) -> Callable[[], None]:
        def go() -> None:
            raw.run("BEGIN")
            raw.cur.executemany(many[raw], params)
            raw.run("COMMIT")

        return go

    clear_plain = truncate_all_fn(plain, [big])
    ins = {
        "multi tracked": Case("multi-row INSERT, tracked"),
        "multi plain": Case("multi-row INSERT, untracked"),
        "many tracked": Case("executemany, tracked"),
        "many plain": Case("executemany, untracked"),
    }
    for r in range(rounds + 2):
        timings = {
            "multi tracked": time_ms(multi_insert(tracked)),
            "multi plain": time_ms(multi_insert(plain)),
        }
        rewinder.rewind()
        clear_plain()
        timings["many tracked"] = time_ms(executemany(tracked))
        timings["many plain"] = time_ms(executemany(plain))
        rewinder.rewind()
        clear_plain()
        if r >= 2:  # the first two rounds warm up
            for key, value in timings.items():
                ins[key].samples.append(value)

    reset_cases = [
        c_rewind,
        c_settled,
        c_always,
        c_always_settled,
        c_never,
        c_all,
        c_dirty,
        c_floor,
    ]
    report = [
        f"### {backend} — {len(names)} tables, {rounds} rounds",
        "",
        cases_table(
            f"Reset after a test that committed {2 * ROWS_PER_TABLE} rows into 2 tables",
            reset_cases,
            c_rewind,
            backend,
        ),
        "",
        cases_table(
            f"One dirty table of {2 * ROWS_PER_TABLE} rows, against the floor",
            [c_one, c_one_settled, c_seeded, c_seeded_settled, c_none, c_floor],
            c_floor,
            backend,
        ),
        "",
        cases_table(
            f"Inserting {BIG_INSERT:,} rows in one committed transaction",
            list(ins.values()),
            ins["multi plain"],
            backend,
        ),
    ]
    overhead_multi = 100 * (ins["multi tracked"].median / ins["multi plain"].median - 1)
    overhead_many = 100 * (ins["many tracked"].median / ins["many plain"].median - 1)
    rows = f"{BIG_INSERT} rows"
    SINK.figure(backend, "tracking overhead, multi-row INSERT", overhead_multi, "%", rows=rows)
    SINK.figure(backend, "tracking overhead, executemany", overhead_many, "%", rows=rows)
    report += [
        "",
        f"Tracking overhead: multi-row INSERT {overhead_multi:+.1f}%, "
        f"executemany {overhead_many:+.1f}%.",
        "",
        f"Counters: always (until they are back) minus never, what putting them back "
        f"costs a rewind of 2 tables: {fmt_ms(c_always_settled.median - c_never.median)} ms; "
        f"always is {c_always_settled.median / c_dirty.median:.2f}x {c_dirty.label}, "
        f"auto {c_rewind.median / c_never.median:.2f}x never.",
    ]

    checks: list[Check] = []
    if backend in ("postgresql", "mysql"):
        checks += [
            Check(
                backend,
                f"rewind (auto) vs {c_all.label}",
                c_all.median / c_rewind.median,
                ">=",
                50,
                "x",
            ),
            Check(
                backend,
                f"rewind (auto) vs {c_dirty.label}",
                c_dirty.median / c_rewind.median,
                ">=",
                3,
                "x",
            ),
            Check(
                backend,
                "1 dirty table vs BEGIN; ROLLBACK",
                c_one.median / c_floor.median,
                "<=",
                3,
                "x",
            ),
        ]
    if backend == "postgresql":
        checks += [
            Check(backend, "rewind median", c_rewind.median, "<=", 1, " ms"),
            Check(backend, "tracking overhead, multi-row INSERT", overhead_multi, "<=", 15, "%"),
            Check(backend, "tracking overhead, executemany", overhead_many, "<=", 15, "%"),
        ]
    summary = ", ".join(f"{c.label} {fmt_ms(c.median)} ms" for c in reset_cases)
    print(f"  {backend}: {summary}", file=sys.stderr)
    return "\n".join(report), checks


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], default_rounds=30)
    parser.add_argument("--tables", type=int, default=100, help="tables in the schema (100)")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    if args.tables <= max(int(t[1:]) for t in DIRTY):
        raise SystemExit(f"--tables must be more than {max(int(t[1:]) for t in DIRTY)}")
    reports: list[str] = []
    checks: list[Check] = []
    for backend in selected_backends(args.backends):
        print(f"measuring {backend} ...", file=sys.stderr)
        report, found = run_backend(backend, rounds, args.tables)
        reports.append(report)
        checks += found
    print("\n\n".join(reports))
    if checks:
        print("\n### Targets\n")
        print(checks_table(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
