"""The business store also works on SQLite, the embedded default."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from include.payments import pipeline
from include.payments.catalog import seed_catalog
from include.payments.database import COMPONENTS, payments_engine
from include.payments.deps import PaymentDeps
from include.payments.gateway_client import GatewayClient
from include.payments.tables import ChargeRow, OrderRow, StockRow
from segue.migrations import current, heads, upgrade
from segue.settings import SegueSettings
from segue.store.engine import session_scope


def test_whole_pipeline_on_sqlite(tmp_path, gateway_url, order_data):
    url = f"sqlite:///{tmp_path / 'nested' / 'segue.db'}"
    engine = payments_engine(url)
    upgrade(engine, COMPONENTS)  # a second time is harmless
    assert current(engine, COMPONENTS) == heads(COMPONENTS)
    with session_scope(engine) as session:
        assert seed_catalog(session, stock=10) == 4
        assert seed_catalog(session, stock=10) == 0
    deps = PaymentDeps(engine, GatewayClient(gateway_url))
    order_id = pipeline.validate(deps, order_data(amount="12.30"))
    for step in pipeline.STEP_NAMES[1:]:
        getattr(pipeline, step)(deps, order_id)
        getattr(pipeline, step)(deps, order_id)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(ChargeRow)) == 1
        assert session.get(OrderRow, order_id).status == "completed"
        assert session.get(OrderRow, order_id).amount == Decimal("12.30")
        assert session.get(StockRow, "SKU-MUG").available == 8


def test_default_database_is_a_sqlite_file(monkeypatch):
    monkeypatch.delenv("SEGUE_DATABASE_URL", raising=False)
    assert SegueSettings().database_url.startswith("sqlite:///")
    monkeypatch.setenv("SEGUE_DATABASE_URL", "postgresql://u@h/db")
    assert SegueSettings().database_url == "postgresql://u@h/db"
