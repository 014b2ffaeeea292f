"""The pytest plugin, exercised through inner test suites run by ``pytester``.

Each test hands an inner suite a fresh database (``--dbrewind-url``) on every
backend and asserts the inner outcomes. The databases the plugin derives from
it (prepared templates, per-worker clones) are dropped afterwards.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS, drop_database, make_database
from helpers.runs import databases_named

# pytester restores sys.modules after every test that uses it, so a module first
# imported during such a test is imported again later; SQLAlchemy warns when its
# dialects register twice. Load the dialects and drivers the tests use up front.
for _url in (*SERVER_URLS.values(), "sqlite://"):
    make_url(_url).get_dialect().import_dbapi()

SCHEMA = """
import sqlalchemy as sa

metadata = sa.MetaData()
items = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("Name", sa.String(60), nullable=False),
)
notes = sa.Table(
    "user notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("body", sa.String(60), nullable=False),
)


def setup(conn):
    metadata.create_all(conn)
    conn.execute(items.insert(), [{"Name": "seed-1"}, {"Name": "seed-2"}])
"""

CONFTEST = """
import pytest
import schema

@pytest.fixture(scope="session")
def dbrewind_setup():
    return schema.setup
"""


@pytest.fixture
def inner_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """A test-database URL for an inner suite; everything derived from it is dropped after."""
    url = make_database(backend, tmp_path / "dbs")
    (tmp_path / "dbs").mkdir(exist_ok=True)
    try:
        yield url
    finally:
        if backend != "sqlite":
            prefix = str(url.database).removesuffix("_test")
            for name in databases_named(backend, prefix):
                drop_database(backend, url.set(database=name))


def _write_suite(pytester: pytest.Pytester, tests: str, *, conftest: str = CONFTEST) -> None:
    pytester.makepyfile(schema=SCHEMA, conftest=conftest)
    pytester.makepyfile(test_inner=textwrap.dedent(tests))


def _run(pytester: pytest.Pytester, url: URL, *args: str) -> pytest.RunResult:
    rendered = url.render_as_string(hide_password=False)
    return pytester.runpytest_subprocess(
        f"--dbrewind-url={rendered}", "-p", "no:randomly", "-p", "no:cacheprovider", *args
    )


CAUSES = """
import pytest

CAUSES = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    cause = getattr(call.excinfo.value, "__cause__", None) if call.excinfo else None
    if cause is not None:
        CAUSES.append(f"{item.name} {call.when}: {type(cause).__name__}")
    return report


def pytest_terminal_summary(terminalreporter):
    for line in CAUSES:
        terminalreporter.write_line(f"dbrewind cause: {line}")
"""
"""A plugin (``-p causes``) that prints the type of each failure's ``__cause__``."""


