"""A pytest plugin that records what each reliability test tried and what came of it.

Loaded by ``scripts/reliability.py`` as ``-p _reliability_record`` (with this
folder on ``PYTHONPATH``); it writes a JSON list to the file named by
``RELIABILITY_RECORD``, one entry per test: its section (the first line of its
module's docstring), what it tried (the first line of its own docstring), the
``backend`` it ran on, its outcome and the ``record_property("result", ...)``
it left. Under pytest-xdist the workers attach this to their reports and the
controller writes the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

import pytest

ATTRIBUTE = "reliability"


def first_line(doc: str | None) -> str:
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip().rstrip(".")
    return ""


def _describe(item: pytest.Item) -> dict[str, Any]:
    module = getattr(item, "module", None)
    function = getattr(item, "function", None)
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("backend") if callspec is not None else None
    path, line, _ = item.location
    return {
        "path": path,
        "line": line if line is not None else 0,
        "section": first_line(getattr(module, "__doc__", None)) or path,
        "tried": first_line(getattr(function, "__doc__", None)) or item.name,
        "backend": backend if isinstance(backend, str) else None,
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    setattr(report, ATTRIBUTE, _describe(item))


def _message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, (tuple, list)):  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(longrepr or "")
    return text.strip().splitlines()[0] if text.strip() else ""


class Recorder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.tests: dict[str, dict[str, Any]] = {}
        self.collection_errors: list[dict[str, Any]] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(
                {
                    "nodeid": report.nodeid,
                    "path": report.nodeid.split("::")[0],
                    "line": 0,
                    "section": report.nodeid.split("::")[0],
                    "tried": "the module is collected",
                    "backend": None,
                    "outcome": "failed",
                    "message": _message(report),  # type: ignore[arg-type]
                    "result": None,
                }
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        meta = getattr(report, ATTRIBUTE, None)
        if meta is None:
            return
        entry = self.tests.setdefault(
            report.nodeid,
            {"nodeid": report.nodeid, **meta, "outcome": "passed", "message": "", "result": None},
        )
        for name, value in report.user_properties:
            if name == "result":
                entry["result"] = str(value)
        if hasattr(report, "wasxfail"):
            entry["outcome"] = "failed"
            entry["message"] = f"known failure (xfail): {report.wasxfail}"
        elif report.failed:
            if entry["outcome"] != "failed":
                entry["outcome"] = "failed"
                where = "" if report.when == "call" else f"in {report.when}: "
                entry["message"] = where + _message(report)
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"
            entry["message"] = _message(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        with open(self.path, "w") as out:
            json.dump({"tests": [*self.collection_errors, *self.tests.values()]}, out, indent=1)


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("RELIABILITY_RECORD")
    if path and not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        config.pluginmanager.register(Recorder(path), "reliability-recorder")
