"""single_statement runs each statement as its own transaction: no BEGIN/COMMIT pair around it."""

from __future__ import annotations

from sqlalchemy import select, text

from include.payments.tables import StockRow
from segue.store.engine import build_engine, session_scope, single_statement


def test_a_statement_takes_effect_without_a_commit_and_opens_no_transaction(clean_db):
    with single_statement(clean_db) as connection:
        status = connection.connection.dbapi_connection.info.transaction_status
        connection.execute(
            StockRow.__table__.insert().values(sku="SKU-ALONE", name="alone", available=3)
        )
        after = connection.connection.dbapi_connection.info.transaction_status
        with session_scope(clean_db) as other:  # another connection sees it at once
            assert other.scalar(select(StockRow.available).where(StockRow.sku == "SKU-ALONE")) == 3
    assert status.name == after.name == "IDLE"  # not INTRANS: no BEGIN was sent


def test_the_pooled_connection_goes_back_transactional(clean_db):
    engine = build_engine(clean_db.url.render_as_string(hide_password=False), pool_size=1)
    try:
        with single_statement(engine) as connection:
            assert connection.scalar(text("SELECT 1")) == 1
            used = connection.connection.dbapi_connection
        with session_scope(engine) as session:  # the pool's one connection, in a transaction
            session.execute(text("SELECT 1"))
            dbapi_connection = session.connection().connection.dbapi_connection
            assert dbapi_connection is used
            assert dbapi_connection.info.transaction_status.name == "INTRANS"
    finally:
        engine.dispose()
