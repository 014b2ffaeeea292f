"""The pytest plugin ``bench_peewee_async.py`` loads into peewee-async's own test suite.

Loaded with ``-p _peewee_async_plugin`` (``benchmarks/`` on ``PYTHONPATH``), it leaves
the peer's code as it is and, from environment variables the benchmark sets:

- ``DBREWIND_PA_CLASS``: ``peewee_async`` or ``dbrewind``, the ``TransactionTestCase``
  the suite's ``tests/conftest.py`` uses for its ``use_transaction`` tests (set on
  that module when pytest registers it, whatever its import line says);
- ``DBREWIND_PA_POSTGRES_DB``, ``DBREWIND_PA_MYSQL_DB``, ``DBREWIND_PA_SQLITE_FILE``:
  the databases the suite connects to instead of its defaults (``postgres``, ``mysql``,
  ``test.sqlite``), and MariaDB's password (``DBREWIND_PA_MYSQL_PASSWORD``, default none);
- ``DBREWIND_PA_TIMINGS``: the JSON file written at the end, one record a test:
  its node id, backend (the ``db`` parameter), whether it is a ``use_transaction``
  test, its outcome, its place in the run (``order``, from 1) and its setup, call and
  teardown durations in seconds.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_records: dict[str, dict[str, Any]] = {}


def _transaction_test_case() -> Any:
    which = os.environ.get("DBREWIND_PA_CLASS", "dbrewind")
    if which == "peewee_async":
        from peewee_async.testing import TransactionTestCase

        return TransactionTestCase
    if which == "dbrewind":
        from dbrewind.peewee_async import TransactionTestCase as Drop_in

        return Drop_in
    raise pytest.UsageError(f"DBREWIND_PA_CLASS must be peewee_async or dbrewind, not {which!r}")


def _point_at_databases() -> None:
    from tests import db_config  # the peer's own configuration module

    names = {
        "DBREWIND_PA_POSTGRES_DB": (db_config.PG_DEFAULTS, db_config.PSYCOPG_DEFAULTS),
        "DBREWIND_PA_MYSQL_DB": (db_config.MYSQL_DEFAULTS,),
        "DBREWIND_PA_SQLITE_FILE": (db_config.SQLITE_DEFAULTS,),
    }
    for variable, configs in names.items():
        value = os.environ.get(variable)
        if value:
            for config in configs:
                config["database"] = value
    db_config.MYSQL_DEFAULTS["password"] = os.environ.get("DBREWIND_PA_MYSQL_PASSWORD", "")


def pytest_configure(config: pytest.Config) -> None:
    _point_at_databases()


def pytest_plugin_registered(plugin: Any) -> None:
    path = str(getattr(plugin, "__file__", "") or "").replace(os.sep, "/")
    if path.endswith("tests/conftest.py") and hasattr(plugin, "TransactionTestCase"):
        plugin.TransactionTestCase = _transaction_test_case()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        _records[item.nodeid] = {
            "backend": params.get("db"),
            "transaction": item.get_closest_marker("use_transaction") is not None,
            "outcome": "passed",
            "setup": 0.0,
            "call": 0.0,
            "teardown": 0.0,
        }


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record = _records.get(report.nodeid)
    if record is None:
        return
    record[report.when] = report.duration
    if not record.get("ran"):
        record["ran"] = True
        record["order"] = sum(1 for r in _records.values() if r.get("ran"))
    if report.failed:
        record["outcome"] = "failed"
    elif report.skipped and record["outcome"] == "passed":
        record["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("DBREWIND_PA_TIMINGS")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({k: v for k, v in _records.items() if v.get("ran")}, out)  # -k, -m
