"""The check after a test that wrote nothing, on every database, against BEGIN; ROLLBACK.

Run::

    python benchmarks/bench_clean_check.py                 # all backends, 300 rounds
    python benchmarks/bench_clean_check.py --backends mysql --rounds 1000

The schema has 100 tables (``--tables``); two of them hold 10 baseline rows. Cases,
interleaved round by round in a shuffled order so that drift hits them alike, each on
dbrewind's own connection (its driver connection for the raw statements):

* **BEGIN; ROLLBACK** — the floor: two round trips (SQLite: two statements in-process).
* **Rewinder.rewind(), nothing dirty** — the library's rewind after a test that
  committed nothing: it must find that nothing was written, truncated, created,
  dropped or altered.
* **transactional_db's check, nothing dirty** — what the pytest plugin (and
  ``dbrewind.unittest.TransactionTestCase``) runs after a test that committed for
  real but wrote nothing: ``Database.after_test(check_schema=True)``, the rewind plus
  whatever the lifecycle compares to see a changed schema.

Then the single statements a check could be made of, sent raw on the same cursor,
measured the same way: what the floor leaves room for. MariaDB/MySQL: the ways to see
DDL that were tried (see the README): the newest mark alone (sees no DDL at all), with
the table list's scan (``information_schema.TABLES``), InnoDB's dictionary
(``INNODB_SYS_TABLES``), InnoDB's page-write counter (``INNODB_METRICS``: moves with
any write on the server, sees no other engine), and the server's DDL statement count
(``GLOBAL_STATUS``: what dbrewind reads). SQLite: ``PRAGMA data_version`` and the
rewind's one query. PostgreSQL: the marks probe (its event trigger marks DDL too).

Output: markdown medians with ratios to BEGIN; ROLLBACK on the same connection, and
PASS/FAIL against the target (the check after a test that wrote nothing at most 1.5x
BEGIN; ROLLBACK). Exit status 1 when a target fails.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from typing import Any

from _common import (
    Case,
    Check,
    base_parser,
    cases_table,
    checks_table,
    numbered_tables,
    scratch_databases,
    seeded_setup,
    selected_backends,
    time_ms,
)
from sqlalchemy.engine import URL, Connection

from dbrewind import Rewinder
from dbrewind._url import parse_url
from dbrewind.provision import Target, acquire

__all__ = ["main"]

SEEDED = ("t017", "t042")
SEED_ROWS = 10
TARGET = 1.5
"""The check after a test that wrote nothing: at most this many times BEGIN; ROLLBACK."""


def build_schema(n_tables: int) -> Callable[[Connection], None]:
    return seeded_setup(numbered_tables(n_tables, sqlite_autoincrement=True), SEEDED, SEED_ROWS)


def _mysql_ways(cur: Any, database: str) -> dict[str, str]:
    """Single statements a MySQL/MariaDB check could be: the newest mark and the two
    seeded tables' TRUNCATE probe, plus one way of seeing DDL each."""
    marks = "(SELECT MAX(`id`) FROM `dbrewind_marks`)"
    probe = " OR ".join(f"NOT EXISTS (SELECT 1 FROM `{t}`)" for t in SEEDED)
    base = f"SELECT {marks}, {probe}"
    tables = (
        "(SELECT SUM(CRC32(TABLE_NAME)) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE 'dbrewind!_%' ESCAPE '!')"
    )
    dictionary = (
        "(SELECT CONCAT(COUNT(*), ':', SUM(TABLE_ID), ':', SUM(CRC32(NAME)), ':', SUM(N_COLS)) "
        f"FROM information_schema.INNODB_SYS_TABLES WHERE NAME LIKE '{database}/%')"
    )
    pages = (
        "(SELECT SUM(COUNT) FROM information_schema.INNODB_METRICS "
        "WHERE NAME IN ('buffer_pool_write_requests', 'file_num_open_files'))"
    )
    ddl = (
        "(SELECT SUM(VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS "
        "WHERE VARIABLE_NAME IN ('COM_ALTER_TABLE', 'COM_CREATE_TABLE', 'COM_DROP_TABLE', "
        "'COM_RENAME_TABLE', 'COM_TRUNCATE'))"
    )
    ways = {
        "marks + TRUNCATE probe only (sees no DDL)": base,
        "+ information_schema.TABLES scan (table list only)": f"{base}, {tables}",
        "+ INNODB_SYS_TABLES (InnoDB only; misses instant column changes)": (
            f"{base}, {dictionary}"
        ),
        "+ INNODB_METRICS page writes (any write on the server; InnoDB only)": (f"{base}, {pages}"),
        "+ GLOBAL_STATUS DDL count (every DDL statement, any engine)": f"{base}, {ddl}",
        "the 0.1.0 rewind's CALL (table list scan inside)": (
            "CALL `dbrewind_rewind`('', '', 1, 1, 1, 10)"
        ),
    }
    return ways


