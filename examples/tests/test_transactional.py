"""Tests that need real commits (other connections, threads): the clean strategy rewinds them."""

from __future__ import annotations

import threading

import pytest
from bookshop.models import Author, Country
from sqlalchemy import Connection, Engine, func, insert, select, update


def _count_authors(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Author)) or 0


@pytest.mark.dbrewind(transactional=True)
def test_a_write_from_another_thread_is_seen_and_later_rewound(db_engine: Engine) -> None:
    def worker() -> None:
        with db_engine.begin() as conn:
            conn.execute(insert(Author), [{"name": "Thread"}, {"name": "Worker"}])

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()

    assert _count_authors(db_engine) == 2


def test_transactional_db_commits_for_real(transactional_db: Connection) -> None:
    transactional_db.execute(update(Country).where(Country.code == "FR").values(vat_percent=20))
    transactional_db.execute(insert(Author).values(name="Committed"))
    transactional_db.commit()
    assert transactional_db.scalar(select(func.count()).select_from(Author)) == 1


# MySQL/MariaDB: an insert that is rolled back still advances AUTO_INCREMENT, and
# only DDL puts it back, so ids after a rolled-back test are not promised there.
@pytest.mark.dbrewind(backends=["sqlite", "postgresql"])
def test_ids_start_from_the_baseline_in_every_test(transactional_db: Connection) -> None:
    transactional_db.execute(insert(Author).values(name="First"))
    transactional_db.commit()
    assert transactional_db.scalar(select(Author.id).where(Author.name == "First")) == 1


def test_committed_rows_of_other_tests_are_gone(transactional_db: Connection) -> None:
    assert transactional_db.scalar(select(func.count()).select_from(Author)) == 0
    vat = transactional_db.scalar(select(Country.vat_percent).where(Country.code == "FR"))
    assert vat == 5
