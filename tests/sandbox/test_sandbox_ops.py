"""What differs per database (``Dialect.sandbox``, names, URLs), checked without a server.

The driver facts each dialect reads (PyMySQL's ``server_status``, psycopg's
``info.transaction_status``, asyncpg's ``is_in_transaction()``, sqlite3's
``in_transaction`` and ``isolation_level``) are checked on fake DB-API
connections; the sandbox suites check them on the real drivers. The last tests
keep the rule that per-database knowledge lives in ``dbrewind.dialects``.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dbrewind import parse_url
from dbrewind.dialects import OuterTransaction, SandboxOps, get_dialect
from dbrewind.dialects.mysql import MySQLSandboxOps
from dbrewind.dialects.postgresql import PostgreSQLSandboxOps
from dbrewind.dialects.sqlite import SQLiteSandboxOps

SQLITE = get_dialect("sqlite").sandbox
POSTGRESQL = get_dialect("postgresql").sandbox
MYSQL = get_dialect("mysql").sandbox


class Recorder:
    """A ``run`` callable: records each statement, raises ``error`` for the one named."""

    def __init__(self, error: BaseException | None = None, on: str = "") -> None:
        self.statements: list[str] = []
        self.error = error
        self.on = on

    def __call__(self, statement: str) -> None:
        self.statements.append(statement)
        if self.error is not None and (not self.on or statement == self.on):
            raise self.error


class DriverError(Exception):
    """A driver's error, with the attributes the dialects read."""

    def __init__(self, *args: Any, sqlstate: str | None = None, pgcode: str | None = None):
        super().__init__(*args)
        self.sqlstate = sqlstate
        self.pgcode = pgcode


def test_each_dialect_has_its_sandbox_ops() -> None:
    assert isinstance(SQLITE, SQLiteSandboxOps)
    assert isinstance(POSTGRESQL, PostgreSQLSandboxOps)
    assert isinstance(MYSQL, MySQLSandboxOps)
    assert [ops.statement_guard for ops in (SQLITE, POSTGRESQL, MYSQL)] == [False, True, False]
    assert [
        get_dialect(b).capabilities.implicit_commits for b in ("sqlite", "postgresql", "mysql")
    ] == [False, False, True]


# ------------------------------------------------------------------- SQLite
def test_sqlite_autocommit_is_isolation_level_none() -> None:
    assert SQLITE.autocommit(SimpleNamespace(isolation_level=None), None) is True
    assert SQLITE.autocommit(SimpleNamespace(isolation_level=""), None) is False
    assert SQLITE.isolation_autocommit(None) is True
    assert SQLITE.isolation_autocommit("AUTOCOMMIT") is False


def test_sqlite_begin_takes_control_of_begin_and_restores_the_isolation_level() -> None:
    raw = SimpleNamespace(isolation_level="DEFERRED")
    run = Recorder()
    outer = SQLITE.begin(raw, run)
    assert run.statements == ["BEGIN"]
    assert outer.explicit
    assert raw.isolation_level is None
    assert outer.restore is not None
    outer.restore()
    assert raw.isolation_level == "DEFERRED"


def test_sqlite_a_failed_begin_puts_the_isolation_level_back() -> None:
    raw = SimpleNamespace(isolation_level="")
    with pytest.raises(DriverError):
        SQLITE.begin(raw, Recorder(DriverError("disk I/O error")))
    assert raw.isolation_level == ""


def test_sqlite_probe_reads_in_transaction() -> None:
    driver = SimpleNamespace(in_transaction=True)
    probe = SQLITE.transaction_probe(driver)
    assert probe is not None
    assert probe() is True
    driver.in_transaction = False
    assert probe() is False


def test_sqlite_write_lock() -> None:
    assert SQLITE.blocked_by_write_lock(DriverError("database is locked"))
    assert not SQLITE.blocked_by_write_lock(DriverError("no such table: t"))
    assert not POSTGRESQL.blocked_by_write_lock(DriverError("database is locked"))


# ------------------------------------------------------------------- MySQL
def test_mysql_probe_reads_the_server_status_flag() -> None:
    driver = SimpleNamespace(server_status=0x0003)  # IN_TRANS | AUTOCOMMIT
    probe = MYSQL.transaction_probe(driver)
    assert probe is not None
    assert probe() is True
    driver.server_status = 0x0002  # AUTOCOMMIT only: the transaction ended
    assert probe() is False
    assert MYSQL.transaction_probe(SimpleNamespace()) is None  # a driver that keeps none


