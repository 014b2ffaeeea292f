"""``Rewinder(reset_sequences=...)``: when a rewind puts counters back, on every backend.

``auto`` (the default) puts them back where that is cheap (PostgreSQL, SQLite) and on
MySQL/MariaDB, where it is DDL, only when asked (``rewind(reset_sequences=True)``,
``restore_counters()``); ``always`` and ``never`` do what they say. The rows go back to
the baseline whatever the setting.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.engine import URL, Connection, Engine

from dbrewind import Rewinder
from dbrewind.exceptions import ConfigurationError

metadata = MetaData()
author = Table(
    "author",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False),
    sqlite_autoincrement=True,
)
SEEDS = 2


def setup(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(insert(author), [{"name": f"seed-{i}"} for i in range(SEEDS)])


def add(engine: Engine) -> int:
    with engine.begin() as conn:
        pk = conn.execute(insert(author).values(name="new")).inserted_primary_key
    assert pk is not None
    return int(pk[0])


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(author)).scalar_one())


@pytest.fixture
def make(db_url: URL) -> Iterator[type[Rewinder]]:
    made: list[Rewinder] = []

    def build(**options: object) -> Rewinder:
        rewinder = Rewinder(db_url, **options)  # type: ignore[arg-type]
        made.append(rewinder)
        rewinder.prepare(setup)
        return rewinder

    try:
        yield build  # type: ignore[misc]
    finally:
        for rewinder in made:
            rewinder.close()


@pytest.mark.parametrize(
    ("setting", "normalised"),
    [
        (None, "auto"),
        ("auto", "auto"),
        ("always", "always"),
        ("never", "never"),
        (True, "always"),
        (False, "never"),
        ("ALWAYS", "always"),
    ],
)
def test_each_setting_restarts_ids_only_where_it_says_and_rewinds_the_rows_always(
    backend: str, make: type[Rewinder], engine: Engine, setting: object, normalised: str
) -> None:
    options = {} if setting is None else {"reset_sequences": setting}
    rewinder = make(**options)
    assert rewinder.reset_sequences == normalised
    restarts = normalised == "always" or (normalised == "auto" and backend != "mysql")
    assert rewinder.resets_sequences() is restarts

    first = add(engine)
    rewinder.rewind()
    assert count(engine) == SEEDS
    second = add(engine)
    rewinder.rewind()
    assert count(engine) == SEEDS

    assert first == SEEDS + 1
    assert second == (SEEDS + 1 if restarts else SEEDS + 2)


def test_auto_is_always_on_postgresql_and_sqlite_and_asked_for_on_mysql(
    backend: str, make: type[Rewinder]
) -> None:
    rewinder = make()
    assert rewinder.dialect.cheap_counter_reset is (backend != "mysql")
    assert rewinder.resets_sequences() is (backend != "mysql")
    assert rewinder.resets_sequences(True) is True
    assert rewinder.resets_sequences(False) is False


def test_a_rewind_that_asks_overrides_the_setting_either_way(
    backend: str, make: type[Rewinder], engine: Engine
) -> None:
    never = make(reset_sequences="never")
    add(engine)
    never.rewind(reset_sequences=True)
    assert add(engine) == SEEDS + 1  # this rewind put it back
    never.rewind()
    assert add(engine) == SEEDS + 2  # this one did not
    never.reset_sequences = "always"
    never.rewind(reset_sequences=False)
    assert add(engine) == SEEDS + 3
    never.rewind()
    assert count(engine) == SEEDS
    assert add(engine) == SEEDS + 1


def test_restore_counters_puts_back_what_earlier_rewinds_left_moved(
    backend: str, make: type[Rewinder], engine: Engine
) -> None:
    rewinder = make(reset_sequences="never")
    add(engine)
    rewinder.rewind()
    add(engine)
    rewinder.rewind()
    rewinder.restore_counters()
    assert count(engine) == SEEDS
    assert add(engine) == SEEDS + 1


def test_restore_counters_on_mysql_also_puts_back_what_a_rolled_back_insert_used_up(
    backend: str, make: type[Rewinder], engine: Engine
) -> None:
    if backend != "mysql":
        pytest.skip("a rolled-back insert moves no counter elsewhere")
    rewinder = make()
    with engine.connect() as conn:
        conn.execute(insert(author).values(name="rolled back"))
        conn.rollback()
    assert rewinder.dirty_tables() == []
    rewinder.restore_counters()
    assert add(engine) == SEEDS + 1


@pytest.mark.parametrize("bad", ["sometimes", "", 1, None])
def test_a_bad_setting_names_the_option_and_the_allowed_values(
    backend: str, db_url: URL, bad: object
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Rewinder(db_url, reset_sequences=bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert "reset_sequences" in message
    assert "auto, always, never" in message
    with Rewinder(db_url) as rewinder, pytest.raises(ConfigurationError):
        rewinder.reset_sequences = bad  # type: ignore[assignment]
