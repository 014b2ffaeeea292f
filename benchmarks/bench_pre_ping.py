"""What the pool's pre-ping costs a test: the engines dbrewind hands out ping on checkout.

Run::

    python benchmarks/bench_pre_ping.py                 # PostgreSQL and MariaDB, 300 rounds
    python benchmarks/bench_pre_ping.py --rounds 1000
    python benchmarks/bench_pre_ping.py --quick

The plugin's engines (``db_engine``, the one under ``transactional_db`` and the
sandbox) are made with ``pool_pre_ping=True``, so that a connection the server
closed while it sat in the pool (a failover, a restart, an idle-connection
reaper) is replaced instead of failing the next test's first statement. The
price is one round trip per checkout. Two "tests", each with and without the
ping, interleaved round by round, on a prepared database:

* **sandboxed** — ``Sandbox`` start, one INSERT and one SELECT, stop, and the
  safety net's check (what the ``db`` fixture does);
* **transactional** — a checkout, one SELECT, the checkin (what
  ``transactional_db`` does around the test's own statements; its rewind is
  the same either way).
"""

from __future__ import annotations

import sys

from _common import Case, base_parser, cases_table, scratch_databases, selected_backends, time_ms
from sqlalchemy import text
from sqlalchemy.engine import Engine

from dbrewind import Rewinder
from dbrewind._url import parse_url
from dbrewind.dialects.engines import make_engine
from dbrewind.sandbox import Sandbox

__all__ = ["main"]


def sandboxed(engine: Engine, rewinder: Rewinder) -> None:
    with Sandbox(engine, rewinder=rewinder) as sandbox:
        sandbox.connection.execute(text("INSERT INTO item (n) VALUES (1)"))
        sandbox.connection.execute(text("SELECT n FROM item")).all()


def transactional(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT n FROM item")).all()


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], default_rounds=300)
    parser.set_defaults(backends="postgresql,mysql")  # SQLite has no pool to ping
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    for backend in selected_backends(args.backends, ("postgresql", "mysql")):
        with scratch_databases(backend, ["ping"]) as urls:
            url = parse_url(urls["ping"])
            with Rewinder(url) as rewinder:
                serial = (
                    "INT PRIMARY KEY AUTO_INCREMENT" if backend == "mysql" else "SERIAL PRIMARY KEY"
                )
                table = text(f"CREATE TABLE item (id {serial}, n INT)")
                rewinder.prepare(lambda conn, table=table: conn.execute(table))
                engines = {True: make_engine(url), False: make_engine(url, pool_pre_ping=False)}
                cases = {
                    (kind, ping): Case(f"{kind}, {'pre-ping' if ping else 'no ping'}")
                    for kind in ("sandboxed", "transactional")
                    for ping in (False, True)
                }
                try:
                    for n in range(rounds + 5):  # the first 5: warm-up
                        for (kind, ping), case in cases.items():
                            engine = engines[ping]
                            if kind == "sandboxed":
                                ms = time_ms(lambda e=engine: sandboxed(e, rewinder))
                            else:
                                ms = time_ms(lambda e=engine: transactional(e))
                            if n >= 5:
                                case.samples.append(ms)
                finally:
                    for engine in engines.values():
                        engine.dispose()
        print(f"### {backend} ({rounds} rounds)\n")
        for kind in ("sandboxed", "transactional"):
            pair = [cases[(kind, False)], cases[(kind, True)]]
            print(cases_table(f"{kind} test", pair, pair[0]) + "\n")
            extra = (pair[1].median - pair[0].median) * 1000
            print(f"pre-ping adds {extra:.0f} us per {kind} test (median)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