def test_mysql_begin_opens_the_guard_savepoint_only_where_the_driver_keeps_no_status() -> None:
    run = Recorder()
    outer = MYSQL.begin(SimpleNamespace(autocommit=lambda value: None), run)
    assert outer == OuterTransaction(explicit=True, guarded=True)
    assert run.statements == ["START TRANSACTION", "SAVEPOINT `dbrewind_guard`"]
    run = Recorder()
    outer = MYSQL.begin(SimpleNamespace(autocommit=lambda value: None, server_status=1), run)
    assert outer == OuterTransaction(explicit=True)  # PyMySQL, aiomysql: checked per statement
    assert run.statements == ["START TRANSACTION"]
    assert MYSQL.unseen_commit_check == (
        "SAVEPOINT `dbrewind_call`",
        "RELEASE SAVEPOINT `dbrewind_call`",
    )


def test_mysql_the_guard_savepoint_tells_an_implicit_commit() -> None:
    run = Recorder()
    assert MYSQL.outer_lost(run) is False
    assert run.statements == ["ROLLBACK TO SAVEPOINT `dbrewind_guard`"]
    assert MYSQL.outer_lost(Recorder(DriverError(1305, "SAVEPOINT dbrewind_guard does not exist")))
    with pytest.raises(DriverError):
        MYSQL.outer_lost(Recorder(DriverError(2013, "Lost connection to server")))


def test_mysql_error_1305_means_the_savepoint_is_gone() -> None:
    assert MYSQL.savepoint_missing(DriverError(1305, "SAVEPOINT x does not exist"))
    assert not MYSQL.savepoint_missing(DriverError(1064, "syntax error"))
    assert not MYSQL.savepoint_missing(DriverError())
    assert not POSTGRESQL.savepoint_missing(DriverError(1305, "..."))
    assert not MYSQL.error_aborts(None, DriverError(1062, "Duplicate entry"))


def test_mysql_autocommit_is_read_from_the_drivers_getter() -> None:
    raw = SimpleNamespace(autocommit=lambda value=None: None, get_autocommit=lambda: True)
    assert MYSQL.autocommit(raw, raw) is True
    driver = SimpleNamespace(get_autocommit=lambda: False)
    assert MYSQL.autocommit(SimpleNamespace(autocommit=lambda value=None: None), driver) is False
    assert MYSQL.isolation_autocommit("autocommit") is True
    assert MYSQL.isolation_autocommit("REPEATABLE_READ") is False


def test_quoting_per_database() -> None:
    assert MYSQL.quote("a`b") == "`a``b`"
    assert POSTGRESQL.quote('a"b') == '"a""b"'
    assert SQLITE.quote("sp") == '"sp"'


def test_mysql_messages() -> None:
    assert (
        MYSQL.ended_because == "MySQL/MariaDB commits implicitly before and after some statements"
    )
    assert MYSQL.refused_because.startswith("MySQL/MariaDB commits implicitly before and after DDL")
    assert POSTGRESQL.ended_because == "the statement ended the transaction"


# -------------------------------------------------------------- PostgreSQL
def psycopg(status: int) -> Any:
    return SimpleNamespace(info=SimpleNamespace(transaction_status=status))


def test_postgresql_probe_reads_psycopgs_transaction_status() -> None:
    driver = psycopg(2)  # INTRANS
    probe = POSTGRESQL.transaction_probe(driver)
    assert probe is not None
    assert probe() is True
    driver.info.transaction_status = 3  # INERROR: still inside it
    assert probe() is True
    driver.info.transaction_status = 0  # IDLE: it ended
    assert probe() is False


def test_postgresql_probe_reads_asyncpgs_is_in_transaction() -> None:
    state = {"in": True}
    driver = SimpleNamespace(is_in_transaction=lambda: state["in"])
    probe = POSTGRESQL.transaction_probe(driver)
    assert probe is not None
    assert probe() is True
    state["in"] = False
    assert probe() is False
    # an ``info`` without a transaction status is not psycopg's
    assert POSTGRESQL.transaction_probe(SimpleNamespace(info=object())) is None