def _sqlite_ways() -> dict[str, str]:
    return {
        "PRAGMA data_version (sees other connections' commits only)": "PRAGMA data_version",
        "the rewind's one query (marks, schema_version)": (
            "SELECT EXISTS (SELECT 1 FROM dbrewind_marks), schema_version, "
            "(SELECT value FROM dbrewind_state WHERE key = 'schema_version') "
            "FROM pragma_schema_version"
        ),
    }


def _postgresql_ways() -> dict[str, str]:
    return {
        "nothing marked (rows, TRUNCATE and DDL all mark)": (
            "SELECT NOT EXISTS (SELECT 1 FROM dbrewind.marks)"
        ),
    }


def run_backend(backend: str, rounds: int, n_tables: int) -> tuple[str, list[Check]]:
    with scratch_databases(backend, ["lib", "life"]) as urls:
        rewinder = Rewinder(urls["lib"])
        database = acquire(
            Target(url=parse_url(urls["life"]), setups=(build_schema(n_tables),), origin="bench")
        )
        try:
            rewinder.prepare(build_schema(n_tables))
            return _measure(backend, rounds, n_tables, rewinder, database, urls["lib"])
        finally:
            rewinder.close()
            database.release()


def _measure(
    backend: str, rounds: int, n_tables: int, rewinder: Rewinder, database: Any, url: URL
) -> tuple[str, list[Check]]:
    with rewinder.connection() as conn:
        raw: Any = conn.connection.dbapi_connection
    cur = raw.cursor()

    def statements(*sql: str) -> Callable[[], float]:
        def run() -> None:
            for statement in sql:
                cur.execute(statement)
                if cur.description:
                    cur.fetchall()
                nextset = getattr(cur, "nextset", None)
                while nextset is not None and nextset():
                    pass

        return lambda: time_ms(run)

    def rewind() -> float:
        ms = time_ms(rewinder.rewind)
        return ms

    def after_test() -> float:
        return time_ms(lambda: database.after_test(check_schema=True))

    cases: dict[str, tuple[Case, Callable[[], float]]] = {
        "floor": (Case("BEGIN; ROLLBACK"), statements("BEGIN", "ROLLBACK")),
        "rewind": (Case("Rewinder.rewind(), nothing dirty"), rewind),
        "after": (Case("transactional_db's check, nothing dirty"), after_test),
    }
    ways = {
        "mysql": lambda: _mysql_ways(cur, str(url.database)),
        "sqlite": _sqlite_ways,
        "postgresql": _postgresql_ways,
    }[backend]()
    for label, sql in ways.items():
        cases[label] = (Case(label), statements(sql))
    for _ in range(20):  # warm-up: plans, caches, the first full checks
        for _case, fn in cases.values():
            fn()
    keys = list(cases)
    for _ in range(rounds):
        random.shuffle(keys)
        for key in keys:
            case, fn = cases[key]
            case.samples.append(fn())
    if rewinder.rewind().tables or database.after_test(check_schema=True).tables:
        raise SystemExit(f"{backend}: a table was dirty after the run: benchmark is broken")
    floor = cases["floor"][0]
    main_cases = [cases[k][0] for k in ("floor", "rewind", "after")]
    report = [
        f"### {backend} — {n_tables} tables, {rounds} rounds",
        "",
        cases_table("The check after a test that wrote nothing", main_cases, floor, backend),
    ]
    singles = sorted(
        (cases[k][0] for k in keys if k not in ("floor", "rewind", "after")),
        key=lambda c: c.label,
    )
    report += [
        "",
        cases_table("Single statements a check could be, sent raw", singles, floor, backend),
    ]
    checks = [
        Check(
            backend,
            "Rewinder.rewind(), nothing dirty, vs BEGIN; ROLLBACK",
            cases["rewind"][0].median / floor.median,
            "<=",
            TARGET,
            "x",
        ),
        Check(
            backend,
            "transactional_db's check, nothing dirty, vs BEGIN; ROLLBACK",
            cases["after"][0].median / floor.median,
            "<=",
            TARGET,
            "x",
        ),
    ]
    cur.close()
    return "\n".join(report), checks


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "", default_rounds=300)
    parser.add_argument("--tables", type=int, default=100, help="tables in the schema (100)")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    reports: list[str] = []
    checks: list[Check] = []
    for backend in selected_backends(args.backends):
        print(f"measuring {backend} ...", file=sys.stderr)
        report, found = run_backend(backend, rounds, args.tables)
        reports.append(report)
        checks += found
    print("\n\n".join(reports))
    print("\n### Targets\n")
    print(checks_table(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
