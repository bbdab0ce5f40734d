"""``segue orders reconcile ORDER_ID`` in process, on the test store and the real gateway."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from include.gateway.admin import stats as gateway_stats
from include.payments import pipeline, steps
from include.payments.deps import PaymentDeps
from segue.store.engine import session_scope
from tests.conftest import GOOD_TOKEN
from tools.cli import main


def reconcile(order_id: str, pg_url: str, gateway_url: str) -> int:
    return main(["orders", "reconcile", order_id, "--url", pg_url, "--gateway-url", gateway_url])


def test_a_failed_orders_unrecorded_charge_is_refunded_once(
    deps: PaymentDeps,
    order_data,
    pg_url: str,
    gateway_url: str,
    clean_db: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order_id = pipeline.validate(deps, order_data())
    charge = deps.gateway.charge(  # the answer was lost: only the gateway knows
        idempotency_key=f"{order_id}:charge",
        amount=Decimal("49.99"),
        currency="USD",
        payment_method=GOOD_TOKEN,
        reference=order_id,
    )
    with session_scope(clean_db) as session:
        steps.fail_order(session, order_id, "out of stock")

    assert reconcile(order_id, pg_url, gateway_url) == 0
    [refund] = json.loads(capsys.readouterr().out)["refunds"]
    assert (refund["gateway_charge_id"], refund["amount"]) == (charge.id, "49.99")
    assert reconcile(order_id, pg_url, gateway_url) == 0
    assert json.loads(capsys.readouterr().out)["refunds"] == []
    assert gateway_stats(gateway_url)["refunds"] == 1


def test_an_order_that_is_not_failed_or_unknown_is_refused_naming_it(
    deps: PaymentDeps, order_data, pg_url: str, gateway_url: str, capsys
) -> None:
    order_id = pipeline.validate(deps, order_data())
    assert reconcile(order_id, pg_url, gateway_url) == 1
    assert f"order {order_id} is validated, not failed" in capsys.readouterr().err
    assert reconcile("ord-nobody", pg_url, gateway_url) == 1
    assert "order ord-nobody: no such order" in capsys.readouterr().err
