"""Rewinder's running totals, which a test runner can report."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from dbrewind import Rewinder


def test_rewinder_counts_checks_rewinds_and_the_time_spent(db_url: URL, engine: Engine) -> None:
    with Rewinder(db_url) as rewinder:
        rewinder.prepare(lambda c: c.execute(text("CREATE TABLE tally (id INTEGER PRIMARY KEY)")))

        assert rewinder.rewind().clean
        assert (rewinder.checks, rewinder.rewinds, rewinder.seconds) == (1, 0, 0.0)

        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tally (id) VALUES (1), (2)"))
        result = rewinder.rewind()

        assert result.deleted == {result.tables[0]: 2}
        assert (rewinder.checks, rewinder.rewinds) == (2, 1)
        assert rewinder.seconds == result.seconds > 0
