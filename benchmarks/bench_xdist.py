"""The pytest plugin under pytest-xdist: a 200-test suite on ``-n 2`` against ``-n 0``.

Run::

    python benchmarks/bench_xdist.py                       # all backends, 5 rounds
    python benchmarks/bench_xdist.py --backends postgresql --rounds 3
    python benchmarks/bench_xdist.py --quick               # smoke run: 2 rounds

The script writes a small shop application's test suite into a temporary
directory: ``bench_models.py`` (five tables in SQLAlchemy metadata, set up with
``dbrewind.setup.metadata_setup`` through ini ``dbrewind_setup``), a
``conftest.py`` with a pure-Python fixture, and 10 test modules of 20 tests.
In each module 16 tests use ``db_session`` (the rollback sandbox: an order with
its lines, a restock through a bulk UPDATE, a customer search with GROUP BY, a
cancellation that commits into a savepoint) and 4 use ``transactional_db``
(real commits, rewound after the test). Every test first checks that the
tables it reads start empty, then does a few milliseconds of database work
and a little Python.

The same tests run under two conftests: **dbrewind** (the plugin's fixtures,
a prepared template and one clone per process) and **hand-written** per-worker
databases, what a team writes for xdist without a tool: each process creates
``<base>_<worker_id>`` and its tables at session start (``-p no:dbrewind``),
``db_session`` is the seed-004 recipe, and every table is emptied after a
``transactional_db`` test (PostgreSQL one ``TRUNCATE .. RESTART IDENTITY
CASCADE``, MariaDB one ``TRUNCATE`` per table, SQLite ``DELETE``).

Each suite runs in a subprocess, ``python -m pytest -p no:randomly -q``, with
``-n 0`` and with ``-n 2`` (pytest-xdist). First one untimed run of each
(builds dbrewind's template and each process's clone: later runs are warm
starts, as in daily use), then ``--rounds`` timed runs of each, alternating.
Wall time covers the whole command: interpreter start, collection, worker
start-up, the tests. The output is markdown: medians, each suite's speed-up
(its own ``-n 0`` wall over its ``-n 2``), the plugin's own summary figures
(time preparing databases, time isolating tests), and the targets: dbrewind's
speed-up at least 1.6x, and at least the hand-written databases' speed-up.

The subprocess runs with Python's defaults: ``PYTHONDONTWRITEBYTECODE`` is
removed from its environment (so bytecode and pytest's rewritten test modules
are cached on disk, as on a developer's machine), and so are ``DBREWIND_URL``
and ``PYTEST_ADDOPTS``. Anything else running on the machine skews the ratio;
the report shows the load average and the CPU time of the pytest processes.

Databases are named ``dbrewind_xbench_<hex>_test``; the plugin derives the
template ``<name>_tmpl_<fp8>`` and the worker clones ``<name>_gw0``,
``<name>_gw1`` from it. Every database whose name starts with the base name
is dropped at the end (also after an error or Ctrl-C); SQLite files live in
the temporary directory, removed with it.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    SERVER_URLS,
    SINK,
    Check,
    base_parser,
    drop_databases,
    finish,
    selected_backends,
    subprocess_env,
)

__all__ = ["main"]

TARGET = 1.6
MODULES = 10
MODES = ("-n 0", "-n 2")

TEST_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1/{name}",
    "mysql": "mysql+pymysql://root@127.0.0.1/{name}",
}

# ------------------------------------------------------------------ the inner suite

MODELS = '''
"""The shop's tables."""

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dbrewind.setup import metadata_setup


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    country: Mapped[str] = mapped_column(String(2), index=True)
    orders: Mapped[list["Order"]] = relationship(back_populates="customer")


