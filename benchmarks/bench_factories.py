"""Factories: ``create_many(1000)`` against the bulk insert a user writes by hand, side by side.

Run::

    python benchmarks/bench_factories.py                     # all backends, 15 rounds
    python benchmarks/bench_factories.py --backends sqlite --rounds 30
    python benchmarks/bench_factories.py --quick             # smoke run, rough numbers

Each round inserts 1,000 users (name, unique email, a flag with a Python-side
default) in a transaction that is rolled back afterwards (untimed), by:

* **create_many** — ``UserFactory.create_many(1000, session=session)``: defaults
  from the factory (a sequence, a lazy email), one flush; the models come back
  with their ids;
* **add_all + flush** — ``session.add_all([User(...) for ...]); session.flush()``:
  the same models written by hand, ids back too;
* **execute(insert)** — ``session.execute(insert(User), rows)`` with the rows as
  dicts: SQLAlchemy's ORM bulk INSERT, no objects and no ids back (the floor);
* **insert..returning(User)** — ``session.scalars(insert(User).returning(User,
  sort_by_parameter_order=True), rows)``: the ORM bulk INSERT that gives the models
  back, in the rows' order (shown, unchecked).

Sync ``Session`` and ``AsyncSession`` (asyncpg, aiomysql, aiosqlite), each on
PostgreSQL, MariaDB/MySQL and SQLite (a file). Building the rows is timed with
each way, as a test pays it. The three ways run interleaved round by round, in a
rotating order, so drift hits them alike; two warm-up rounds are not counted.
The output is markdown: medians, ratios, and PASS/FAIL against the target,
``create_many`` <= 1.5x the hand-written ``add_all + flush`` (the same work: models
in the session with their ids). Its ratio to ``execute(insert)`` is shown beside it,
unchecked: that way builds no objects and reads no ids back (one executemany), which
``create_many``, returning the models, cannot skip.

How the rows travel (the ORM's flush, for ``create_many`` and ``add_all + flush``
alike): PostgreSQL and MariaDB 10.5+ send multi-row ``INSERT .. RETURNING``
batches (the autoincrementing key matches rows to objects); SQLite has RETURNING
but no such sentinel, so one ``INSERT`` a row (in-process, no round trip); MySQL
has no RETURNING, one ``INSERT`` a row as well.
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
    finish,
    fmt_ms,
    scratch_databases,
    selected_backends,
    time_ms,
)
from sqlalchemy import String, create_engine, insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dbrewind import parse_url
from dbrewind.factories import ModelFactory, lazy

__all__ = ["main"]

ROWS = 1000
TARGET = 1.5
WARMUP = 2


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)


class UserFactory(ModelFactory[User]):
    __model__ = User

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        seq = cls._next_seq()
        return {"name": f"User {seq}", "email": lazy(lambda a: f"user{seq}@test.invalid")}


def hand_rows(start: int) -> list[dict[str, Any]]:
    return [
        {"name": f"User {i}", "email": f"user{i}@test.invalid"} for i in range(start, start + ROWS)
    ]


def hand_models(start: int) -> list[User]:
    return [
        User(name=f"User {i}", email=f"user{i}@test.invalid") for i in range(start, start + ROWS)
    ]


RETURNING = insert(User).returning(User, sort_by_parameter_order=True)


def _cases() -> dict[str, Case]:
    return {
        "factory": Case("create_many"),
        "add_all": Case("add_all + flush"),
        "insert": Case("execute(insert)"),
        "returning": Case("insert..returning(User)"),
    }


# ------------------------------------------------------------------ sync
def measure_sync(url: URL, rounds: int) -> dict[str, Case]:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    cases = _cases()
    counter = [0]

    def factory(session: Session) -> None:
        users = UserFactory.create_many(ROWS, session=session)
        assert users[-1].id is not None

    def add_all(session: Session) -> None:
        counter[0] += ROWS
        users = hand_models(counter[0])
        session.add_all(users)
        session.flush()
        assert users[-1].id is not None

    def bulk(session: Session) -> None:
        counter[0] += ROWS
        session.execute(insert(User), hand_rows(counter[0]))

    def returning(session: Session) -> None:
        counter[0] += ROWS
        users = session.scalars(RETURNING, hand_rows(counter[0])).all()
        assert users[-1].id is not None

    ways: list[tuple[str, Callable[[Session], None]]] = [
        ("factory", factory),
        ("add_all", add_all),
        ("insert", bulk),
        ("returning", returning),
    ]
    try:
        for r in range(rounds + WARMUP):
            order = ways[r % len(ways) :] + ways[: r % len(ways)]
            for key, way in order:
                with Session(engine) as session:
                    session.begin()
                    elapsed = time_ms(lambda way=way, session=session: way(session))  # type: ignore[misc]
                    session.rollback()
                if r >= WARMUP:
                    cases[key].samples.append(elapsed)
    finally:
        engine.dispose()
    return cases


# ----------------------------------------------------------------- async
async def measure_async(url: URL, rounds: int) -> dict[str, Case]:
    engine = create_async_engine(parse_url(url).async_url())
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    cases = _cases()
    counter = [0]

    async def factory(session: AsyncSession) -> None:
        users = await UserFactory.create_many(ROWS, session=session)
        assert users[-1].id is not None

    async def add_all(session: AsyncSession) -> None:
        counter[0] += ROWS
        users = hand_models(counter[0])
        session.add_all(users)
        await session.flush()
        assert users[-1].id is not None

    async def bulk(session: AsyncSession) -> None:
        counter[0] += ROWS
        await session.execute(insert(User), hand_rows(counter[0]))

    async def returning(session: AsyncSession) -> None:
        counter[0] += ROWS
        users = (await session.scalars(RETURNING, hand_rows(counter[0]))).all()
        assert users[-1].id is not None

    ways: list[tuple[str, Callable[[AsyncSession], Awaitable[None]]]] = [
        ("factory", factory),
        ("add_all", add_all),
        ("insert", bulk),
        ("returning", returning),
    ]
    loop = asyncio.get_running_loop()
    try:
        for r in range(rounds + WARMUP):
            order = ways[r % len(ways) :] + ways[: r % len(ways)]
            for key, way in order:
                async with AsyncSession(engine, expire_on_commit=False) as session:
                    await session.begin()
                    started = loop.time()
                    await way(session)
                    elapsed = (loop.time() - started) * 1000
                    await session.rollback()
                if r >= WARMUP:
                    cases[key].samples.append(elapsed)
    finally:
        await engine.dispose()
    return cases


# ------------------------------------------------------------------- run
def report(backend: str, flavour: str, cases: dict[str, Case]) -> tuple[str, Check]:
    factory, add_all, bulk = cases["factory"], cases["add_all"], cases["insert"]
    table = cases_table(
        f"{backend}, {flavour}: {ROWS:,} users in one call", list(cases.values()), add_all
    )
    floor = factory.median / bulk.median if bulk.median else float("nan")
    back = cases["returning"].median
    text = (
        f"{table}\n\ncreate_many is {floor:.2f}x execute(insert) "
        f"({fmt_ms(factory.median)} ms against {fmt_ms(bulk.median)} ms), "
        f"{factory.median / back:.2f}x insert..returning(User)."
    )
    check = Check(
        backend,
        f"{flavour} create_many vs add_all + flush",
        factory.median / add_all.median,
        "<=",
        TARGET,
        "x",
    )
    return text, check


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], default_rounds=15)
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    reports: list[str] = [f"### create_many({ROWS}) against hand-written inserts, {rounds} rounds"]
    checks: list[Check] = []
    for backend in selected_backends(args.backends):
        print(f"measuring {backend} ...", file=sys.stderr)
        with scratch_databases(backend, ["sync", "async"]) as urls:
            for flavour, cases in (
                ("sync Session", measure_sync(urls["sync"], rounds)),
                ("AsyncSession", asyncio.run(measure_async(urls["async"], rounds))),
            ):
                text, check = report(backend, flavour, cases)
                reports.append(text)
                checks.append(check)
    return finish(reports, checks)


if __name__ == "__main__":
    raise SystemExit(main())
