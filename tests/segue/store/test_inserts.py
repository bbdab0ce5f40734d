"""insert_if_absent says truthfully whether it wrote, on PostgreSQL and SQLite, even under races."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from include.payments.catalog import seed_catalog
from include.payments.database import payments_engine
from include.payments.tables import StockRow
from segue.store.engine import session_scope
from segue.store.inserts import insert_if_absent


@pytest.fixture(params=["postgresql", "sqlite"])
def any_engine(request, clean_db, tmp_path):
    if request.param == "postgresql":
        with session_scope(clean_db) as session:
            session.execute(StockRow.__table__.delete())
        return clean_db
    return payments_engine(f"sqlite:///{tmp_path / 'store.db'}")


def test_reports_written_then_not_written(any_engine):
    with session_scope(any_engine) as session:
        assert seed_catalog(session, stock=5) == 4
    with session_scope(any_engine) as session:
        assert seed_catalog(session, stock=999) == 0
        assert session.get(StockRow, "SKU-MUG").available == 5


def test_concurrent_writers_of_one_key_write_once(any_engine):
    def write(_: int) -> bool:
        with session_scope(any_engine) as session:
            row = {"sku": "SKU-RACE", "name": "race", "available": 1}
            return insert_if_absent(session, StockRow.__table__, row)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(write, range(16)))
    assert results.count(True) == 1
    with session_scope(any_engine) as session:
        count = select(func.count()).select_from(StockRow).where(StockRow.sku == "SKU-RACE")
        assert session.scalar(count) == 1