def test_postgresql_begin_only_when_the_connection_autocommits() -> None:
    run = Recorder()
    assert POSTGRESQL.begin(SimpleNamespace(autocommit=False), run).explicit is False
    assert run.statements == []
    assert POSTGRESQL.begin(SimpleNamespace(autocommit=True), run).explicit is True
    assert run.statements == ["BEGIN"]


def test_postgresql_an_error_aborts_the_transaction() -> None:
    assert POSTGRESQL.error_aborts(psycopg(3), DriverError("x"))  # INERROR
    assert not POSTGRESQL.error_aborts(psycopg(2), DriverError("x", sqlstate="23505"))
    asyncpg = SimpleNamespace(is_in_transaction=lambda: True)
    assert POSTGRESQL.error_aborts(asyncpg, DriverError("x", sqlstate="23505"))
    assert POSTGRESQL.error_aborts(asyncpg, DriverError("x", pgcode="42P01"))
    assert not POSTGRESQL.error_aborts(asyncpg, DriverError("connection closed"))
    assert not SQLITE.error_aborts(asyncpg, DriverError("x", sqlstate="23505"))


def test_postgresql_deferred_check_with_psycopg_is_one_round_trip() -> None:
    run = Recorder()
    assert POSTGRESQL.check_deferred(psycopg(2), run, "SELECT 1") == (None, True, NotImplemented)
    assert run.statements == ["SELECT 1; SET CONSTRAINTS ALL IMMEDIATE; ROLLBACK"]
    run = Recorder()
    assert POSTGRESQL.check_deferred(psycopg(2), run, None) == (None, True, NotImplemented)
    assert run.statements == ["SET CONSTRAINTS ALL IMMEDIATE; ROLLBACK"]
    assert POSTGRESQL.rollback_with(SimpleNamespace(), "SELECT true") is NotImplemented  # asyncpg


def test_postgresql_deferred_check_with_asyncpg_runs_each_statement() -> None:
    run = Recorder()
    asyncpg = SimpleNamespace(is_in_transaction=lambda: True)
    assert POSTGRESQL.check_deferred(asyncpg, run, "SELECT 1") == (None, False, NotImplemented)
    assert run.statements == ["SELECT 1", "SET CONSTRAINTS ALL IMMEDIATE"]


def test_postgresql_deferred_check_returns_only_integrity_errors() -> None:
    violation = DriverError("fk violated", sqlstate="23503")
    assert POSTGRESQL.check_deferred(psycopg(2), Recorder(violation), None) == (
        violation,
        False,
        NotImplemented,
    )
    other = DriverError("canceled", pgcode="57014")
    assert POSTGRESQL.check_deferred(psycopg(2), Recorder(other), None) == (
        None,
        False,
        NotImplemented,
    )


# -------------------------------------------------------------------- base
def test_the_base_is_a_database_without_surprises() -> None:
    ops = SandboxOps()
    run = Recorder()
    assert ops.transaction_probe(SimpleNamespace(in_transaction=True)) is None
    assert ops.outer_lost(run) is False
    assert run.statements == []
    assert ops.check_deferred(None, run, "SELECT 1") == (None, False, NotImplemented)
    assert run.statements == []
    assert SQLITE.check_deferred(None, run, "SELECT 1") == (None, False, NotImplemented)
    assert MYSQL.check_deferred(None, run, "SELECT 1") == (None, False, NotImplemented)
    assert run.statements == []
    assert ops.rollback_with(None, "SELECT true") is NotImplemented
    assert MYSQL.rollback_with(None, "SELECT true") is NotImplemented
    assert ops.autocommit(SimpleNamespace(autocommit=True), None) is True
    assert ops.autocommit(SimpleNamespace(), None) is False


# ------------------------------------------------------ names per database
@pytest.mark.parametrize(
    ("url", "base", "sibling"),
    [
        ("sqlite:///dir/app_test.db", "app_test", "dir/app_test_tmpl_1.db"),
        ("sqlite:///app_test", "app_test", "app_test_tmpl_1"),
        ("postgresql://u@h/app.test", "app.test", "app.test_tmpl_1"),
        ("mysql://u@h/app_test", "app_test", "app_test_tmpl_1"),
    ],
)
def test_base_names_and_siblings(url: str, base: str, sibling: str) -> None:
    parsed = parse_url(url)
    dialect = get_dialect(parsed.backend)
    assert dialect.base_name(parsed) == base
    assert dialect.sibling(parsed, f"{base}_tmpl_1").database == sibling
    assert dialect.databases_are_files is (parsed.backend == "sqlite")


