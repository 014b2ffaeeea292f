"""Tests that misbehave and runs that die

Each test here runs a whole inner pytest suite against a database the plugin
creates, makes one of its tests misbehave (raise, fail, hang until a timeout,
be interrupted, leak a connection or a transaction, leave a thread writing,
dispose of the engine, change the schema) or kills the pytest process at a
chosen point, and then checks from outside: the test after the faulty one
starts from the baseline, the database is at its baseline after the run
(rows, counters, tracking), and the next run passes and says what it repaired.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from conftest import SERVER_URLS, drop_database
from helpers.runs import Run, databases_named, pytest_args, start, wait_for_file
from helpers.suites import CONFTEST, assert_at_baseline, run_suite, write_suite

pytestmark = pytest.mark.timeout(300)

# ------------------------------------------------------------- the inner suite

# What every inner run reports, test by test: outcome of each phase and the
# warnings given, one JSON object a line (read by ``Report``).
REPORTING = """
import json
import os
import pathlib

_OUT = pathlib.Path(os.environ["FAULTS_REPORT"])


def _write(entry):
    with _OUT.open("a") as out:
        out.write(json.dumps(entry) + "\\n")


def pytest_runtest_logreport(report):
    _write({"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
            "text": report.longreprtext})


def pytest_warning_recorded(warning_message, when, nodeid, location):
    _write({"nodeid": nodeid, "warning": str(warning_message.message),
            "category": warning_message.category.__name__})
"""

# A setup that can be told to stop half-way (the template is being built).
SLOW_SETUP = """
import os
import pathlib
import time

import pytest
import schema


def _setup(conn):
    schema.setup(conn)
    checkpoint = os.environ.get("SUITE_SETUP_CHECKPOINT")
    if checkpoint:
        pathlib.Path(checkpoint + ".reached").write_text("")
        while not pathlib.Path(checkpoint + ".go").exists():
            time.sleep(0.05)


@pytest.fixture(scope="session")
def dbrewind_setup():
    return _setup
"""

HEAD = """
import os
import pathlib
import threading
import time

import pytest
import sqlalchemy as sa
from schema import items, tags

SEEDS = ["seed-1", "seed-2"]
LEAKED = []


def names(conn):
    return [r.name for r in conn.execute(items.select().order_by(items.c.id))]


def at_baseline(conn):
    tables = sorted(
        t for t in sa.inspect(conn).get_table_names() if not t.startswith("dbrewind")
    )
    assert tables == ["order", "user tags"], tables
    columns = [c["name"] for c in sa.inspect(conn).get_columns("order")]
    assert columns == ["id", "name"], columns
    assert names(conn) == SEEDS
    assert conn.execute(sa.select(sa.func.count()).select_from(tags)).scalar() == 0


def checkpoint(name):
    base = os.environ.get("SUITE_CHECKPOINT")
    if base:
        pathlib.Path(f"{base}.{name}.reached").write_text("")
        while not pathlib.Path(f"{base}.{name}.go").exists():
            time.sleep(0.05)


def commit_a_row(conn, label):
    conn.execute(items.insert().values(name=label))
    conn.execute(tags.insert().values(label=label))
    conn.execute(items.update().where(items.c.id == 1).values(name="changed"))
    conn.commit()
"""


def after(fault: str) -> str:
    """The inner test that runs right after ``test_<fault>``: the baseline, unchanged."""
    return f"""

def test_{fault}__next(transactional_db):
    at_baseline(transactional_db)
"""


FAULTS = (
    HEAD
    + '''

@pytest.fixture
def ended():
    """Set when the test's own fixtures are torn down (the test has ended)."""
    event = threading.Event()
    yield event
    event.set()


def test_raises(transactional_db):
    commit_a_row(transactional_db, "raised")
    raise RuntimeError("the application broke")
