"""The safety guard: nothing outside a test database is ever touched.

A database dbrewind may write to is one whose name has the word ``test``,
``tests`` or ``testing``, one dbrewind created, or one the user allowed by name
— judged on the database a connection actually reached. Every test here points
dbrewind at a database that is none of these, holding tables, rows, triggers,
routines (and on PostgreSQL a schema of its own, on MariaDB an event), lets the
library or a whole pytest run do its worst, and then compares a dump of that
database with the dump taken before: they must be identical, byte for byte.
"""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url

from conftest import SERVER_URLS, drop_database, make_database, require_backend
from dbrewind import Rewinder
from dbrewind.exceptions import ServerUnreachableError, UnsafeDatabaseError
from helpers.runs import drop_derived, pytest_args, start

# Names a human reads as "not a test database", though they contain the letters.
LOOKALIKES = [
    "latest_prod",
    "contest",
    "attestations",
    "testimonials",
    "greatest_hits",
    "pytest_prod",
]

_OBJECTS = {
    "sqlite": [
        "CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)",
        "CREATE TABLE audit (customer_id INTEGER, note TEXT)",
        "CREATE TRIGGER customers_audit AFTER INSERT ON customers "
        "BEGIN INSERT INTO audit VALUES (NEW.id, 'created'); END",
        "CREATE VIEW named AS SELECT name FROM customers",
        "INSERT INTO customers (name) VALUES ('Ada'), ('Grace'), ('Edsger')",
    ],
    "postgresql": [
        "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL)",
        "CREATE TABLE audit (customer_id int, note text)",
        "CREATE SCHEMA billing",
        "CREATE TABLE billing.invoices (id serial PRIMARY KEY, total numeric(10, 2))",
        "CREATE FUNCTION audit_customer() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN INSERT INTO audit VALUES (NEW.id, 'created'); RETURN NEW; END $$",
        "CREATE TRIGGER customers_audit AFTER INSERT ON customers "
        "FOR EACH ROW EXECUTE FUNCTION audit_customer()",
        "INSERT INTO customers (name) VALUES ('Ada'), ('Grace'), ('Edsger')",
        "INSERT INTO billing.invoices (total) VALUES (12.50), (99.99)",
    ],
    "mysql": [
        "CREATE TABLE customers (id int AUTO_INCREMENT PRIMARY KEY, name varchar(60) NOT NULL)",
        "CREATE TABLE audit (customer_id int, note varchar(60))",
        "CREATE TRIGGER customers_audit AFTER INSERT ON customers "
        "FOR EACH ROW INSERT INTO audit VALUES (NEW.id, 'created')",
        "CREATE PROCEDURE count_customers() SELECT COUNT(*) FROM customers",
        "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' "
        "DISABLE DO DELETE FROM audit",
        "INSERT INTO customers (name) VALUES ('Ada'), ('Grace'), ('Edsger')",
    ],
}

# A setup a test suite might run: it drops and recreates the tables (rows gone).
DESTRUCTIVE_SETUP = """
def setup(conn):
    import sqlalchemy as sa
    conn.execute(sa.text("DROP TABLE IF EXISTS audit"))
    conn.execute(sa.text("DROP TABLE IF EXISTS customers"))
    conn.execute(sa.text("CREATE TABLE customers (id integer PRIMARY KEY, name varchar(60))"))
"""


def _hex() -> str:
    """Eight hex digits: letters a-f only, so no suffix can spell a word of 'test'."""
    return uuid.uuid4().hex[:8]


def _sqlite_path(url: URL) -> Path:
    return Path(str(url.database))


def snapshot(backend: str, url: URL) -> str:
    """Everything the database holds, as text: a full dump (schema, rows, triggers,
    routines, events, counters), or for SQLite the digest of its files' bytes."""
    if backend == "sqlite":
        path = _sqlite_path(url)
        parts = []
        for suffix in ("", "-wal", "-shm", "-journal"):
            companion = Path(str(path) + suffix)
            if companion.exists():
                parts.append(
                    f"{companion.name}:{hashlib.sha256(companion.read_bytes()).hexdigest()}"
                )
        return "\n".join(parts)
    if backend == "postgresql":
        command = ["pg_dump", "-h", str(url.host), "-p", str(url.port or 5432)]
        command += ["-U", str(url.username), "--no-password", str(url.database)]
    else:
        command = ["mariadb-dump", "-h", str(url.host), "-P", str(url.port or 3306)]
        command += ["-u", str(url.username), "--routines", "--events", "--triggers"]
        command += ["--skip-dump-date", "--databases", str(url.database)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    # pg_dump fences its output with a random key per dump: not the database's content
    lines = done.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))