class Product(Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    price_cents: Mapped[int]
    stock: Mapped[int] = mapped_column(default=0)


class Order(Base):
    __tablename__ = "order"  # a reserved word, as real schemas have

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    total_cents: Mapped[int] = mapped_column(default=0)
    customer: Mapped[Customer] = relationship(back_populates="orders")
    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    __tablename__ = "order_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    quantity: Mapped[int]
    price_cents: Mapped[int]
    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    payload: Mapped[str] = mapped_column(String(255))


create_schema = metadata_setup(Base.metadata)
'''

CONFTEST = '''
import pytest


@pytest.fixture
def catalog():
    """Product specs the tests put on sale (pure Python, no database)."""
    return [
        {"sku": f"SKU-{n:04d}", "title": f"Widget model {n}", "price_cents": 199 + 37 * n}
        for n in range(8)
    ]
'''

TEST_MODULE = """
import json

import pytest
from sqlalchemy import func, select, text, update

from bench_models import AuditEvent, Customer, Order, OrderLine, Product

MODULE = {module}


def _empty(session):
    counts = [session.scalar(select(func.count()).select_from(t)) for t in (Customer, Order)]
    assert counts == [0, 0], f"the test did not start from the baseline: {{counts}}"


def _customer(session, k, n=0):
    customer = Customer(
        email=f"c{{MODULE}}-{{k}}-{{n}}@example.com", name=f"Customer {{n}}", country="NL"
    )
    session.add(customer)
    return customer


def _order(session, customer, products, k):
    order = Order(customer=customer)
    for i, product in enumerate(products):
        order.lines.append(
            OrderLine(product=product, quantity=1 + (i + k) % 3, price_cents=product.price_cents)
        )
    order.total_cents = sum(line.quantity * line.price_cents for line in order.lines)
    session.add(order)
    return order


@pytest.mark.parametrize("k", range(4))
def test_place_order_totals_its_lines(db_session, catalog, k):
    _empty(db_session)
    products = [Product(stock=10, **spec) for spec in catalog[: 3 + k]]
    db_session.add_all(products)
    order = _order(db_session, _customer(db_session, k), products, k)
    db_session.flush()
    total = db_session.scalar(
        select(func.sum(OrderLine.quantity * OrderLine.price_cents)).where(
            OrderLine.order_id == order.id
        )
    )
    assert total == order.total_cents
    by_title = sorted(
        db_session.execute(
            select(Product.title, OrderLine.quantity)
            .join(OrderLine, OrderLine.product_id == Product.id)
            .where(OrderLine.order_id == order.id)
        ).all()
    )
    assert [title for title, _ in by_title] == sorted(p.title for p in products)


@pytest.mark.parametrize("k", range(4))
def test_restock_raises_low_stock_products(db_session, catalog, k):
    _empty(db_session)
    db_session.add_all(
        [Product(stock=(i * 3 + k) % 7, **spec) for i, spec in enumerate(catalog)]
    )
    db_session.flush()
    low = db_session.scalars(select(Product.id).where(Product.stock < 3)).all()
    db_session.execute(update(Product).where(Product.id.in_(low)).values(stock=Product.stock + 20))
    stocks = db_session.scalars(select(Product.stock).order_by(Product.sku)).all()
    assert len(stocks) == len(catalog)
    assert min(stocks) >= 3
    db_session.add(AuditEvent(kind="restock", payload=json.dumps({{"products": len(low)}})))
    db_session.flush()
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) == 1


@pytest.mark.parametrize("k", range(4))
def test_customer_search_filters_and_groups(db_session, k):
    _empty(db_session)
    countries = ["NL", "DE", "FR", "BE"]
    db_session.add_all(
        [
            Customer(
                email=f"s{{MODULE}}-{{k}}-{{n}}@example.com",
                name=f"{{'Ada' if n % 3 == 0 else 'Bob'}} {{n}}",
                country=countries[(n + k) % 4],
            )
            for n in range(12)
        ]
    )
    db_session.flush()
    adas = db_session.scalars(
        select(Customer).where(Customer.name.like("Ada%")).order_by(Customer.email).limit(10)
    ).all()
    assert len(adas) == 4
    per_country = dict(
        db_session.execute(
            select(Customer.country, func.count()).group_by(Customer.country)
        ).all()
    )
    assert sum(per_country.values()) == 12 and set(per_country) == set(countries)


@pytest.mark.parametrize("k", range(4))
def test_cancelling_an_order_removes_its_lines(db_session, catalog, k):
    _empty(db_session)
    products = [Product(stock=5, **spec) for spec in catalog[k : k + 4]]
    db_session.add_all(products)
    order = _order(db_session, _customer(db_session, k), products, k)
    db_session.commit()  # the application commits: a savepoint in the sandbox
    order.lines.clear()
    order.status = "cancelled"
    order.total_cents = 0
    db_session.add(AuditEvent(kind="cancel", payload=f"order {{order.id}}"))
    db_session.commit()
    assert db_session.scalar(select(func.count()).select_from(OrderLine)) == 0
    assert db_session.scalar(select(Order.status).where(Order.id == order.id)) == "cancelled"


@pytest.mark.parametrize("k", range(4))
def test_committed_signups_are_visible_to_a_new_transaction(transactional_db, k):
    conn = transactional_db
    with conn.begin():
        assert conn.execute(text("SELECT COUNT(*) FROM customer")).scalar_one() == 0
    with conn.begin():
        conn.execute(
            Customer.__table__.insert(),
            [
                {{"email": f"t{{MODULE}}-{{k}}-{{n}}@example.com", "name": "T", "country": "SE"}}
                for n in range(5)
            ],
        )
        conn.execute(
            AuditEvent.__table__.insert(), {{"kind": "signup", "payload": json.dumps([k] * 5)}}
        )
    with conn.begin():
        rows = conn.execute(select(Customer.email).order_by(Customer.email)).scalars().all()
        events = conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    assert len(rows) == 5 and rows == sorted(rows)
    assert events == 1
"""

INI = """
[pytest]
pythonpath = .
dbrewind_url = {url}
dbrewind_setup = bench_models:create_schema
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

HAND_INI = """
[pytest]
pythonpath = .
addopts = -p no:dbrewind
"""

HAND_CONFTEST = '''
"""Hand-written per-worker databases: each xdist worker creates its own database
(<base>_gw0, <base>_gw1; <base>_master without xdist) and its tables at session
start, and drops it at the end. db_session is the seed-004 recipe; after a
transactional_db test every table is emptied, as such conftests do."""

import os

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench_models import Base

SERVER = os.environ["HAND_SERVER_URL"]
BASE = os.environ["HAND_DB_BASE"]
SQLITE = SERVER.startswith("sqlite")


@pytest.fixture(scope="session")
def engine(worker_id):
    name = f"{{BASE}}_{{worker_id}}"
    if SQLITE:
        path = os.path.join(os.environ["HAND_SQLITE_DIR"], f"{{name}}.db")
        if os.path.exists(path):
            os.remove(path)
        url = f"sqlite:///{{path}}"
    else:
        admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {{name}}"))
            conn.execute(text(f"CREATE DATABASE {{name}}"))
        url = make_url(SERVER).set(database=name)
    engine = create_engine(url)
    if SQLITE:  # SQLAlchemy's documented pysqlite workaround, for savepoints

        @event.listens_for(engine, "connect")
        def do_connect(dbapi_connection, connection_record):
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def do_begin(conn):
            conn.exec_driver_sql("BEGIN")

    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    if not SQLITE:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {{name}}"))
        admin.dispose()


@pytest.fixture
def db_session(engine):
    with engine.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        yield session
        session.close()
        trans.rollback()


@pytest.fixture
def transactional_db(engine):
    with engine.connect() as conn:
        yield conn
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f\'"{{t.name}}"\' for t in tables)
            conn.exec_driver_sql(f"TRUNCATE {{names}} RESTART IDENTITY CASCADE")
        elif engine.dialect.name == "mysql":
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for t in tables:
                conn.exec_driver_sql(f"TRUNCATE TABLE `{{t.name}}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        else:
            for t in tables:
                conn.exec_driver_sql(f\'DELETE FROM "{{t.name}}"\')
'''

TESTS_PER_RUN = MODULES * 20
CONTENDERS = ("dbrewind", "hand-written")


def write_suite(folder: Path, url: str, contender: str = "dbrewind") -> None:
    if contender == "dbrewind":
        (folder / "pytest.ini").write_text(INI.format(url=url).lstrip())
        conftest = CONFTEST
    else:
        (folder / "pytest.ini").write_text(HAND_INI.lstrip())
        conftest = CONFTEST + HAND_CONFTEST.format()
    (folder / "bench_models.py").write_text(MODELS.lstrip())
    (folder / "conftest.py").write_text(conftest.lstrip())
    for module in range(MODULES):
        (folder / f"test_shop_{module:02d}.py").write_text(
            TEST_MODULE.format(module=module).lstrip()
        )


# ------------------------------------------------------------------- running it


@dataclass
class Run:
    """One run of the inner suite."""

    mode: str
    wall: float
    cpu: float
    """user + system seconds of the pytest processes (not the database server's)"""
    pytest_seconds: float
    prepare_ms: float | None
    isolate_ms: float | None


@dataclass
class Mode:
    mode: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(float(getattr(r, attr)) for r in self.runs)


SUMMARY = re.compile(r"isolating took (\d+) ms in all, preparing (\d+) ms")
PASSED = re.compile(rf"\b{TESTS_PER_RUN} passed\b.* in ([\d.]+)s")


class SuiteFailed(Exception):
    """The inner suite did not pass: its timings would mean nothing."""


def run_suite(folder: Path, mode: str, env: dict[str, str] | None = None) -> Run:
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", *mode.split()]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=folder,
        env=subprocess_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = done.stdout + done.stderr
    passed = PASSED.search(out)
    summary = SUMMARY.search(out)
    if done.returncode != 0 or passed is None or (env is None and summary is None):
        raise SuiteFailed(
            f"the inner suite failed under {mode} (exit {done.returncode}) in {folder}:\n"
            + out[-6000:]
        )
    return Run(
        mode,
        wall,
        cpu,
        float(passed.group(1)),
        float(summary.group(2)) if summary else None,
        float(summary.group(1)) if summary else None,
    )


def run_backend(backend: str, rounds: int) -> tuple[str, list[Check]]:
    base = f"dbrewind_xbench_{uuid.uuid4().hex[:8]}_test"
    hand_base = base.replace("_test", "_hand")
    root = Path(tempfile.mkdtemp(prefix="dbrewind_xbench_"))
    folders = {c: root / c for c in CONTENDERS}
    for folder in folders.values():
        folder.mkdir()
    (root / "data").mkdir()
    if backend == "sqlite":
        url = f"sqlite:///{root / 'data' / base}.db"
    else:
        url = TEST_URLS[backend].format(name=base)
    hand_env = {
        "HAND_SERVER_URL": "sqlite://" if backend == "sqlite" else SERVER_URLS[backend],
        "HAND_DB_BASE": hand_base,
        "HAND_SQLITE_DIR": str(root / "data"),
    }
    envs: dict[str, dict[str, str] | None] = {"dbrewind": None, "hand-written": hand_env}
    modes = {(c, m): Mode(m) for c in CONTENDERS for m in MODES}
    load_before = os.getloadavg()[0]
    try:
        for contender, folder in folders.items():
            write_suite(folder, url, contender)
            for mode in MODES:  # warm start: template and each process's clone built
                run_suite(folder, mode, envs[contender])
        for i in range(rounds):
            order = [(c, m) for c in CONTENDERS for m in MODES]
            for contender, mode in order if i % 2 == 0 else reversed(order):
                run = run_suite(folders[contender], mode, envs[contender])
                modes[(contender, mode)].runs.append(run)
                print(
                    f"  {backend} round {i + 1}: {contender} {mode} {run.wall:.2f} s "
                    f"(cpu {run.cpu:.2f} s, pytest {run.pytest_seconds:.2f} s)",
                    file=sys.stderr,
                )
    finally:
        if backend != "sqlite":
            dropped = drop_databases(backend, base) + drop_databases(backend, hand_base)
            print(f"  {backend}: dropped {', '.join(dropped) or 'nothing'}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)

    lines = [
        f"**{backend}: {TESTS_PER_RUN} tests, median of {rounds} warm runs**",
        "",
        "| suite | mode | wall s | speed-up | CPU s | pytest's own s | preparing ms | "
        "isolating ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    speedups: dict[str, float] = {}
    for contender in CONTENDERS:
        serial = modes[(contender, "-n 0")]
        for mode in MODES:
            m = modes[(contender, mode)]
            speed = serial.median("wall") / m.median("wall")
            if mode == "-n 2":
                speedups[contender] = speed
            SINK.figure(backend, "wall s", m.median("wall"), "s", suite=contender, mode=mode)
            SINK.figure(backend, "speed-up", speed, "x", suite=contender, mode=mode)
            prep = _median_or_dash(m, "prepare_ms")
            iso = _median_or_dash(m, "isolate_ms")
            lines.append(
                f"| {contender} | `{mode}` | {m.median('wall'):.2f} | {speed:.2f} | "
                f"{m.median('cpu'):.2f} | {m.median('pytest_seconds'):.2f} | {prep} | {iso} |"
            )
    ours = modes[("dbrewind", "-n 2")].median("wall")
    theirs = modes[("hand-written", "-n 2")].median("wall")
    lines += [
        "",
        "speed-up: the suite's own `-n 0` wall time over this one. hand-written: per-worker "
        "databases made by the conftest, the seed-004 recipe, every table emptied after a "
        "`transactional_db` test. wall: the whole `python -m pytest` command. CPU: user + "
        "system time of the pytest processes (controller and workers; the database "
        "server's is not counted). pytest's own: the duration pytest reports. preparing: "
        "the plugin's session set-up, summed over workers. isolating: the after-test "
        f"rewinds, summed over workers. `-n 2` wall, dbrewind / hand-written: "
        f"{ours / theirs:.2f}. Load average during the runs: {load_before:.2f} at the "
        f"start, {os.getloadavg()[0]:.2f} at the end (1 min, {os.cpu_count()} CPUs).",
    ]
    checks = [
        Check(backend, "-n 2 speed-up, dbrewind", speedups["dbrewind"], ">=", TARGET, "x"),
        Check(
            backend,
            "-n 2 speed-up, dbrewind / hand-written's",
            speedups["dbrewind"] / speedups["hand-written"],
            ">=",
            1.0,
            "x",
        ),
    ]
    return "\n".join(lines), checks


def _median_or_dash(mode: Mode, attr: str) -> str:
    values = [getattr(r, attr) for r in mode.runs if getattr(r, attr) is not None]
    return f"{statistics.median(values):.0f}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], default_rounds=5)
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    if rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    print(f"{os.cpu_count()} CPUs; {TESTS_PER_RUN} tests per run", file=sys.stderr)
    reports: list[str] = []
    checks: list[Check] = []
    for backend in selected_backends(args.backends):
        print(f"measuring {backend} ...", file=sys.stderr)
        try:
            report, found = run_backend(backend, rounds)
        except SuiteFailed as exc:
            print(exc, file=sys.stderr)
            reports.append(f"**{backend}: the inner suite failed; output above (stderr)**")
            checks.append(Check(backend, "inner suite failed, not measured", 0, ">=", TARGET, "x"))
            continue
        reports.append(report)
        checks += found
    return finish(reports, checks)


if __name__ == "__main__":
    raise SystemExit(main())