'''
    + after("raises")
    + """

def test_fails_an_assertion(db_session):
    db_session.execute(items.insert().values(name="sandboxed"))
    db_session.commit()
    assert names(db_session) == SEEDS, "the test's own assertion fails"
"""
    + after("fails_an_assertion")
    + """

@pytest.mark.timeout(2, method="signal", func_only=True)
def test_times_out_by_signal(transactional_db):
    commit_a_row(transactional_db, "timed out")
    time.sleep(30)  # the hang pytest-timeout ends
"""
    + after("times_out_by_signal")
    + """

def test_leaks_a_connection(transactional_db, db_engine):
    commit_a_row(transactional_db, "leaked")
    conn = db_engine.connect()
    conn.execute(items.insert().values(name="through the leaked connection"))
    conn.commit()
    LEAKED.append(conn)  # never closed
"""
    + after("leaks_a_connection")
    + """

def test_leaves_a_transaction_open(transactional_db, db_engine):
    commit_a_row(transactional_db, "open")
    conn = db_engine.connect()
    conn.execute(items.update().where(items.c.id == 1).values(name="uncommitted"))
    LEAKED.append(conn)  # its transaction holds a lock on the row the rewind restores
"""
    + after("leaves_a_transaction_open")
    + """

def test_thread_keeps_writing(transactional_db, db_engine, ended):
    def write_after_the_test():
        ended.wait()
        for n in range(5):
            with db_engine.begin() as conn:
                conn.execute(tags.insert().values(label=f"late {n}"))
                conn.execute(items.insert().values(name=f"late {n}"))
            time.sleep(0.05)  # a background job's pace

    commit_a_row(transactional_db, "threaded")
    threading.Thread(target=write_after_the_test, name="late-writer").start()
"""
    + after("thread_keeps_writing")
    + """

def test_disposes_the_engine(transactional_db, db_engine):
    commit_a_row(transactional_db, "before dispose")
    db_engine.dispose()
    with db_engine.begin() as conn:
        conn.execute(tags.insert().values(label="after dispose"))
"""
    + after("disposes_the_engine")
    + """

def test_disposes_the_engine_in_the_sandbox(db_session, db_engine):
    db_session.execute(items.insert().values(name="sandboxed"))
    db_session.commit()
    db_engine.dispose()
    with db_engine.begin() as conn:
        conn.execute(tags.insert().values(label="after dispose"))
    assert len(names(db_session)) == 3
"""
    + after("disposes_the_engine_in_the_sandbox")
)

DDL = {
    "create": ["CREATE TABLE {extra} (id INTEGER PRIMARY KEY)", "INSERT INTO {extra} VALUES (1)"],
    "alter": ["ALTER TABLE {order} ADD COLUMN extra INTEGER"],
    "drop": ["DROP TABLE {tags}"],
    "truncate": ["TRUNCATE TABLE {order}"],
}
STRATEGIES = {"transactional": "transactional_db", "sandbox": "db"}


def _ddl_tests() -> str:
    out = []
    for op, statements in DDL.items():
        for strategy, fixture in STRATEGIES.items():
            name = f"ddl_{op}_{strategy}"
            body = "\n".join(f"    conn.exec_driver_sql({s!r}.format(**q))" for s in statements)
            out.append(
                f"""

def test_{name}({fixture}):
    conn = {fixture}
    quote = conn.dialect.identifier_preparer.quote
    q = {{"order": quote("order"), "tags": quote("user tags"), "extra": quote("extra_t")}}
    commit_a_row(conn, "{name}")
{body}
    conn.commit()
"""
                + after(name)
            )
    return "".join(out)


FAULTS += _ddl_tests()


_SOURCE_LINE = re.compile(r"\.py:\d| = <")
"""A line of a traceback (a file and line, a local's repr), not something dbrewind said."""


@dataclass
class Report:
    """What an inner run's tests did, read from its report file."""

    phases: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Report:
        report = cls()
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            entry = json.loads(line)
            name = entry["nodeid"].rpartition("::")[2]
            if "warning" in entry:
                said = f"{entry['category']}: {entry['warning']}"
                report.warnings.setdefault(name, []).append(said)
            else:
                report.phases.setdefault(name, {})[entry["when"]] = (
                    entry["outcome"],
                    entry["text"],
                )
        return report

    def outcome(self, test: str) -> str:
        """passed, failed or error (its setup or teardown failed), as pytest counts them."""
        phases = self.phases.get(test)
        assert phases, f"{test} did not run; ran: {sorted(self.phases)}"
        if any(phases.get(p, ("passed", ""))[0] == "failed" for p in ("setup", "teardown")):
            return "error"
        return phases.get("call", ("error", ""))[0]

    def text(self, test: str) -> str:
        """What pytest said of ``test`` (each failed phase) and the warnings it got."""
        said = [t for _o, t in self.phases.get(test, {}).values() if t]
        return "\n".join(said + self.warnings.get(test, []))

    def dbrewind_said(self, test: str) -> str:
        """The first line dbrewind said of ``test``: a warning, or its failure ('' when none)."""
        lines = self.text(test).splitlines()
        errors = [line[1:] for line in lines if line.startswith("E ")] or lines
        for line in self.warnings.get(test, []) + errors:
            said = line.strip()
            if "dbrewind" in said.lower() and not _SOURCE_LINE.search(said):
                return said[:240]
        return ""


# ------------------------------------------------------------------- projects


def write_project(
    where: Path, faults: str = "", *, conftest: str = CONFTEST, ini: str = ""
) -> Path:
    """The shared inner suite (``test_app.py``) plus ``test_faults.py``; its report file."""
    write_suite(where)
    (where / "conftest.py").write_text(textwrap.dedent(conftest) + REPORTING)
    if faults:
        (where / "test_faults.py").write_text(faults)
    with (where / "pytest.ini").open("a") as out:
        out.write(ini)
    return where / "report.jsonl"


def run_faults(where: Path, url: URL, *args: str, env: dict[str, str] | None = None) -> Run:
    environment = {"FAULTS_REPORT": str(where / "report.jsonl"), **(env or {})}
    return start(where, pytest_args(url, "test_faults.py", *args), env=environment)


def next_run(where: Path, url: URL) -> str:
    """The next, unremarkable run: it passes, and leaves the database at its baseline."""
    out = run_suite(where, url, "test_app.py", env={"FAULTS_REPORT": str(where / "next.jsonl")})
    assert_at_baseline(url)
    return out


def notes(out: str) -> list[str]:
    """The ``note:`` lines of a run's dbrewind summary."""
    return [line.strip()[len("note: ") :] for line in out.splitlines() if line.startswith("note: ")]


# --------------------------------------------- one run of misbehaving tests


@dataclass
class SharedRun:
    report: Report
    output: str
    after: str
    """What went wrong after the run ('' when the database was at its baseline and the
    next run passed)."""


_RUNS: dict[str, SharedRun] = {}


@pytest.fixture(scope="module")
def _shared_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, URL]]:
    from helpers.runs import drop_derived

    made: dict[str, URL] = {}
    yield made
    for backend, url in made.items():
        drop_derived(backend, url)
    _RUNS.clear()


@pytest.fixture
def misbehaving(
    backend: str, tmp_path_factory: pytest.TempPathFactory, _shared_urls: dict[str, URL]
) -> SharedRun:
    """One inner run of every misbehaving test on ``backend`` (made once per module)."""
    if backend in _RUNS:
        return _RUNS[backend]
    import uuid

    where = tmp_path_factory.mktemp(f"faults-{backend}")
    name = f"dbrewind_{uuid.uuid4().hex[:8]}_test"
    if backend == "sqlite":
        url = URL.create("sqlite", database=str(where / "dbs" / f"{name}.db"))
    else:
        from sqlalchemy.engine import make_url

        url = make_url(SERVER_URLS[backend]).set(database=name)
    _shared_urls[backend] = url
    project = where / "project"
    report_file = write_project(project, FAULTS, ini="dbrewind_lock_timeout = 2\n")
    _code, out = run_faults(project, url).finish()
    problems = []
    try:
        assert_at_baseline(url)
        next_run(project, url)
    except AssertionError as exc:
        problems.append(str(exc))
    _RUNS[backend] = SharedRun(Report.read(report_file), out, "\n".join(problems))
    return _RUNS[backend]


def check(
    run: SharedRun,
    test: str,
    record_property: Callable[[str, object], None],
    *,
    outcome: str | tuple[str, ...],
    says: str = "",
    summary: str = "",
) -> None:
    """``test`` ended as expected, the test after it started from the baseline, the
    database was at its baseline after the run and the next run passed."""
    __tracebackhide__ = True
    report = run.report
    got = report.outcome(test)
    said = report.dbrewind_said(test)
    if summary:
        said = next((n for n in notes(run.output) if summary in n), said)
    next_ok = report.outcome(f"{test}__next") == "passed"
    record_property(
        "result",
        f"test {got}; "
        + (f"dbrewind: {said}; " if said else "")
        + ("next test at the baseline" if next_ok else "NEXT TEST NOT AT THE BASELINE"),
    )
    expected = (outcome,) if isinstance(outcome, str) else outcome
    assert got in expected, report.text(test)
    assert next_ok, report.text(f"{test}__next")
    if says:
        assert says in report.text(test), report.text(test)
    if summary:
        assert any(summary in n for n in notes(run.output)), run.output
    assert not run.after, run.after


# ------------------------------------------------------- misbehaving tests


def test_a_test_that_raises(misbehaving: SharedRun, record_property: Callable[..., None]) -> None:
    """A test raises an exception after committing writes."""
    check(misbehaving, "test_raises", record_property, outcome="failed", says="RuntimeError")


def test_a_test_that_fails_an_assertion(
    misbehaving: SharedRun, record_property: Callable[..., None]
) -> None:
    """A test fails an assertion after writing in the rollback sandbox."""
    check(misbehaving, "test_fails_an_assertion", record_property, outcome="failed")


def test_a_test_killed_by_pytest_timeout_signal_method(
    misbehaving: SharedRun, record_property: Callable[..., None]
) -> None:
    """A test hangs after committing and pytest-timeout (signal method) ends it."""
    check(
        misbehaving, "test_times_out_by_signal", record_property, outcome="failed", says="Timeout"
    )


def test_a_test_that_leaks_a_connection(
    misbehaving: SharedRun, record_property: Callable[..., None]
) -> None:
    """A test leaves a connection it checked out of db_engine open (never closed)."""
    check(
        misbehaving,
        "test_leaks_a_connection",
        record_property,
        outcome="passed",
        says="left 1 connection(s)",
    )


def test_a_test_that_leaves_a_transaction_open(
    misbehaving: SharedRun, record_property: Callable[..., None]
) -> None:
    """A test leaves a db_engine connection with an open transaction holding row locks."""
    check(
        misbehaving,
        "test_leaves_a_transaction_open",
        record_property,
        outcome="passed",
        says="left 1 connection(s)",
    )


def test_a_background_thread_that_keeps_writing_after_its_test(
    misbehaving: SharedRun, record_property: Callable[..., None]
) -> None:
    """A background thread the test started keeps writing after the test ended."""
    check(
        misbehaving,
        "test_thread_keeps_writing",
        record_property,
        outcome="passed",
        summary="left thread(s) 'late-writer' running; dbrewind waited",
    )


def test_the_application_disposes_the_engine_mid_test(
    misbehaving: SharedRun, record_property: Callable[..., None]
) -> None:
    """The application calls engine.dispose() in the middle of a transactional test."""
    check(misbehaving, "test_disposes_the_engine", record_property, outcome="passed")


def test_the_application_disposes_the_engine_in_the_sandbox(
    misbehaving: SharedRun, record_property: Callable[..., None]
) -> None:
    """The application calls engine.dispose() in the middle of a sandboxed test."""
    check(misbehaving, "test_disposes_the_engine_in_the_sandbox", record_property, outcome="passed")


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("op", list(DDL))
def test_ddl_inside_a_test(
    misbehaving: SharedRun,
    record_property: Callable[..., None],
    backend: str,
    op: str,
    strategy: str,
) -> None:
    """DDL inside a test (CREATE, ALTER, DROP, TRUNCATE TABLE) under each strategy."""
    if op == "truncate" and backend == "sqlite":
        pytest.skip("SQLite has no TRUNCATE")
    test = f"test_ddl_{op}_{strategy}"
    if strategy == "sandbox" and backend == "mysql":
        # MySQL commits DDL implicitly: the sandbox refuses it, saying what to use instead
        check(
            misbehaving,
            test,
            record_property,
            outcome=("failed", "error"),
            says="transactional=True",
        )
    else:
        check(misbehaving, test, record_property, outcome="passed")


# ------------------------------ a transaction left open where dbrewind cannot see

OPEN_ELSEWHERE = (
    HEAD
    + """

def test_leaves_a_transaction_open_on_its_own_engine(transactional_db, db_url):
    commit_a_row(transactional_db, "own engine")
    engine = sa.create_engine(db_url)
    conn = engine.connect()
    conn.execute(items.update().where(items.c.id == 1).values(name="uncommitted"))
    LEAKED.append((engine, conn))  # an engine dbrewind never saw, never closed
"""
    + after("leaves_a_transaction_open_on_its_own_engine")
)


def test_a_transaction_left_open_on_an_engine_of_its_own(
    tmp_path: Path, suite_url: URL, backend: str, record_property: Callable[..., None]
) -> None:
    """A test leaves a connection of an engine of its own (not db_engine) inside an open
    transaction whose locks block the rewind."""
    project = tmp_path / "project"
    report_file = write_project(project, OPEN_ELSEWHERE, ini="dbrewind_lock_timeout = 1\n")
    run_faults(project, suite_url).finish()
    report = Report.read(report_file)
    test = "test_leaves_a_transaction_open_on_its_own_engine"
    got, following = report.outcome(test), report.outcome(f"{test}__next")
    record_property(
        "result",
        f"test {got}; dbrewind: {report.dbrewind_said(test)}; the next test {following}",
    )
    assert got == "error", report.text(test)  # the test fails, saying what it left open
    if backend == "sqlite":
        # another connection of the same process: nothing can end it from outside; the
        # run's later tests fail the same way, and the next run repairs the database
        assert "another connection holds" in report.text(test), report.text(test)
    else:
        assert "dbrewind ended it" in report.text(test), report.text(test)
        assert following == "passed", report.text(f"{test}__next")
        assert_at_baseline(suite_url)
    next_run(project, suite_url)


# ------------------------------------------------- runs that are interrupted

INTERRUPTED = (
    HEAD
    + """

@pytest.fixture
def interrupts_in_teardown():
    yield
    raise KeyboardInterrupt


def test_interrupted(transactional_db):
    commit_a_row(transactional_db, "interrupted")
    raise KeyboardInterrupt


def test_interrupted_in_a_fixture_teardown(transactional_db, interrupts_in_teardown):
    commit_a_row(transactional_db, "interrupted in teardown")


@pytest.mark.timeout(2, method="thread", func_only=True)
def test_times_out_by_thread(transactional_db):
    commit_a_row(transactional_db, "timed out")
    time.sleep(30)  # the hang pytest-timeout ends, with os._exit


def test_holds_the_database(db):
    db.execute(items.insert().values(name="sandboxed"))
    checkpoint("held")
"""
)


def _project(tmp_path: Path, *, conftest: str = CONFTEST) -> Path:
    project = tmp_path / "project"
    write_project(project, INTERRUPTED, conftest=conftest)
    return project


def _result(out: str, record_property: Callable[..., None], prefix: str) -> str:
    said = "; ".join(notes(out)) or "no note"
    record_property("result", f"{prefix}; next run green, at the baseline; it said: {said}")
    return said


@pytest.mark.parametrize(
    "select",
    ["test_interrupted and not fixture", "test_interrupted_in_a_fixture_teardown"],
    ids=["in-the-test", "in-a-fixture-teardown"],
)
def test_keyboard_interrupt(
    tmp_path: Path,
    suite_url: URL,
    backend: str,
    select: str,
    record_property: Callable[..., None],
) -> None:
    """Ctrl-C (KeyboardInterrupt) inside a test that committed, or during a fixture's teardown."""
    project = _project(tmp_path)
    code, out = run_faults(project, suite_url, "-k", select).finish()
    assert code == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out, out
    assert_at_baseline(suite_url)  # the interrupted run put it back itself
    said = _result(next_run(project, suite_url), record_property, "the run stopped, rewound")
    assert "not released" not in said, said  # nothing was left for the next run to repair


def test_pytest_timeout_thread_method_ends_the_process(
    tmp_path: Path, suite_url: URL, backend: str, record_property: Callable[..., None]
) -> None:
    """pytest-timeout (thread method) ends the whole process (os._exit) in a test that committed."""
    project = _project(tmp_path)
    code, out = run_faults(project, suite_url, "-k", "test_times_out_by_thread").finish()
    assert code != 0, out
    assert "Timeout" in out, out
    said = _result(next_run(project, suite_url), record_property, "process ended")
    assert "was not released by the run that held it" in said, said
    assert "order'" in said, said  # and it says what it rewound ('order' or 'public.order')


@dataclass
class Kill:
    """Where to stop the inner run before SIGKILL: an environment variable naming a
    checkpoint the inner run reaches, and the inner tests to select."""

    env: str
    reached: str
    select: str


KILLS = {
    "a test that committed": Kill("SUITE_CHECKPOINT", "", "commits_then_waits"),
    "a lease held, nothing committed": Kill("SUITE_CHECKPOINT", ".held", "test_holds_the_database"),
    "the template being built": Kill("SUITE_SETUP_CHECKPOINT", "", "test_holds_the_database"),
}
REPAIRS = {
    "a test that committed": ("was not released by the run that held it", "order'"),
    "a lease held, nothing committed": ("it left no rows to rewind",),
    "the template being built": ("left half-built",),
}


@pytest.mark.parametrize("point", list(KILLS))
def test_sigkill_of_the_pytest_process(
    tmp_path: Path,
    suite_url: URL,
    backend: str,
    point: str,
    record_property: Callable[..., None],
) -> None:
    """The pytest process SIGKILLed mid-run (during a test that committed, while it holds
    its lease, while the template is being built)."""
    kill = KILLS[point]
    project = _project(tmp_path, conftest=SLOW_SETUP)
    checkpoint = tmp_path / "killed"
    files = ["test_app.py"] if kill.select == "commits_then_waits" else []
    victim = start(
        project,
        pytest_args(suite_url, *(files or ["test_faults.py"]), "-k", kill.select),
        env={kill.env: str(checkpoint), "FAULTS_REPORT": str(project / "report.jsonl")},
    )
    wait_for_file(Path(f"{checkpoint}{kill.reached}.reached"), victim)
    victim.kill()
    out = next_run(project, suite_url)
    said = _result(out, record_property, f"killed at {point}")
    for words in REPAIRS[point]:
        assert words in said, out
    assert "in use by another run" not in out, out  # the dead run's lease is not honoured


# ------------------------------------------ a run killed while making a clone


@contextmanager
def _clone_blocked(backend: str, template: URL) -> Iterator[Callable[[], bool]]:
    """Hold what copying ``template`` needs, from outside; yields "is a copy waiting?"."""
    server = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    holder = create_engine(template)
    try:
        with server.connect() as watcher, holder.connect() as conn:
            if backend == "postgresql":
                # CREATE DATABASE ... TEMPLATE needs a share lock on the template
                conn.exec_driver_sql(f'COMMENT ON DATABASE "{template.database}" IS NULL')

                def waiting() -> bool:
                    return bool(
                        watcher.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                "'Lock' AND query LIKE 'CREATE DATABASE%'"
                                " AND query LIKE :t"
                            ),
                            {"t": f"%{template.database}%"},
                        ).scalar()
                    )
            else:
                conn.exec_driver_sql("LOCK TABLES `order` WRITE")

                def waiting() -> bool:
                    return bool(
                        watcher.execute(
                            text(
                                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE "
                                "STATE LIKE 'Waiting for table%' AND INFO LIKE :t"
                            ),
                            {"t": f"%{template.database}%"},
                        ).scalar()
                    )

            yield waiting
            conn.rollback()
            if backend == "mysql":
                conn.exec_driver_sql("UNLOCK TABLES")
    finally:
        holder.dispose()
        server.dispose()


def _sessions(backend: str) -> list[tuple[object, ...]]:
    """What the server's sessions are doing (for a failure message)."""
    server = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            if backend == "postgresql":
                sql = "SELECT datname, state, wait_event_type, query FROM pg_stat_activity"
            else:
                sql = "SELECT DB, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST"
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        server.dispose()


def _settled(backend: str, name: str) -> bool:
    """No session of the killed run is still copying into ``name`` on the server."""
    server = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            if backend == "postgresql":
                sql = (
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE :q "
                    "AND state = 'active' AND pid <> pg_backend_pid()"
                )
            else:
                sql = (
                    "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE :q "
                    "AND ID <> CONNECTION_ID()"
                )
            return not conn.execute(text(sql), {"q": f"%{name}%"}).scalar()
    finally:
        server.dispose()


@pytest.mark.backends("postgresql", "mysql")
def test_sigkill_while_a_clone_is_being_made(
    tmp_path: Path, suite_url: URL, backend: str, record_property: Callable[..., None]
) -> None:
    """The pytest process SIGKILLed while it copies the template into its clone."""
    project = _project(tmp_path)
    next_run(project, suite_url)  # a template to clone, and its clone
    stem = str(suite_url.database)
    (template,) = databases_named(backend, f"{stem}_tmpl_")
    drop_database(backend, suite_url)  # the next run makes its clone again
    with _clone_blocked(backend, suite_url.set(database=template)) as waiting:
        victim = run_faults(project, suite_url, "-k", "test_holds_the_database")
        deadline = time.monotonic() + 120
        while not waiting():
            assert victim.proc.poll() is None, victim.finish()[1]
            assert time.monotonic() < deadline, (
                f"the run never started copying the template: {_sessions(backend)}"
            )
            time.sleep(0.05)
        victim.kill()
    deadline = time.monotonic() + 60
    while not _settled(backend, stem):  # the server finishes what the dead run sent
        assert time.monotonic() < deadline, _sessions(backend)
        time.sleep(0.05)
    out = next_run(project, suite_url)
    said = _result(out, record_property, "killed while copying the template")
    if backend == "mysql":  # the copy is made table by table: it was left half-made
        assert "left half-made" in said, out