def inventory(conn: Connection, backend: str, name: str) -> list[tuple[str, ...]]:
    """The objects of a system database (whose statistics rows change on their own)."""
    if backend == "postgresql":
        sql = (
            "SELECT 'rel', n.nspname, c.relname, c.relkind::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "UNION ALL SELECT 'trigger', tgrelid::regclass::text, tgname, '' FROM pg_trigger "
            "UNION ALL SELECT 'routine', pronamespace::regnamespace::text, proname, '' "
            "FROM pg_proc "
            "UNION ALL SELECT 'schema', nspname, '', '' FROM pg_namespace "
            "UNION ALL SELECT 'comment', '', "
            "coalesce(shobj_description(oid, 'pg_database'), ''), '' "
            "FROM pg_database WHERE datname = current_database()"
        )
        rows = conn.execute(text(sql))
    else:
        sql = (
            "SELECT 'table', TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = :s UNION ALL "
            "SELECT 'trigger', TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = :s UNION ALL "
            "SELECT 'routine', ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = :s UNION ALL "
            "SELECT 'event', EVENT_NAME, '' FROM information_schema.EVENTS WHERE EVENT_SCHEMA = :s "
            "UNION ALL SELECT 'comment', SCHEMA_COMMENT, '' FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = :s"
        )
        rows = conn.execute(text(sql), {"s": name})
    return sorted(tuple(str(v) for v in row) for row in rows)


@pytest.fixture
def production(backend: str, tmp_path: Path) -> Iterator[Callable[[str], URL]]:
    """Make a database that is not a test database, filled like an application's."""
    made: list[URL] = []

    def make(name: str) -> URL:
        if backend == "sqlite":
            (tmp_path / "data").mkdir(exist_ok=True)
            url = make_url(f"sqlite:///{tmp_path / 'data' / (name + '.db')}")
        else:
            url = make_database(backend, tmp_path, name)
        made.append(url)
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                for statement in _OBJECTS[backend]:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()
        return url

    yield make
    for url in made:
        drop_database(backend, url)


def _setup(conn: Connection) -> None:
    """What a careless setup does: drop the tables it finds and start again."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS audit")
    conn.exec_driver_sql("DROP TABLE IF EXISTS customers")
    conn.exec_driver_sql("CREATE TABLE customers (id integer PRIMARY KEY, name varchar(60))")


def _every_write(url: URL | str) -> list[str]:
    """Try each thing the library does that writes; the names of those that were refused."""
    refused = []
    actions: dict[str, Callable[[Rewinder], object]] = {
        "prepare": lambda r: r.prepare(_setup),
        "install": lambda r: r.install(),
        "rewind": lambda r: r.rewind(),
        "create": lambda r: r.create(),
        "drop": lambda r: r.drop(),
        "prepare(recreate=True)": lambda r: r.prepare(_setup, recreate=True),
    }
    for action, call in actions.items():
        with Rewinder(url) as rewinder, pytest.raises(UnsafeDatabaseError) as caught:
            call(rewinder)
        assert "test" in str(caught.value)
        refused.append(action)
    return refused


@pytest.mark.parametrize("name", LOOKALIKES)
def test_a_name_that_only_contains_the_letters_test_is_refused(
    backend: str, name: str, production: Callable[[str], URL], record_property: Callable[..., None]
) -> None:
    """A production-looking name that contains the letters "test" (latest_prod, contest, ...)"""
    url = production(f"{name}_{_hex()}")
    before = snapshot(backend, url)
    refused = _every_write(url)
    assert snapshot(backend, url) == before
    record_property("result", f"refused {len(refused)} of {len(refused)} writes; dump unchanged")


@pytest.mark.backends("postgresql", "mysql")
def test_a_servers_own_databases_are_refused(
    backend: str, record_property: Callable[..., None]
) -> None:
    """The server's default databases (postgres, root; mysql)"""
    require_backend(backend)
    names = ["postgres", "root"] if backend == "postgresql" else ["mysql"]
    engine = create_engine(SERVER_URLS[backend])
    try:
        for name in names:
            url = make_url(SERVER_URLS[backend]).set(database=name)
            with engine.connect() as conn:
                if backend == "postgresql":
                    exists = conn.execute(
                        text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                    ).first()
                    if exists is None:
                        continue
            admin = create_engine(url)
            try:
                with admin.connect() as conn:
                    before = inventory(conn, backend, name)
                _every_write(url)
                with admin.connect() as conn:
                    assert inventory(conn, backend, name) == before
            finally:
                admin.dispose()
    finally:
        engine.dispose()
    record_property("result", f"{', '.join(names)}: every write refused, objects unchanged")


