"""The example shop's suite (``examples/shop``), run as its users run it, on every database.

The shop is a small real application: SQLAlchemy models with soft deletes, Alembic
migrations that load its reference data, services that commit, an async FastAPI app
with a background task, a CLI. Its suite uses dbrewind's fixtures, factories and
assertions, and has one test per trade-off of the rollback sandbox (another
connection, a uvicorn thread, a subprocess, ``SELECT .. FOR UPDATE``, a sync test
client). It is copied to a new folder and run three times on one test database: in
random order, under ``pytest-xdist`` in another order, and once more with
``--dbrewind-verify``. The first run builds the template, the others reuse it. Every run
passes with no leak, and afterwards each database it used holds only the reference data
the migrations loaded.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS, require_backend
from helpers.runs import drop_derived, observe, pytest_args, start

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"

REFERENCE = {"currencies": 6, "countries": 8, "categories": 5, "alembic_version": 1}
"""The tables the migrations fill, and how many rows each holds at the baseline."""
APPLICATION = ["organisations", "users", "products", "orders", "order_lines", "notifications"]
"""The tables the tests write: empty at the baseline."""
TESTS = 73
"""How many tests the suite has (one, a row-lock wait, is skipped on SQLite)."""
RUN_LIMIT = 150.0
"""Seconds one run may take (they take 5-20)."""


@pytest.fixture
def shop_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """A test database for the shop no one uses yet, ``shop_test_<hex>`` (its suite's
    runs create it); dropped after with what was derived from it (template, clones)."""
    require_backend(backend)
    name = f"shop_test_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'dbs' / (name + '.db')}")
        return
    url = make_url(SERVER_URLS[backend]).set(database=name)
    try:
        yield url
    finally:
        drop_derived(backend, url)


def _copy(where: Path) -> Path:
    shutil.copytree(
        SHOP,
        where,
        ignore=shutil.ignore_patterns(
            "__pycache__", "*.db", "*.lock", ".pytest_cache", ".dbrewind"
        ),
    )
    return where


def _worker_url(url: URL, backend: str, worker: str) -> URL:
    database = str(url.database)
    if backend == "sqlite":
        path = Path(database)
        return url.set(database=str(path.with_name(f"{path.stem}_{worker}.db")))
    return url.set(database=f"{database}_{worker}")


def test_the_shop_passes_run_after_run_and_leaves_only_its_reference_data(
    backend: str, tmp_path: Path, shop_url: URL
) -> None:
    project = _copy(tmp_path / "project")
    if backend == "sqlite":
        (tmp_path / "dbs").mkdir()
    strict = ("-W", "error::dbrewind.DbrewindWarning", "--dbrewind-strict")
    runs = [
        pytest_args(shop_url, *strict, seed=11),
        pytest_args(shop_url, *strict, "-n", "2", seed=12),
        pytest_args(shop_url, *strict, "--dbrewind-verify", seed=13),
    ]
    skipped = 1 if backend == "sqlite" else 0
    counters = None
    for number, args in enumerate(runs):
        began = time.monotonic()
        code, out = start(project, args, env={"SHOP_DATABASE_URL": ""}).finish(
            timeout=RUN_LIMIT + 60
        )
        took = time.monotonic() - began
        assert code == 0, out
        summary = re.search(r"=* ?(\d+ passed.*) in [\d.]+s", out)
        assert summary is not None, out
        expected = f"{TESTS - skipped} passed" + (f", {skipped} skipped" if skipped else "")
        assert summary.group(1) == expected, out
        assert took < RUN_LIMIT, f"a run took {took:.0f} s:\n{out}"
        prepared = re.search(r"templates built (\d+), reused (\d+)", out)
        assert prepared is not None, out
        assert prepared.group(1) == ("1" if number == 0 else "0"), out  # then kept
        databases = [shop_url]
        if "-n" in args:
            databases = [_worker_url(shop_url, backend, w) for w in ("gw0", "gw1")]
        for url in databases:
            seen = observe(url, [*REFERENCE, *APPLICATION])
            assert seen.at_rest, (url, seen.tracking)
            assert {t: len(seen.rows[t]) for t in REFERENCE} == REFERENCE, (url, seen.rows)
            assert {t: seen.rows[t] for t in APPLICATION} == {t: [] for t in APPLICATION}, (
                url,
                seen.rows,
            )
            if counters is None:
                counters = seen.counters
            assert seen.counters == counters, (url, seen.counters, counters)
