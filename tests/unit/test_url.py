from __future__ import annotations

import pytest

from dbrewind import ConfigurationError, DriverNotInstalledError, parse_url


@pytest.mark.parametrize(
    ("url", "backend", "database"),
    [
        pytest.param("sqlite:///tmp/app_test.db", "sqlite", "tmp/app_test.db", id="sqlite-file"),
        pytest.param("sqlite://", "sqlite", ":memory:", id="sqlite-memory"),
        pytest.param("postgresql://u:pw@h/app_test", "postgresql", "app_test", id="postgresql"),
        pytest.param("postgres://u@h/app_test", "postgresql", "app_test", id="postgres-alias"),
        pytest.param("mysql+pymysql://root@h/app_test", "mysql", "app_test", id="mysql"),
        pytest.param("mariadb://root@h/app_test", "mysql", "app_test", id="mariadb"),
    ],
)
def test_parse_url_recognises_backend_and_database(url: str, backend: str, database: str) -> None:
    parsed = parse_url(url)
    assert parsed.backend == backend
    assert parsed.database == database


def test_display_hides_password() -> None:
    parsed = parse_url("postgresql://user:s3cret@localhost/app_test")
    assert "s3cret" not in parsed.display()
    assert "s3cret" not in str(parsed)


def test_malformed_url_error_shows_expected_form() -> None:
    with pytest.raises(ConfigurationError, match="Could not parse the database URL") as info:
        parse_url("not a url")
    assert "postgresql://" in str(info.value)


def test_malformed_url_with_credentials_does_not_echo_them() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url("::bad::user:hunter2@host")
    assert "hunter2" not in str(info.value)


def test_empty_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        parse_url("  ")


def test_unknown_scheme_names_supported_databases() -> None:
    with pytest.raises(ConfigurationError, match="Unsupported database 'oracle'") as info:
        parse_url("oracle://scott:tiger@host/app_test")
    assert "sqlite, postgresql and mysql" in str(info.value)
    assert "tiger" not in str(info.value)


def test_server_url_without_database_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="names no database"):
        parse_url("postgresql://postgres@127.0.0.1")


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import dbrewind._url as url_module

    monkeypatch.setattr(url_module, "_module_available", lambda module: module != "asyncpg")
    with pytest.raises(DriverNotInstalledError) as info:
        parse_url("postgresql+asyncpg://u:pw@h/app_test")
    message = str(info.value)
    assert "asyncpg" in message
    assert "pip install 'dbrewind[postgresql]'" in message
    assert "pw@" not in message


@pytest.mark.parametrize(
    ("url", "sync_driver", "async_driver"),
    [
        ("postgresql://u@h/x_test", "psycopg", "asyncpg"),
        ("postgresql+asyncpg://u@h/x_test", "psycopg", "asyncpg"),
        ("postgresql+psycopg://u@h/x_test", "psycopg", "psycopg_async"),
        ("mysql://u@h/x_test", "pymysql", "aiomysql"),
        ("mysql+aiomysql://u@h/x_test", "pymysql", "aiomysql"),
        ("sqlite:///x_test.db", "pysqlite", "aiosqlite"),
        ("sqlite+aiosqlite:///x_test.db", "pysqlite", "aiosqlite"),
    ],
)
def test_sync_and_async_variants_pick_installed_drivers(
    url: str, sync_driver: str, async_driver: str
) -> None:
    parsed = parse_url(url)
    assert parsed.sync_url().get_driver_name() == sync_driver
    assert parsed.async_url().get_driver_name() == async_driver


@pytest.mark.parametrize(
    ("url", "is_test"),
    [
        ("postgresql://u@h/app_test", True),
        ("postgresql://u@h/TestShop", True),
        ("postgresql://u@h/app", False),
        ("mysql://u@h/production", False),
        ("sqlite:////srv/test-data/app.db", False),
        ("sqlite:////srv/data/test_app.db", True),
        ("sqlite://", True),
        ("sqlite:////srv/data/app_test.sqlite3", True),
        ("sqlite:////srv/data/latest.db", False),
        ("postgresql://u@h/test_app", True),
        ("postgresql://u@h/shop-test-2", True),
        ("postgresql://u@h/AppTest", True),
        ("postgresql://u@h/APITests", True),
        ("postgresql://u@h/tests", True),
        ("postgresql://u@h/app_testing", True),
        ("mysql://u@h/app.test", True),
        ("mysql://u@h/app2test", True),
        ("postgresql://u@h/latest_prod", False),
        ("postgresql://u@h/contest", False),
        ("postgresql://u@h/attestations", False),
        ("postgresql://u@h/testimonials", False),
        ("postgresql://u@h/greatest_hits", False),
        ("postgresql://u@h/pytest_prod", False),
        ("postgresql://u@h/TESTDB", False),
    ],
)
def test_name_says_test(url: str, is_test: bool) -> None:
    assert parse_url(url).name_says_test() is is_test