def _redirecting_urls(backend: str, prod: URL, tmp_path: Path) -> dict[str, URL]:
    """URLs that name a test database while the connection lands in ``prod``."""
    test_name = f"app_{_hex()}_test"
    if backend == "sqlite":
        link = tmp_path / "data" / f"{test_name}.db"
        link.symlink_to(_sqlite_path(prod))
        return {"a test-named symbolic link to the file": make_url(f"sqlite:///{link}")}
    base = make_url(SERVER_URLS[backend]).set(database=test_name)
    if backend == "postgresql":
        return {"?dbname= in the query": base.update_query_dict({"dbname": str(prod.database)})}
    return {
        "?init_command=USE ..": base.update_query_dict({"init_command": f"USE {prod.database}"})
    }


def test_a_test_url_whose_connection_reaches_another_database_is_refused(
    backend: str,
    production: Callable[[str], URL],
    tmp_path: Path,
    record_property: Callable[..., None],
) -> None:
    """A test-named URL whose connection lands elsewhere (query option, defaults file, symlink)"""
    prod = production(f"shop_{_hex()}")
    before = snapshot(backend, prod)
    tried = []
    for how, url in _redirecting_urls(backend, prod, tmp_path).items():
        for action in ("prepare", "create"):
            with Rewinder(url) as rewinder, pytest.raises(UnsafeDatabaseError) as caught:
                getattr(rewinder, action)()
            assert "reached the database" in str(caught.value), str(caught.value)
        assert snapshot(backend, prod) == before
        if backend != "sqlite":
            # nothing is left of the test database either: made for the write, then dropped
            with Rewinder(make_url(str(url)).set(query={}), allow=True) as named:
                assert not named.exists()
        tried.append(how)
    record_property("result", f"refused ({'; '.join(tried)}); dump unchanged")


@pytest.mark.backends("postgresql", "mysql")
def test_a_service_or_defaults_file_cannot_send_a_test_url_elsewhere(
    backend: str,
    production: Callable[[str], URL],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[..., None],
) -> None:
    """A test-named URL with ?service= / ?read_default_file= naming another database"""
    prod = production(f"shop_{_hex()}")
    before = snapshot(backend, prod)
    url = make_url(SERVER_URLS[backend]).set(database=f"app_{_hex()}_test")
    options = tmp_path / "options.conf"
    if backend == "postgresql":
        options.write_text(f"[shop]\ndbname={prod.database}\nhost=127.0.0.1\nuser=postgres\n")
        monkeypatch.setenv("PGSERVICEFILE", str(options))
        url = url.update_query_dict({"service": "shop"})
    else:
        options.write_text(f"[client]\ndatabase={prod.database}\n")
        url = url.update_query_dict({"read_default_file": str(options)})
    try:
        with Rewinder(url) as rewinder:
            rewinder.prepare(_setup)  # the URL's own name wins: it lands in the test database
            with rewinder.connection() as conn:
                assert rewinder.dialect.connected_database(conn) == url.database
    finally:
        drop_database(backend, url)
    assert snapshot(backend, prod) == before
    record_property("result", "the URL's own database wins; the file's database unchanged")


@pytest.mark.backends("postgresql", "mysql")
def test_a_remote_host_that_cannot_be_reached_gets_no_write(
    backend: str, record_property: Callable[..., None]
) -> None:
    """A production name on a remote host (unresolvable here)"""
    require_backend(backend)
    scheme = "postgresql+psycopg" if backend == "postgresql" else "mysql+pymysql"
    url = f"{scheme}://app@prod-db.example.invalid/shop?connect_timeout=2"
    started = time.monotonic()
    with Rewinder(url) as rewinder, pytest.raises(ServerUnreachableError) as caught:
        rewinder.prepare(_setup)
    assert "prod-db.example.invalid" in str(caught.value)
    assert time.monotonic() - started < 30
    record_property("result", "ServerUnreachableError naming the host; nothing sent")