def _count(url: URL, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote_identifier(table)
            return int(conn.execute(text(f"SELECT count(*) FROM {quoted}")).scalar_one())
    finally:
        engine.dispose()


# ------------------------------------------------------------- clean strategy


def test_transactional_db_commits_are_rewound_before_the_next_test(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    _write_suite(
        pytester,
        """
        import pytest
        from sqlalchemy import func, select
        from schema import items

        def test_a_commits(transactional_db):
            transactional_db.execute(items.insert(), [{"Name": "x"}, {"Name": "y"}])
            transactional_db.execute(items.delete().where(items.c.Name == "seed-1"))
            transactional_db.commit()
            assert transactional_db.execute(select(func.count()).select_from(items)).scalar() == 3

        def test_b_sees_the_baseline(transactional_db):
            names = transactional_db.execute(items.select().order_by(items.c.id)).all()
            assert [(r.id, r.Name) for r in names] == [(1, "seed-1"), (2, "seed-2")]

        # it expects the baseline's next id: on MySQL/MariaDB only a test that asks gets it
        @pytest.mark.dbrewind(transactional=True, reset_sequences=True)
        def test_c_marked_transactional_db_session_commits(db_session):
            db_session.execute(items.insert().values(Name="z"))
            db_session.commit()
            assert db_session.execute(items.select()).all()[-1].id == 3
        """,
    )
    result = _run(pytester, inner_url)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*strategies: clean 3*"])


def test_a_transaction_a_test_leaves_open_on_db_engine_is_rolled_back_and_warned_about(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    _write_suite(
        pytester,
        """
        from schema import items

        leaked = []

        def test_a_commits_then_leaves_a_transaction_open(transactional_db, db_engine):
            transactional_db.execute(items.insert().values(Name="committed"))
            transactional_db.commit()
            conn = db_engine.connect()
            conn.execute(items.update().where(items.c.id == 1).values(Name="held"))
            leaked.append(conn)  # never committed, never closed

        def test_b_ends_the_leak():
            leaked.pop().close()

        def test_c_sees_the_baseline(transactional_db):
            names = transactional_db.execute(items.select().order_by(items.c.id)).all()
            assert [r.Name for r in names] == ["seed-1", "seed-2"]
        """,
    )
    pytester.makeini("[pytest]\ndbrewind_lock_timeout = 1\n")
    result = _run(pytester, inner_url)
    # the leaked connection is closed (rolled back) before the rewind: no lock wait
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(
        ["*test_a_commits_then_leaves_a_transaction_open left 1 connection(s) to *"]
    )


def test_a_bad_lock_timeout_is_a_usage_error_naming_the_setting(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    _write_suite(pytester, "def test_nothing():\n    pass\n")
    pytester.makeini("[pytest]\ndbrewind_lock_timeout = soon\n")
    result = _run(pytester, inner_url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*dbrewind_lock_timeout = 'soon': give the seconds*"])


def test_a_write_without_any_fixture_is_rewound_and_warned_about(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    _write_suite(
        pytester,
        """
        from sqlalchemy import create_engine

        from schema import items, notes

        def test_a_leaks(db_url):
            engine = create_engine(db_url)
            with engine.begin() as conn:
                conn.execute(notes.insert().values(body="escaped"))
            engine.dispose()

        def test_b_is_clean(transactional_db):
            assert transactional_db.execute(notes.select()).all() == []
        """,
    )
    result = _run(pytester, inner_url)
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*DbrewindLeakWarning: test_inner.py::test_a_leaks committed writes to *user notes*"]
    )

    pytester.makepyfile(causes=CAUSES)
    strict = _run(pytester, inner_url, "--dbrewind-strict", "-p", "causes")
    strict.assert_outcomes(passed=2, errors=1)
    strict.stdout.fnmatch_lines(
        [
            "*test_a_leaks committed writes to *user notes* outside*",
            "dbrewind cause: test_a_leaks teardown: LeakError",
        ]
    )


# ------------------------------------------------------------- templates


ISOLATION_TESTS = """
import pytest
from schema import items, notes

@pytest.mark.parametrize("n", range(6))
def test_commit_and_find_the_baseline(transactional_db, n):
    rows = transactional_db.execute(items.select().order_by(items.c.id)).all()
    assert [r.Name for r in rows] == ["seed-1", "seed-2"]
    assert transactional_db.execute(notes.select()).all() == []
    transactional_db.execute(items.insert().values(Name=f"t{n}"))
    transactional_db.execute(notes.insert().values(body=f"t{n}"))
    transactional_db.execute(items.update().values(Name="changed"))
    transactional_db.commit()
"""


def _prepare_ms(result: pytest.RunResult) -> float:
    for line in result.outlines:
        match = re.search(r"preparing (\d+) ms", line)
        if match:
            return float(match.group(1))
    raise AssertionError("no dbrewind summary in:\n" + result.stdout.str())


def test_second_run_reuses_the_template_and_a_schema_change_rebuilds_it(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    _write_suite(pytester, ISOLATION_TESTS)
    first = _run(pytester, inner_url)
    first.assert_outcomes(passed=6)
    first.stdout.fnmatch_lines(["*templates built 1, reused 0*"])

    second = _run(pytester, inner_url)
    second.assert_outcomes(passed=6)
    second.stdout.fnmatch_lines(["*templates built 0, reused 1*"])

    forced = _run(pytester, inner_url, "--dbrewind-rebuild")
    forced.assert_outcomes(passed=6)
    forced.stdout.fnmatch_lines(["*templates built 1, reused 0*"])

    # a new column in the models: the fingerprint changes, the template is rebuilt
    pytester.makepyfile(
        schema=SCHEMA.replace(
            'sa.Column("body", sa.String(60), nullable=False),',
            'sa.Column("body", sa.String(60), nullable=False),\n'
            '    sa.Column("extra", sa.Integer),',
        )
    )
    pytester.makepyfile(
        test_inner=ISOLATION_TESTS
        + "\n\ndef test_new_column_exists(transactional_db):\n"
        + "    assert 'extra' in notes.c\n"
        + "    transactional_db.execute(notes.insert().values(body='b', extra=1))\n"
    )
    changed = _run(pytester, inner_url)
    changed.assert_outcomes(passed=7)
    changed.stdout.fnmatch_lines(["*templates built 1, reused 0*"])


def test_a_warm_start_reuses_the_template_without_running_a_slow_setup_again(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    # The timing target (a warm start under 0.5 s) is measured by
    # benchmarks/bench_warm_start.py; here: the 5 s setup does not run again.
    slow = SCHEMA + "\n\nimport time\n\ndef slow_setup(conn):\n    time.sleep(5)\n    setup(conn)\n"
    pytester.makepyfile(
        schema=slow,
        conftest=CONFTEST.replace("return schema.setup", "return schema.slow_setup"),
    )
    pytester.makepyfile(test_inner=ISOLATION_TESTS)
    cold = _run(pytester, inner_url)
    cold.assert_outcomes(passed=6)
    assert _prepare_ms(cold) >= 5000
    warm = _run(pytester, inner_url)
    warm.assert_outcomes(passed=6)
    warm.stdout.fnmatch_lines(["*templates built 0, reused 1*"])
    assert _prepare_ms(warm) < 2500


# ------------------------------------------------------------- order and workers


def test_random_order_leaves_no_leak(pytester: pytest.Pytester, inner_url: URL) -> None:
    _write_suite(pytester, ISOLATION_TESTS)
    rendered = inner_url.render_as_string(hide_password=False)
    for seed in ("1", "2"):
        result = pytester.runpytest_subprocess(
            f"--dbrewind-url={rendered}",
            "-p",
            "randomly",
            f"--randomly-seed={seed}",
            "--dbrewind-strict",
            "--dbrewind-verify",
        )
        result.stdout.fnmatch_lines([f"*--randomly-seed={seed}*"])
        result.assert_outcomes(passed=6)


def test_xdist_workers_each_get_a_clone_of_one_template(
    pytester: pytest.Pytester, inner_url: URL, backend: str
) -> None:
    _write_suite(
        pytester,
        ISOLATION_TESTS
        + """

def test_worker_database_name(db_url, worker_id):
    assert db_url.split("/")[-1].split("?")[0].removesuffix(".db").endswith("_" + worker_id)
""",
    )
    result = _run(pytester, inner_url, "-n", "2", "--dbrewind-strict")
    result.assert_outcomes(passed=7)
    # the setup ran once for the whole run: one template built, the other worker reused it
    result.stdout.fnmatch_lines(["*templates built 1, reused 1*"])
    if backend != "sqlite":
        names = databases_named(backend, str(inner_url.database))
        assert {n for n in names if n.endswith(("_gw0", "_gw1"))} == {
            f"{inner_url.database}_gw0",
            f"{inner_url.database}_gw1",
        }
        assert len([n for n in names if "_tmpl_" in n]) == 1


# ------------------------------------------------------------- rollback sandbox

ROLLBACK_TESTS = """
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from schema import items, notes

def test_a_db_writes_and_commits_inside_the_sandbox(db, db_engine):
    db.execute(notes.insert().values(body="one"))
    db.commit()
    # the application's own engine is routed into the same sandbox
    with Session(db_engine) as session:
        session.execute(items.delete())
        session.commit()
    assert db.execute(select(func.count()).select_from(items)).scalar() == 0

def test_b_db_session_sees_the_baseline_and_nested_transactions_work(db_session):
    assert [r.Name for r in db_session.execute(items.select().order_by(items.c.id))] == [
        "seed-1", "seed-2"
    ]
    assert db_session.execute(notes.select()).all() == []
    with db_session.begin_nested():
        db_session.execute(notes.insert().values(body="nested"))
    db_session.commit()
    assert len(db_session.execute(notes.select()).all()) == 1

def test_c_db_assert_is_bound_to_the_test_session(db_session, db_assert):
    db_session.execute(notes.insert().values(body="asserted"))
    db_assert.assert_database_has("user notes", {"body": "asserted"})
    db_assert.assert_database_count("order", 2)

@pytest.mark.dbrewind(data=["rows.json"])
def test_d_marker_data_is_loaded_into_the_sandbox(db):
    assert db.execute(select(notes.c.body)).scalars().all() == ["from file"]

def test_e_nothing_leaked(transactional_db):
    assert transactional_db.execute(notes.select()).all() == []
    assert transactional_db.execute(select(func.count()).select_from(items)).scalar() == 2
"""


def test_rollback_fixtures_leave_nothing_behind(pytester: pytest.Pytester, inner_url: URL) -> None:
    _write_suite(pytester, ROLLBACK_TESTS)
    pytester.makefile(".json", rows='{"user notes": [{"body": "from file"}]}')
    result = _run(pytester, inner_url, "--dbrewind-strict", "--dbrewind-verify")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*strategies: rollback 4, clean 1*"])


ASYNC_TESTS = """
import pytest
from sqlalchemy import func, select
from schema import items, notes

pytestmark = pytest.mark.asyncio(loop_scope="{scope}")

async def _check_and_write(session, body):
    assert (await session.execute(select(func.count()).select_from(notes))).scalar() == 0
    session.add_all([])
    await session.execute(notes.insert().values(body=body))
    await session.commit()
    assert (await session.execute(select(func.count()).select_from(notes))).scalar() == 1

@pytest.mark.parametrize("n", range(3))
async def test_async_db_session_is_rolled_back(async_db_session, n):
    await _check_and_write(async_db_session, f"a{{n}}")

async def test_async_engine_connections_are_routed_into_the_sandbox(
    async_db_session, async_db_engine
):
    async with async_db_engine.begin() as conn:
        await conn.execute(items.delete())
    assert (await async_db_session.execute(select(func.count()).select_from(items))).scalar() == 0

@pytest.mark.dbrewind(transactional=True)
async def test_transactional_async_session_commits_for_real(async_db_session, db_engine):
    await _check_and_write(async_db_session, "real")
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notes)).scalar() == 1

async def test_async_db_assert(async_db_session, db_assert):
    await async_db_session.execute(notes.insert().values(body="x"))
    await db_assert.assert_database_count("user notes", 1)
"""


@pytest.mark.parametrize("scope", ["function", "module", "session"])
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_async_fixtures_under_pytest_asyncio_any_loop_scope(
    pytester: pytest.Pytester, inner_url: URL, scope: str, mode: str
) -> None:
    _write_suite(pytester, ASYNC_TESTS.format(scope=scope))
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    result = _run(pytester, inner_url, "--dbrewind-strict")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*strategies: rollback 5, clean 1*"])


ANYIO_TESTS = """
import pytest
from sqlalchemy import func, select
from schema import notes

pytestmark = pytest.mark.anyio

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.parametrize("n", range(3))
async def test_anyio_async_db_session_is_rolled_back(async_db_session, n):
    assert (await async_db_session.execute(select(func.count()).select_from(notes))).scalar() == 0
    await async_db_session.execute(notes.insert().values(body=str(n)))
    await async_db_session.commit()
"""


def test_async_fixtures_under_anyio(pytester: pytest.Pytester, inner_url: URL) -> None:
    _write_suite(pytester, ANYIO_TESTS)
    pytester.makeini(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = _run(pytester, inner_url, "--dbrewind-strict")
    result.assert_outcomes(passed=3)


# ------------------------------------------------------------- pytest-clean-database


CLEAN_DB_CONFTEST = """
import os

import pytest
import sqlalchemy as sa

metadata = sa.MetaData()
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40)),
)

@pytest.fixture(scope="session")
def test_db():
    engine = sa.create_engine(os.environ["INNER_DRIVER_URL"])
    metadata.create_all(engine)
    engine.dispose()
    yield
    engine = sa.create_engine(os.environ["INNER_DRIVER_URL"])
    metadata.drop_all(engine)
    engine.dispose()

@pytest.fixture(scope="session")
def clean_db_urls(test_db):
    return [os.environ["INNER_PLAIN_URL"]]
"""

CLEAN_DB_TESTS = """
import os

import pytest
import sqlalchemy as sa
from conftest import users

@pytest.fixture
def engine():
    engine = sa.create_engine(os.environ["INNER_DRIVER_URL"])
    yield engine
    engine.dispose()

@pytest.mark.parametrize("n", range(5))
def test_commits_and_starts_empty(engine, n):
    with engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(users)).scalar() == 0
        conn.execute(users.insert(), [{"name": f"u{n}"}, {"name": "other"}])
"""


def test_a_pytest_clean_database_suite_passes_unchanged(
    pytester: pytest.Pytester, inner_url: URL, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = inner_url.set(drivername="sqlite" if backend == "sqlite" else backend)
    monkeypatch.setenv("INNER_DRIVER_URL", inner_url.render_as_string(hide_password=False))
    monkeypatch.setenv("INNER_PLAIN_URL", plain.render_as_string(hide_password=False))
    pytester.makepyfile(conftest=CLEAN_DB_CONFTEST, test_clean=CLEAN_DB_TESTS)
    for seed in ("3", "4"):
        result = pytester.runpytest_subprocess("-p", "randomly", f"--randomly-seed={seed}")
        result.assert_outcomes(passed=5)
        result.stdout.fnmatch_lines(["*strategies: clean 5*", "*users (5)*"])


# ------------------------------------------------------------- the marker


MARKER_TESTS = """
import pytest
from sqlalchemy import create_engine, func, select
from schema import items, notes

pytestmark = pytest.mark.dbrewind(transactional=True)

def test_module_mark_makes_db_commit_for_real(db, db_url):
    db.execute(notes.insert().values(body="real"))
    db.commit()
    other = create_engine(db_url)
    with other.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notes)).scalar() == 1
    other.dispose()

class TestClassMark:
    pytestmark = pytest.mark.dbrewind(transactional=False)

    def test_class_mark_overrides_the_module_one(self, db):
        assert db.execute(select(func.count()).select_from(notes)).scalar() == 0
        db.execute(notes.insert().values(body="rolled back"))

@pytest.mark.dbrewind(backends=["{backend}"])
def test_runs_on_its_backend(db):
    assert db.execute(select(func.count()).select_from(notes)).scalar() == 0

@pytest.mark.dbrewind(backends=["{other}"])
def test_skipped_elsewhere():
    raise AssertionError("must not run")

@pytest.mark.dbrewind(transactionl=True)
def test_unknown_option(db):
    pass
"""


def test_marker_options_merge_from_module_class_and_function(
    pytester: pytest.Pytester, inner_url: URL, backend: str
) -> None:
    other = "sqlite" if backend != "sqlite" else "postgresql"
    _write_suite(pytester, MARKER_TESTS.format(backend=backend, other=other))
    result = _run(pytester, inner_url, "--dbrewind-strict", "-rs")
    result.assert_outcomes(passed=3, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_unknown_option*unknown @pytest.mark.dbrewind option(s) transactionl; "
            "known options are backends, data, reset_sequences, strict, transactional, verify*",
            f"*runs on {other}, not {backend}*",
        ]
    )


# ------------------------------------------------------------- verification


VERIFY_TESTS = """
from dbrewind import Rewinder
from schema import notes

def test_a_bakes_a_row_into_the_baseline(transactional_db, db_url):
    transactional_db.execute(notes.insert().values(body="sticky"))
    transactional_db.commit()
    # re-capturing the baseline here makes the rewind keep the row
    with Rewinder(db_url) as rewinder:
        rewinder.install()

def test_b_is_fine(transactional_db):
    transactional_db.execute(notes.insert().values(body="fine"))
    transactional_db.commit()
"""


def test_verify_fails_the_test_that_leaves_a_difference_naming_table_and_rows(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    _write_suite(pytester, VERIFY_TESTS)
    plain = _run(pytester, inner_url)
    plain.assert_outcomes(passed=2)
    pytester.makepyfile(causes=CAUSES)
    verified = _run(pytester, inner_url, "--dbrewind-verify", "--dbrewind-rebuild", "-p", "causes")
    verified.assert_outcomes(passed=2, errors=1)
    verified.stdout.fnmatch_lines(
        [
            "*test_a_bakes_a_row_into_the_baseline left 'default'*different from its baseline"
            "*table '*user notes': 1 rows, baseline has 0*",
            "*+ (1, 'sticky')*",
            "dbrewind cause: test_a_bakes_a_row_into_the_baseline teardown: VerificationError",
        ]
    )
    assert "ERROR at teardown of test_b" not in verified.stdout.str()


# ------------------------------------------------------------- configuration


def test_an_application_database_name_gets_a_derived_test_database(
    pytester: pytest.Pytester, inner_url: URL, backend: str
) -> None:
    if backend == "sqlite":
        app = inner_url.set(database=str(Path(str(inner_url.database)).with_name("app.db")))
        derived = str(Path(str(inner_url.database)).with_name("app_test.db"))
    else:
        app = inner_url.set(database=str(inner_url.database).removesuffix("_test") + "_app")
        derived = f"{app.database}_test"
    _write_suite(pytester, ISOLATION_TESTS)
    result = _run(pytester, app)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [f"dbrewind: *{derived}*is not a test database, so dbrewind works on '{derived}'*"]
    )
    if backend == "sqlite":
        assert Path(derived).exists()
        assert not Path(str(app.database)).exists()
    else:
        names = databases_named(backend, str(app.database))
        assert derived in names
        assert app.database not in names


MULTI_CONFTEST = CONFTEST.replace(
    "return schema.setup", 'return {"default": schema.setup, "reports": schema.setup}'
)

MULTI_TESTS = """
from sqlalchemy import func, select
from schema import notes

def test_a_commits_to_both(transactional_db, dbrewind_databases):
    transactional_db.execute(notes.insert().values(body="main"))
    transactional_db.commit()
    with dbrewind_databases["reports"].engine.begin() as conn:
        conn.execute(notes.insert().values(body="report"))

def test_b_both_are_clean(dbrewind_databases):
    assert set(dbrewind_databases) == {"default", "reports"}
    for managed in dbrewind_databases.values():
        with managed.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(notes)).scalar() == 0

def test_c_leak_into_the_second_database(dbrewind_databases):
    with dbrewind_databases["reports"].engine.begin() as conn:
        conn.execute(notes.insert().values(body="leak"))
"""


def test_several_databases_are_each_prepared_and_rewound(
    pytester: pytest.Pytester, inner_url: URL, backend: str, tmp_path: Path
) -> None:
    second = make_database(backend, tmp_path / "dbs")
    try:
        _write_suite(pytester, MULTI_TESTS, conftest=MULTI_CONFTEST)
        rendered = second.render_as_string(hide_password=False)
        pytester.makeini(f"[pytest]\ndbrewind_databases =\n    reports = {rendered}\n")
        result = _run(pytester, inner_url)
        result.assert_outcomes(passed=3, warnings=1)
        result.stdout.fnmatch_lines(
            [
                f"dbrewind: [[]reports[]] *{second.database}*",
                "*test_c_leak_into_the_second_database committed writes to reports:*user notes*",
            ]
        )
    finally:
        if backend != "sqlite":
            for name in databases_named(backend, str(second.database).removesuffix("_test")):
                drop_database(backend, second.set(database=name))


def test_a_bad_url_stops_the_run_at_configure_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="def test_db(db):\n    pass\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("--dbrewind-url=oracle://scott@db/app_test")
    # a configured URL puts every test under the safety net: none can run
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: dbrewind: Unsupported database 'oracle'*--dbrewind-url)."])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_ini_setup_and_the_environment_url_configure_a_suite(
    pytester: pytest.Pytester, inner_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(schema=SCHEMA, test_inner=textwrap.dedent(ISOLATION_TESTS))
    pytester.makeini("[pytest]\ndbrewind_setup = schema:setup\n")
    monkeypatch.setenv("DBREWIND_URL", inner_url.render_as_string(hide_password=False))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [f"dbrewind: *{Path(str(inner_url.database)).name}*(from DBREWIND_URL)"]
    )


def test_an_in_memory_sqlite_database_is_prepared_once_and_isolated(
    pytester: pytest.Pytester,
) -> None:
    _write_suite(pytester, ISOLATION_TESTS + ROLLBACK_TESTS.split("def test_c_db_assert")[0])
    result = pytester.runpytest_subprocess("--dbrewind-url=sqlite://", "--dbrewind-strict")
    result.assert_outcomes(passed=8)


@pytest.mark.backends("sqlite", "postgresql")
def test_sandboxed_tests_see_the_same_ids_one_after_another(
    pytester: pytest.Pytester, inner_url: URL
) -> None:
    # PostgreSQL sequences outlive a rollback; the sandbox puts them back.
    # (MySQL's AUTO_INCREMENT would need DDL: not promised there.)
    tests = """
    import pytest
    from schema import items

    @pytest.mark.parametrize("n", range(3))
    def test_insert(db, n):
        new_id = db.execute(items.insert().values(Name=f"x{n}")).inserted_primary_key[0]
        assert new_id == 3  # two seed rows in the baseline

    @pytest.mark.parametrize("n", range(2))
    async def test_insert_async(async_db_session, n):
        result = await async_db_session.execute(items.insert().values(Name=f"a{n}"))
        assert result.inserted_primary_key[0] == 3
    """
    _write_suite(pytester, tests)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    _run(pytester, inner_url).assert_outcomes(passed=5)


HEADER_TESTS = {
    "uses dbrewind's db": "def test_it(db):\n    pass\n",
    "uses no database": "def test_it():\n    pass\n",
    "uses clean_db_urls": (
        "import pytest\n\n\n@pytest.fixture(scope='session')\ndef clean_db_urls():\n"
        "    return []\n\n\ndef test_it(clean_db_urls):\n    pass\n"
    ),
}


@pytest.mark.parametrize("shape", sorted(HEADER_TESTS))
def test_the_header_names_the_default_database_only_when_a_test_uses_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """With no dbrewind_url, the default SQLite database is named after collection, and
    only when a collected test asks for one of dbrewind's fixtures: a run whose tests use
    other databases (their own, clean_db_urls) is not told of one it never uses."""
    pytester.makepyfile(test_inner=HEADER_TESTS[shape])
    monkeypatch.delenv("DBREWIND_URL", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    default = re.search(r"^dbrewind: sqlite:///\S+ \(default: no dbrewind_url is set\)$", out, re.M)
    if shape == "uses dbrewind's db":
        assert default is not None, out
        assert out.index("collected 1 item") < default.start(), out
    else:
        assert default is None, out
        assert "dbrewind: sqlite" not in out, out
    if shape == "uses clean_db_urls":
        assert "dbrewind: the databases clean_db_urls names" in out, out