def test_identities(tmp_path: Path) -> None:
    db = tmp_path / "app_test.db"
    sqlite = get_dialect("sqlite")
    assert sqlite.identity(parse_url(f"sqlite:///{db}")) == ("sqlite", "", None, str(db))
    assert sqlite.identity(parse_url(f"sqlite:///file:{db}?mode=rw&uri=true"))[3] == str(db)
    assert sqlite.identity(parse_url("sqlite://")) == ("sqlite", "", None, ":memory:")
    server = parse_url("postgresql://u@db.example:6543/app_test")
    assert get_dialect("postgresql").identity(server) == (
        "postgresql",
        "db.example",
        6543,
        "app_test",
    )
    assert get_dialect("mysql").identity(parse_url("mysql://u@/app_test"))[1:3] == (
        "localhost",
        None,
    )


def test_urls_from_connect_arguments() -> None:
    mysql = get_dialect("mysql").connect_params_url(
        "", {"db": "app_test", "user": "u", "passwd": "p", "host": "h", "port": "3307"}
    )
    assert mysql.render_as_string(hide_password=False) == "mysql+pymysql://u:p@h:3307/app_test"
    pg = get_dialect("postgresql")
    assert (
        str(pg.connect_params_url("app_test", {"user": "u"})) == "postgresql+psycopg://u@/app_test"
    )
    assert str(pg.connect_params_url("postgres://u@h/app_test", {"user": "x"})) == (
        "postgresql+psycopg://u@h/app_test"
    )
    assert str(get_dialect("sqlite").connect_params_url("t.db", {"timeout": 5})) == "sqlite:///t.db"


# ------------------------------------------------- the rule, kept by a check
SRC = Path(__file__).resolve().parents[2] / "src" / "dbrewind"
_DRIVER_NAMES = (
    "pysqlite|aiosqlite|psycopg|psycopg2|psycopg_async|asyncpg|pymysql|mysqldb|aiomysql|asyncmy"
)
BRANCH = re.compile(
    r"(?:\bbackend\b|\.backend\b|backend_of\([^)]*\)|dialect\.name)\s*(?:==|!=|(?:not\s+)?in\s*\()"
    r"|isinstance\([^,]+,\s*\w*Dialect\)"
    rf"|[!=]=\s*[\"'](?:{_DRIVER_NAMES})[\"']"
)
"""A branch on the database (or its driver) by name: what ``dbrewind.dialects`` is for."""

ALLOWED: dict[str, dict[str, str]] = {
    "_url.py": {
        'if self.backend == "sqlite" and not name:': (
            "URL syntax: a SQLite URL without a path names an in-memory database"
        ),
        'if self.backend != "sqlite":': "URL syntax: only SQLite URLs can name memory",
        'if self.backend == "sqlite":': "URL syntax: a SQLite URL's database is a file path",
        'if backend != "sqlite" and not db_url.database:': (
            "URL syntax: a server URL must name a database, a SQLite URL may name none"
        ),
        'if len(given) == 2 and given[1] == "psycopg":': (
            "URL syntax: the driver part psycopg has an asyncio flavour of the same name"
        ),
    },
    "peewee_async.py": {
        'self.psycopg = module == "psycopg" or module.startswith("psycopg.")': (
            "a driver's capability, not the database's: psycopg 3's client-side cursors "
            "send several statements in one query (aiopg's do too; asyncpg's do not)"
        ),
    },
    "provision/app_engines.py": {
        "if backend != url.backend:": (
            "no database named: an engine is pointed only at a test database of its own kind"
        ),
    },
}
"""Branches outside ``dialects/`` that stay, by file and line, with the reason."""


def test_no_branch_on_the_database_outside_dialects() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(("dialects/", "_sql/")):
            continue
        allowed = ALLOWED.get(relative, {})
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0] if '"#"' not in line else line
            if BRANCH.search(code) and line.strip() not in allowed:
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, (
        "per-database knowledge outside dbrewind.dialects (move it to the dialect, or "
        "allow-list it in this test with the reason it is not):\n" + "\n".join(found)
    )


def test_the_allow_list_has_nothing_stale() -> None:
    for relative, lines in ALLOWED.items():
        text = {line.strip() for line in (SRC / relative).read_text().splitlines()}
        assert set(lines) <= text, (relative, set(lines) - text)
