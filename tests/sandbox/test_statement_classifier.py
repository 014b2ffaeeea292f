"""dbrewind._sql: the one SQL splitter and the one statement classifier, and their users.

The pure tests need no server. The MySQL tests run the same statements
through the SQLAlchemy sandbox and the peewee sandboxes (sync and async) and
expect the same outcome from each.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

import dbrewind
from dbrewind import data, setup
from dbrewind._sql import (
    Control,
    SqlSplitError,
    autocommit_setting,
    commits_implicitly,
    is_read,
    split,
    transaction_control,
)
from dbrewind.dialects._syntax import MYSQL, PORTABLE, POSTGRESQL, SQLITE, syntax_for
from dbrewind.exceptions import ConfigurationError, SandboxBrokenError, SandboxError
from dbrewind.peewee import SavepointRouter
from dbrewind.sandbox import Sandbox

SRC = Path(dbrewind.__file__).parent

TRIGGER_SCRIPT = textwrap.dedent(
    """\
    CREATE TABLE t (i int);
    CREATE TABLE audit (i int);

    DELIMITER //
    CREATE TRIGGER t_audit AFTER INSERT ON t FOR EACH ROW
    BEGIN
        INSERT INTO audit VALUES (NEW.i);
        INSERT INTO audit VALUES (NEW.i + 100);
    END//
    DELIMITER ;
    INSERT INTO t VALUES (1);
    """
)


# ------------------------------------------------------------------- splitting
def test_a_setup_file_with_delimiter_and_a_trigger_body_splits_as_test_data_does() -> None:
    statements = setup.split_sql(TRIGGER_SCRIPT, "mysql")
    assert len(statements) == 4
    assert statements[2].startswith("CREATE TRIGGER t_audit")
    assert statements[2].endswith("END")
    assert "NEW.i + 100);" in statements[2]
    assert statements == [s for _, s in data.split_sql(TRIGGER_SCRIPT, "mysql")]
    assert [line for line, _ in data.split_sql(TRIGGER_SCRIPT, "mysql")] == [1, 2, 5, 11]
    # without a backend, DELIMITER lines are understood too
    assert setup.split_sql(TRIGGER_SCRIPT) == statements


SCRIPTS = {
    "sqlite": "CREATE TABLE a (x);\nCREATE TRIGGER tr AFTER INSERT ON a BEGIN\n"
    "  INSERT INTO a VALUES (1); DELETE FROM a WHERE x = 2;\nEND;\nSELECT [a;b] FROM a",
    "postgresql": "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ "
    "LANGUAGE plpgsql;\n/* a /* nested; */ comment; */ SELECT E'\\';' ; SELECT $$;$$",
    "mysql": "# a comment; here\nSELECT 'it\\'s;' ; SELECT 5--1;\n-- x;\nSELECT /*! 1; */ 2",
}
EXPECTED = {
    "sqlite": 3,
    "postgresql": 3,
    "mysql": 3,
}


@pytest.mark.parametrize("backend_name", sorted(SCRIPTS))
def test_setup_files_and_test_data_split_the_same_way(backend_name: str) -> None:
    script = SCRIPTS[backend_name]
    from_setup = setup.split_sql(script, backend_name)
    from_data = data.split_sql(script, backend_name)
    assert len(from_setup) == EXPECTED[backend_name]
    assert from_setup == [s for _, s in from_data]


def test_dollar_quoted_bodies_and_comments_stay_whole() -> None:
    script = "-- leading; comment\nSELECT $a$ $$; $a$; /* x; */ SELECT 2 -- tail;\n"
    assert split(script, POSTGRESQL) == [(2, "SELECT $a$ $$; $a$"), (2, "SELECT 2 -- tail;")]
    assert split(script, PORTABLE) == [(2, "SELECT $a$ $$; $a$"), (2, "SELECT 2 -- tail;")]


def test_statements_carry_the_line_they_start_on() -> None:
    script = "SELECT 1;\n\n/* two\nlines */\nSELECT\n  2;\n  SELECT 3"
    statements = split(script, SQLITE)
    assert [(s.line, s.text) for s in statements] == [
        (1, "SELECT 1"),
        (5, "SELECT\n  2"),
        (7, "SELECT 3"),
    ]


@pytest.mark.parametrize(
    ("script", "line", "what"),
    [
        pytest.param("SELECT 1;\n\nSELECT 'x;\nSELECT 2", 3, "A string", id="string"),
        pytest.param("SELECT 1;\nSELECT `a\n", 2, "A quoted identifier", id="backtick"),
        pytest.param("SELECT 1;\n/* x", 2, "A /* comment", id="comment"),
    ],
)
def test_an_unclosed_quote_is_reported_with_its_line(script: str, line: int, what: str) -> None:
    with pytest.raises(SqlSplitError) as info:
        split(script, MYSQL)
    assert info.value.line == line
    assert str(info.value) == f"{what} opened on line {line} is never closed"
    with pytest.raises(ValueError, match=f"line {line}"):
        setup.split_sql(script, "mysql")


def test_an_unclosed_dollar_quote_is_reported_with_its_line() -> None:
    with pytest.raises(SqlSplitError, match=r"\$q\$ opened on line 3"):
        split("SELECT 1;\n\nSELECT $q$ x", POSTGRESQL)


def test_a_setup_file_that_cannot_be_split_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "schema.sql"
    path.write_text("CREATE TABLE a (x text);\nINSERT INTO a VALUES ('open);\n")
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn, pytest.raises(ConfigurationError) as info:
            setup.sql_files_setup(path)(conn)
    finally:
        engine.dispose()
    assert "schema.sql" in str(info.value)
    assert "A string opened on line 2 is never closed" in str(info.value)


def test_a_sqlite_setup_file_with_a_trigger_body_runs(tmp_path: Path) -> None:
    path = tmp_path / "schema.sql"
    path.write_text(
        "CREATE TABLE a (x int);\nCREATE TABLE log (x int);\n"
        "CREATE TRIGGER tr AFTER INSERT ON a BEGIN\n"
        "  INSERT INTO log VALUES (new.x); INSERT INTO log VALUES (new.x * 10);\nEND;\n"
        "INSERT INTO a VALUES (2);\n"
    )
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            setup.sql_files_setup(path)(conn)
            rows = conn.execute(text("SELECT x FROM log ORDER BY x")).scalars().all()
    finally:
        engine.dispose()
    assert rows == [2, 20]


# ---------------------------------------------------------------- classifying
@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("BEGIN", Control("begin")),
        ("begin immediate", Control("begin")),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", Control("begin")),
        ("BEGIN NOT DEFERRABLE", Control("begin")),
        ("START TRANSACTION READ ONLY;", Control("begin")),
        ("BEGIN NOT ATOMIC SELECT 1; END", None),
        ("/* c */ COMMIT WORK", Control("commit")),
        ("-- note\n  END TRANSACTION ;", Control("commit")),
        ("COMMIT AND CHAIN", Control("commit", chain=True)),
        ("COMMIT AND NO CHAIN", Control("commit")),
        ("ROLLBACK", Control("rollback")),
        ("abort", Control("rollback")),
        ("ROLLBACK WORK AND CHAIN", Control("rollback", chain=True)),
        ("SAVEPOINT sa_savepoint_1", Control("savepoint", "sa_savepoint_1")),
        ('SAVEPOINT "x"', Control("savepoint", '"x"')),
        ("RELEASE SAVEPOINT x", Control("release", "x")),
        ("RELEASE x", Control("release", "x")),
        ("ROLLBACK TO SAVEPOINT x", Control("rollback_to", "x")),
        ("ROLLBACK WORK TO x;", Control("rollback_to", "x")),
        ("PREPARE TRANSACTION 'x'", Control("two_phase")),
        ("COMMIT PREPARED 'x'", Control("two_phase")),
        ("ROLLBACK PREPARED 'x'", Control("two_phase")),
        ("XA START 'x'", Control("two_phase")),
        ("COMMIT; DELETE FROM t", None),
        ("COMMENT ON TABLE t IS 'x'", None),
        ("SELECT 'BEGIN'", None),
        ("", None),
        ("-- only a comment", None),
    ],
)
def test_transaction_control_is_recognised(statement: str, expected: Control | None) -> None:
    assert transaction_control(statement, POSTGRESQL) == expected


def test_leading_comments_follow_each_databases_rules() -> None:
    assert transaction_control("# note\nCOMMIT", MYSQL) == Control("commit")
    assert transaction_control("# note\nCOMMIT", POSTGRESQL) is None  # not a comment there
    assert commits_implicitly("/* a */ -- b\n# c\n DROP TABLE t", MYSQL)
    assert not commits_implicitly("/*!40101 SET @x = 1 */", MYSQL)  # code, not a comment


@pytest.mark.parametrize(
    ("statement", "read"),
    [
        ("SELECT 1", True),
        ("  -- why\n select 1", True),
        ("/* x */ SHOW TABLES", True),
        ("EXPLAIN SELECT 1", True),
        ("PRAGMA table_info(t)", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ("INSERT INTO t VALUES (1)", False),
        ("-- SELECT\nDELETE FROM t", False),
    ],
)
def test_reads_are_recognised(statement: str, read: bool) -> None:
    assert is_read(statement, SQLITE) is read


MYSQL_STATEMENTS = [
    # (statement, commits implicitly)
    ("CHECK TABLE t", True),
    ("RESET QUERY CACHE", True),
    ("LOAD INDEX INTO CACHE t", True),
    ("CREATE TABLE x (i int)", True),
    ("CREATE TEMPORARY TABLE y (i int)", False),
    ("SET autocommit=1", True),
    ("SET PASSWORD = PASSWORD('x')", True),
]


@pytest.mark.parametrize(
    ("statement", "commits"),
    [
        *MYSQL_STATEMENTS,
        ("CREATE OR REPLACE TEMPORARY TABLE y (i int)", False),
        ("DROP TEMPORARY TABLE IF EXISTS y", False),
        ("ALTER TABLE t ADD COLUMN j int", True),
        ("CREATE INDEX ix ON t (i)", True),
        ("CACHE INDEX t IN hot", True),
        ("FLUSH TABLES", True),
        ("GRANT SELECT ON *.* TO u", True),
        ("RENAME TABLE a TO b", True),
        ("TRUNCATE t", True),
        ("LOCK TABLES t WRITE", True),
        ("ANALYZE TABLE t", True),
        ("OPTIMIZE TABLE t", True),
        ("REPAIR TABLE t", True),
        ("INSTALL PLUGIN p SONAME 'p.so'", True),
        ("UNINSTALL PLUGIN p", True),
        ("SET SESSION autocommit = ON", True),
        ("SET @@session.autocommit=1", True),
        ("set names utf8mb4, autocommit := 1", True),
        ("SET autocommit=0", False),
        ("SET @password = 'x'", False),
        ("CHECKSUM TABLE t", False),
        ("UNLOCK TABLES", False),
        ("SELECT 1", False),
        ("INSERT INTO t VALUES (1)", False),
    ],
)
def test_mysql_implicit_commits_are_recognised(statement: str, commits: bool) -> None:
    assert commits_implicitly(statement, MYSQL) is commits


@pytest.mark.parametrize("syntax", [SQLITE, POSTGRESQL], ids=lambda s: s.name)
def test_ddl_commits_nothing_where_it_is_transactional(syntax: Any) -> None:
    assert not commits_implicitly("CREATE TABLE x (i int)", syntax)
    assert autocommit_setting("SET autocommit = 1", syntax) is None


def test_autocommit_settings_are_read_both_ways() -> None:
    assert autocommit_setting("SET autocommit = 1", MYSQL) is True
    assert autocommit_setting("SET autocommit = OFF", MYSQL) is False
    assert autocommit_setting("SET names utf8mb4", MYSQL) is None
    assert autocommit_setting("SETTLE autocommit = 1", MYSQL) is None


def test_each_backend_and_dialect_name_has_its_syntax() -> None:
    assert syntax_for("mysql") is MYSQL
    assert syntax_for("mariadb") is MYSQL
    assert syntax_for("postgresql") is POSTGRESQL
    assert syntax_for("sqlite") is SQLITE
    assert syntax_for("oracle").name == "standard"


def test_the_sql_package_knows_no_database_by_name_and_dialects_do_not_import_it() -> None:
    for path in sorted((SRC / "_sql").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        found = re.findall(r"""["'](?:mysql|mariadb|postgresql|sqlite)["']|\bbackend\b""", source)
        assert not found, f"{path.name} names a database: {found}"
    for path in sorted((SRC / "dialects").glob("*.py")):
        assert "_sql" not in re.findall(r"from \.\.(\w+)", path.read_text(encoding="utf-8"))


# ------------------------------------------------------ the sandboxes on MySQL
@pytest.fixture
def app_engine(db_url: URL) -> Iterator[Engine]:
    """An engine on a fresh MySQL database holding table ``t``."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (i int)"))
    try:
        yield engine
    finally:
        engine.dispose()


def _peewee_params(url: URL) -> dict[str, Any]:
    return {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password or "",
    }


def sqlalchemy_outcome(engine: Engine, statement: str) -> BaseException | None:
    try:
        with Sandbox(engine), engine.connect() as conn:
            conn.execute(text(statement))
    except SandboxError as exc:
        return exc
    return None


def peewee_outcome(url: URL, statement: str) -> BaseException | None:
    from dbrewind.peewee import TransactionTestCase

    db = peewee.MySQLDatabase(url.database, **_peewee_params(url))
    try:
        with TransactionTestCase(db, safety_net=False):
            db.execute_sql(statement)
    except SandboxError as exc:
        return exc
    finally:
        db.close()
    return None


def peewee_async_outcome(url: URL, statement: str) -> BaseException | None:
    import peewee_async

    from dbrewind.peewee import close_rewinders
    from dbrewind.peewee_async import TransactionTestCase

    async def run() -> BaseException | None:
        db = peewee_async.MySQLDatabase(
            url.database, **_peewee_params(url), pool_params={"minsize": 1, "maxsize": 2}
        )
        try:
            async with TransactionTestCase(db, safety_net=False):
                await db.aio_execute_sql(statement)
        except SandboxError as exc:
            return exc
        finally:
            close_rewinders()
            await db.aio_close()
            db.close()
        return None

    return asyncio.run(run())


@pytest.mark.backends("mysql")
@pytest.mark.parametrize(
    ("statement", "refused"),
    [(s, c) for s, c in MYSQL_STATEMENTS if not s.startswith("SET PASSWORD")],
)
def test_both_sandboxes_give_the_same_outcome_on_mysql(
    app_engine: Engine, db_url: URL, statement: str, refused: bool
) -> None:
    outcomes = {
        "sqlalchemy": sqlalchemy_outcome(app_engine, statement),
        "peewee": peewee_outcome(db_url, statement),
        "peewee_async": peewee_async_outcome(db_url, statement),
    }
    kinds = {which: type(error) for which, error in outcomes.items()}
    assert len(set(kinds.values())) == 1, kinds  # the same error class from each sandbox
    for which, error in outcomes.items():
        if refused:
            assert isinstance(error, SandboxBrokenError), f"{which} ran {statement!r}"
            assert statement in str(error), f"{which}: {error}"
        else:
            assert error is None, f"{which}: {error}"
    with app_engine.connect() as conn:  # nothing the sandboxes ran was committed
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name = 'x'"
                )
            ).scalar_one()
            == 0
        )


def test_set_password_is_refused_by_both_sandboxes_before_it_runs() -> None:
    # classified only: running it would change the server user's password
    statement = "SET PASSWORD = PASSWORD('x')"
    assert commits_implicitly(statement, MYSQL)  # the SQLAlchemy sandbox's check
    with pytest.raises(SandboxError, match=re.escape(statement)):
        SavepointRouter("mysql", "db").route(statement)


@pytest.mark.backends("mysql")
def test_a_mysql_setup_file_with_a_trigger_body_runs(app_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "schema.sql"
    path.write_text(TRIGGER_SCRIPT.replace("CREATE TABLE t (i int);\n", ""))
    with app_engine.begin() as conn:
        setup.sql_files_setup(path)(conn)
    with app_engine.connect() as conn:
        rows = conn.execute(text("SELECT i FROM audit ORDER BY i")).scalars().all()
    assert rows == [1, 101]


@pytest.mark.parametrize(
    "statement",
    ["PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'", "XA START 'x'"],
)
def test_two_phase_commit_is_refused_by_both_sandboxes(statement: str, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        error = sqlalchemy_outcome(engine, statement)
    finally:
        engine.dispose()
    assert isinstance(error, SandboxError)
    assert "two-phase commit" in str(error)
    assert statement in str(error)
    with pytest.raises(SandboxError, match="two-phase commit"):
        SavepointRouter("sqlite", "db").route(statement)


@pytest.mark.backends("sqlite", "postgresql", "mysql")
def test_commit_and_chain_keeps_the_sandbox(backend: str, app_engine: Engine) -> None:
    with Sandbox(app_engine), app_engine.connect() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        conn.exec_driver_sql("COMMIT AND CHAIN" if backend != "sqlite" else "COMMIT")
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        conn.exec_driver_sql("/* undo */ ROLLBACK")
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
    with app_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0