def _project(tmp_path: Path, conftest: str = "") -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        textwrap.dedent(
            DESTRUCTIVE_SETUP
            + """
import pytest

@pytest.fixture(scope="session")
def dbrewind_setup():
    return setup
"""
            + conftest
        )
    )
    (project / "test_app.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa

            def test_commits(transactional_db):
                transactional_db.execute(sa.text("INSERT INTO customers VALUES (1, 'x')"))
                transactional_db.commit()

            def test_sandboxed(db):
                db.execute(sa.text("INSERT INTO customers VALUES (2, 'y')"))
            """
        )
    )
    return project


def _derived(url: URL, backend: str) -> URL:
    if backend == "sqlite":
        path = _sqlite_path(url)
        return url.set(database=str(path.with_name(f"{path.stem}_test{path.suffix}")))
    return url.set(database=f"{url.database}_test")


@pytest.mark.parametrize("source", ["option", "env"])
def test_the_plugin_works_on_a_derived_test_database_and_leaves_the_app_database_alone(
    backend: str,
    source: str,
    production: Callable[[str], URL],
    tmp_path: Path,
    record_property: Callable[..., None],
) -> None:
    """An application's DATABASE_URL given to the plugin (--dbrewind-url or DBREWIND_URL)"""
    app = production(f"shop_{_hex()}")
    before = snapshot(backend, app)
    rendered = app.render_as_string(hide_password=False)
    env = {"DBREWIND_URL": rendered} if source == "env" else {}
    args = pytest_args(app if source == "option" else None, "-v")  # -v: the header too
    try:
        code, out = start(_project(tmp_path), args, env=env).finish()
        assert code == 0, out
        assert "is not a test database, so dbrewind works on" in out, out
    finally:
        drop_derived(backend, _derived(app, backend))
    assert snapshot(backend, app) == before
    record_property("result", "ran on <name>_test, said so in the header; app database unchanged")


def test_the_plugin_refuses_a_test_url_that_reaches_another_database(
    backend: str, production: Callable[[str], URL], tmp_path: Path
) -> None:
    """A whole pytest run on a test-named URL whose connection lands in the app's database"""
    prod = production(f"shop_{_hex()}")
    before = snapshot(backend, prod)
    url = next(iter(_redirecting_urls(backend, prod, tmp_path).values()))
    try:
        code, out = start(_project(tmp_path), pytest_args(url)).finish()
        assert code != 0, out
        assert "reached the database" in out, out
    finally:
        drop_derived(backend, url.set(query={}))
    assert snapshot(backend, prod) == before


@pytest.mark.parametrize("kind", ["clean_db_urls", "unittest"])
def test_other_entry_points_refuse_a_non_test_database(
    backend: str, kind: str, production: Callable[[str], URL], tmp_path: Path
) -> None:
    """The same database through pytest-clean-database's clean_db_urls and dbrewind.unittest"""
    prod = production(f"latest_prod_{_hex()}")
    before = snapshot(backend, prod)
    rendered = prod.render_as_string(hide_password=False)
    project = tmp_path / "project"
    project.mkdir()
    if kind == "clean_db_urls":
        (project / "conftest.py").write_text(
            textwrap.dedent(
                f"""
                import pytest

                @pytest.fixture(scope="session")
                def clean_db_urls():
                    return [{rendered!r}]
                """
            )
        )
        body = """
            import sqlalchemy as sa

            def test_reads(clean_db_urls):
                engine = sa.create_engine(clean_db_urls[0])
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT COUNT(*) FROM customers")).scalar() == 3
                engine.dispose()
            """
    else:
        body = f"""
            import sqlalchemy as sa
            from dbrewind.unittest import TestCase

            class Shop(TestCase):
                database_url = {rendered!r}

                def test_reads(self):
                    self.db.execute(sa.text("INSERT INTO customers (name) VALUES ('z')"))
            """
    (project / "test_app.py").write_text(textwrap.dedent(body))
    code, out = start(project, pytest_args(None)).finish()
    assert code != 0, out
    assert "Refusing to use database" in out, out
    assert snapshot(backend, prod) == before
