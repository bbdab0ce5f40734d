"""payment_pipeline in a real Airflow, triggered through the REST API v2 like a user's script.

Effects are counted in the business tables and in the gateway's own ledger.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments import pipeline
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptRow,
    ReservationRow,
    ShippingNoticeRow,
    StockRow,
)
from segue.store.dead_letters import DeadLetter
from segue.store.engine import session_scope

pytestmark = pytest.mark.e2e
DAG_ID = "payment_pipeline"
STEPS = ["validate", "charge", "update_inventory", "send_receipt", "notify_shipping"]


def effects(engine, order_id: str) -> dict[str, object]:
    def rows(table):
        query = select(func.count()).select_from(table).where(table.order_id == order_id)
        return session.scalar(query)

    with session_scope(engine) as session:
        order = session.get(OrderRow, order_id)
        letters = session.scalars(select(DeadLetter).where(DeadLetter.subject == order_id)).all()
        return {
            "status": order.status if order else None,
            "failure_reason": order.failure_reason if order else None,
            "charges": rows(ChargeRow),
            "reservations": rows(ReservationRow),
            "receipts": rows(ReceiptRow),
            "shipping_notices": rows(ShippingNoticeRow),
            "dead_letters": [(d.step, d.attempts, d.error) for d in letters],
        }


def stock(engine, sku: str) -> int:
    with session_scope(engine) as session:
        return session.get(StockRow, sku).available


def run_order(api, conf: dict[str, object]) -> tuple[dict, dict[str, str | None]]:
    run_id = api.trigger_dag_run(DAG_ID, conf)
    run = api.wait_for_run(DAG_ID, run_id, timeout=240)
    return run, api.task_states(DAG_ID, run_id)


def test_good_order_records_every_effect_once(airflow_api, engine, gateway_url, order_data):
    conf = order_data()
    mugs_before = stock(engine, "SKU-MUG")
    run, states = run_order(airflow_api, conf)
    assert run["state"] == "success", states
    assert states == dict.fromkeys(STEPS, "success")
    assert effects(engine, conf["order_id"]) == {
        "status": "completed",
        "failure_reason": None,
        "charges": 1,
        "reservations": 2,
        "receipts": 1,
        "shipping_notices": 1,
        "dead_letters": [],
    }
    assert stock(engine, "SKU-MUG") == mugs_before - 2
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1


def test_declined_card_fails_the_order_without_retrying(
    airflow_api, engine, gateway_url, order_data
):
    conf = order_data(payment_method="pm_card_chargeDeclined")
    mugs_before = stock(engine, "SKU-MUG")
    run, states = run_order(airflow_api, conf)
    assert run["state"] == "failed"
    assert states["validate"] == "success"
    assert states["charge"] == "failed"
    assert {states[s] for s in STEPS[2:]} == {"upstream_failed"}
    result = effects(engine, conf["order_id"])
    assert result["status"] == "failed"
    assert "generic_decline" in result["failure_reason"]
    assert [(step, attempts) for step, attempts, _ in result["dead_letters"]] == [("charge", 1)]
    assert (result["charges"], result["reservations"]) == (0, 0)
    assert (result["receipts"], result["shipping_notices"]) == (0, 0)
    assert stock(engine, "SKU-MUG") == mugs_before
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 0


def test_transient_gateway_failure_succeeds_on_retry_with_one_charge(
    airflow_api, engine, gateway_url, order_data, gateway_admin
):
    gateway_admin.set_faults(fail_next=1)
    conf = order_data()
    run, states = run_order(airflow_api, conf)
    assert run["state"] == "success", states
    charge = airflow_api.get(f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/charge")
    assert charge["try_number"] == 2
    assert effects(engine, conf["order_id"])["charges"] == 1
    stats = gateway_stats(gateway_url)
    assert stats["injected_failures"] == 1
    assert stats["charges"]["succeeded"] == 1


def test_exhausted_retries_dead_letter_the_order(
    airflow_api, engine, gateway_url, order_data, gateway_admin
):
    gateway_admin.set_faults(fail_next=100)
    conf = order_data()
    run, states = run_order(airflow_api, conf)
    assert run["state"] == "failed"
    assert states["charge"] == "failed"
    result = effects(engine, conf["order_id"])
    assert result["status"] == "failed"
    [(step, attempts, error)] = result["dead_letters"]
    assert (step, attempts) == ("charge", 3)  # the first try and two retries
    assert "GatewayUnavailable" in error
    assert result["charges"] == 0
    assert gateway_stats(gateway_url)["injected_failures"] == 3


def test_invalid_conf_fails_the_first_task_naming_the_field(airflow_api, engine, order_data):
    conf = order_data(amount="-5")
    run, states = run_order(airflow_api, conf)
    assert run["state"] == "failed"
    assert states["validate"] == "failed"
    assert {states[s] for s in STEPS[1:]} == {"upstream_failed"}
    log = airflow_api.task_log(DAG_ID, run["dag_run_id"], "validate")
    assert "invalid order: amount" in log
    result = effects(engine, conf["order_id"])
    assert result["status"] is None  # never recorded
    assert [(s, a) for s, a, _ in result["dead_letters"]] == [("validate", 1)]
    assert (result["charges"], result["reservations"]) == (0, 0)


def test_form_defaults_alone_place_a_valid_order(airflow_api, engine, gateway_url):
    """What a user gets by pressing Trigger without editing the form."""
    run, states = run_order(airflow_api, {})
    assert run["state"] == "success", states
    order_id = pipeline.order_id_for_run(run["dag_run_id"])
    result = effects(engine, order_id)
    assert (result["status"], result["charges"], result["shipping_notices"]) == ("completed", 1, 1)
