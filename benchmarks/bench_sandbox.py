"""The rollback sandbox per test: dbrewind against the hand-written recipe, side by side.

Run::

    python benchmarks/bench_sandbox.py                  # PostgreSQL, sync and async, 200 rounds
    python benchmarks/bench_sandbox.py --rounds 1000
    python benchmarks/bench_sandbox.py --quick

One "test" writes 10 rows through an ORM session, commits (as application code
does), and reads them back. It runs, whole (set-up, body, tear-down), under:

* **dbrewind** — ``Sandbox`` / ``AsyncSandbox`` with the safety net: tracking
  installed on the database, and the after-test check that nothing escaped.
* **recipe** — the hand-written fixture most projects copy: a connection, an
  outer transaction, a SAVEPOINT re-opened by an ``after_transaction_end``
  listener, a session bound to the connection, rolled back at the end.
* **raw driver** — psycopg / asyncpg with no ORM: ``BEGIN``, a multi-row
  ``INSERT``, a ``SELECT``, ``ROLLBACK``. The floor for the same statements.

The recipe and the raw driver run on a plain database (no tracking); dbrewind
on a prepared one. Cases are interleaved round by round. Target: dbrewind's
median at most 1.25x the recipe's.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from _common import (
    Case,
    Check,
    base_parser,
    cases_table,
    checks_table,
    scratch_databases,
    selected_backends,
    time_ms,
)
from sqlalchemy import String, create_engine, event, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column

from dbrewind import Rewinder
from dbrewind._url import parse_url

__all__ = ["main"]

ROWS = 10
TARGET = 1.25


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    n: Mapped[int]


# ------------------------------------------------------------ the test's body
def body(session: Session) -> None:
    session.add_all([Item(name=f"item {i}", n=i) for i in range(ROWS)])
    session.commit()
    found = session.scalars(select(Item).order_by(Item.id)).all()
    if len(found) != ROWS:
        raise SystemExit(f"the test saw {len(found)} rows, expected {ROWS}: isolation is broken")


async def abody(session: AsyncSession) -> None:
    session.add_all([Item(name=f"item {i}", n=i) for i in range(ROWS)])
    await session.commit()
    found = (await session.scalars(select(Item).order_by(Item.id))).all()
    if len(found) != ROWS:
        raise SystemExit(f"the test saw {len(found)} rows, expected {ROWS}: isolation is broken")


# ----------------------------------------------------------------- sync ways
def run_dbrewind(engine: Engine, rewinder: Rewinder) -> None:
    from dbrewind.sandbox import Sandbox

    sandbox = Sandbox(engine, rewinder=rewinder)
    sandbox.start()
    try:
        session = sandbox.session()
        try:
            body(session)
        finally:
            session.close()
    finally:
        sandbox.stop()


def run_recipe(engine: Engine) -> None:
    conn = engine.connect()
    trans = conn.begin()
    conn.begin_nested()
    session = Session(bind=conn)

    @event.listens_for(session, "after_transaction_end")
    def restart_savepoint(sess: Session, transaction: SessionTransaction) -> None:
        if conn.closed:
            return
        if not conn.in_nested_transaction():
            conn.begin_nested()

    try:
        body(session)
    finally:
        session.close()
        trans.rollback()
        conn.close()


def raw_sync(engine: Engine) -> tuple[Callable[[], None], Callable[[], None]]:
    pooled = engine.raw_connection()
    conn: Any = pooled.driver_connection
    conn.autocommit = True
    cur = conn.cursor()
    placeholders = ", ".join("(%s, %s)" for _ in range(ROWS))
    insert = f"INSERT INTO item (name, n) VALUES {placeholders}"
    args = [v for i in range(ROWS) for v in (f"item {i}", i)]

    def run() -> None:
        cur.execute("BEGIN")
        cur.execute(insert, args)
        cur.execute("SELECT id, name, n FROM item ORDER BY id")
        if len(cur.fetchall()) != ROWS:
            raise SystemExit("raw driver: wrong row count")
        cur.execute("ROLLBACK")

    def close() -> None:
        cur.close()
        pooled.close()

    return run, close


# ---------------------------------------------------------------- async ways
async def arun_dbrewind(engine: AsyncEngine, rewinder: Rewinder) -> None:
    from dbrewind.sandbox import AsyncSandbox

    sandbox = AsyncSandbox(engine, rewinder=rewinder)
    await sandbox.start()
    try:
        session = sandbox.session()
        try:
            await abody(session)
        finally:
            await session.close()
    finally:
        await sandbox.stop()


async def arun_recipe(engine: AsyncEngine) -> None:
    conn: AsyncConnection = await engine.connect()
    trans = await conn.begin()
    await conn.begin_nested()
    session = AsyncSession(bind=conn, expire_on_commit=False)

    @event.listens_for(session.sync_session, "after_transaction_end")
    def restart_savepoint(sess: Session, transaction: SessionTransaction) -> None:
        if conn.closed:
            return
        if not conn.in_nested_transaction():
            conn.sync_connection.begin_nested()  # type: ignore[union-attr]

    try:
        await abody(session)
    finally:
        await session.close()
        await trans.rollback()
        await conn.close()


async def raw_async(
    url: URL,
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import asyncpg

    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    placeholders = ", ".join(f"(${2 * i + 1}, ${2 * i + 2})" for i in range(ROWS))
    insert = f"INSERT INTO item (name, n) VALUES {placeholders}"
    args = [v for i in range(ROWS) for v in (f"item {i}", i)]

    async def run() -> None:
        await conn.execute("BEGIN")
        await conn.execute(insert, *args)
        rows = await conn.fetch("SELECT id, name, n FROM item ORDER BY id")
        if len(rows) != ROWS:
            raise SystemExit("raw asyncpg: wrong row count")
        await conn.execute("ROLLBACK")

    async def close() -> None:
        await conn.close()

    return run, close


async def atime_ms(fn: Callable[[], Awaitable[None]]) -> float:
    import time

    started = time.perf_counter_ns()
    await fn()
    return (time.perf_counter_ns() - started) / 1e6


# ---------------------------------------------------------------------- run
def measure_sync(urls: dict[str, URL], rewinder: Rewinder, rounds: int) -> list[Case]:
    tracked = create_engine(urls["sandbox"])
    plain = create_engine(urls["plain"])
    raw_run, raw_close = raw_sync(plain)
    cases = [Case("dbrewind Sandbox"), Case("recipe"), Case("raw psycopg")]
    ways: list[Callable[[], None]] = [
        lambda: run_dbrewind(tracked, rewinder),
        lambda: run_recipe(plain),
        raw_run,
    ]
    try:
        for r in range(rounds + 5):
            for case, way in zip(cases, ways, strict=True):
                took = time_ms(way)
                if r >= 5:  # the first rounds warm up pools and caches
                    case.samples.append(took)
    finally:
        raw_close()
        tracked.dispose()
        plain.dispose()
    return cases


async def measure_async(urls: dict[str, URL], rewinder: Rewinder, rounds: int) -> list[Case]:
    tracked = create_async_engine(parse_url(urls["sandbox"]).async_url())
    plain = create_async_engine(parse_url(urls["plain"]).async_url())
    raw_run, raw_close = await raw_async(urls["plain"])
    cases = [Case("dbrewind AsyncSandbox"), Case("async recipe"), Case("raw asyncpg")]
    ways: list[Callable[[], Awaitable[None]]] = [
        lambda: arun_dbrewind(tracked, rewinder),
        lambda: arun_recipe(plain),
        raw_run,
    ]
    try:
        for r in range(rounds + 5):
            for case, way in zip(cases, ways, strict=True):
                took = await atime_ms(way)
                if r >= 5:
                    case.samples.append(took)
    finally:
        await raw_close()
        await tracked.dispose()
        await plain.dispose()
    return cases


def run_backend(backend: str, rounds: int) -> tuple[str, list[Check]]:
    with scratch_databases(backend, ["sandbox", "plain"]) as urls:
        rewinder = Rewinder(urls["sandbox"])
        try:
            rewinder.prepare(Base.metadata.create_all)
            plain = create_engine(urls["plain"])
            Base.metadata.create_all(plain)
            plain.dispose()
            sync_cases = measure_sync(urls, rewinder, rounds)
            async_cases = asyncio.run(measure_async(urls, rewinder, rounds))
            leaked = rewinder.dirty_tables()
            if leaked:
                raise SystemExit(f"tables left dirty after the sandboxed runs: {leaked}")
        finally:
            rewinder.close()
    report = "\n".join(
        [
            f"### {backend} — {rounds} rounds, a test writing {ROWS} rows and reading them back",
            "",
            cases_table("Sync: one whole test", sync_cases, sync_cases[1]),
            "",
            cases_table("Async: one whole test", async_cases, async_cases[1]),
        ]
    )
    checks = [
        Check(
            backend,
            "Sandbox vs recipe",
            sync_cases[0].median / sync_cases[1].median,
            "<=",
            TARGET,
            "x",
        ),
        Check(
            backend,
            "AsyncSandbox vs async recipe",
            async_cases[0].median / async_cases[1].median,
            "<=",
            TARGET,
            "x",
        ),
    ]
    return report, checks


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], default_rounds=200)
    parser.set_defaults(backends="postgresql")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    try:
        import dbrewind.sandbox  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"dbrewind.sandbox cannot be imported ({exc}); nothing to compare."
        ) from exc
    reports: list[str] = []
    checks: list[Check] = []
    for backend in selected_backends(args.backends, allowed=("postgresql",)):
        print(f"measuring {backend} ...", file=sys.stderr)
        report, found = run_backend(backend, rounds)
        reports.append(report)
        checks += found
    print("\n\n".join(reports))
    print("\n### Targets\n")
    print(checks_table(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
