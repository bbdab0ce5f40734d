"""An order on the saga path: its timeline from the real saga store, routing and business
tables (PostgreSQL, the real gateway), and ``segue orders timeline`` in process.

The saga runs in process (the payment machine, as ``payment_state_machine``'s operator runs
it); the route is decided and recorded as the front door does.
"""

from __future__ import annotations

import json
import socket

import pytest
from sqlalchemy import Engine

from include.payments.routing import record_route
from include.payments.timeline import timeline_sources
from include.services.front_door import flag_router, route_everything_to
from segue.store.engine import session_scope
from segue.timeline.merge import build_timeline
from segue.timeline.steps import Step, path_steps
from segue.timeline.workflow import DagRunRef
from tests.conftest import DECLINED_TOKEN, order_of
from tools.cli import main


def saga_order(clean_db: Engine, saga, data: dict[str, object]) -> str:
    route_everything_to(clean_db, "saga", actor="ada", reason="saga canary")
    order_id = str(data["order_id"])
    with session_scope(clean_db) as session:
        assert flag_router()(session, order_of(data)) == "saga"
        record_route(session, order_id, "saga")
    runner = saga(actor="worker-1")
    runner.start(order_id, data)
    runner.run(order_id)
    return order_id


def entries(timeline, source: str):
    return [t.entry for t in timeline.entries if t.entry.source == source]


def test_a_saga_orders_timeline_has_its_route_transitions_charge_and_outcome(
    clean_db: Engine, saga, order_data
) -> None:
    order_id = saga_order(clean_db, saga, order_data())
    workflow = timeline_sources(clean_db)
    assert workflow.dag_runs(order_id) == [
        DagRunRef(dag_id="payment_state_machine", run_id=f"order__{order_id}")
    ]
    timeline = build_timeline(order_id, workflow.sources)

    [decision] = entries(timeline, "route")
    assert decision.details | {"bucket": None} == {
        "path": "saga",
        "flag": "route",
        "flag_version": 1,
        "bucket": None,
        "reason": "weight",
    }
    assert 0 <= decision.details["bucket"] < 10_000
    assert timeline.entries[0].entry == decision  # the decision comes first
    transitions = entries(timeline, "saga")
    assert [t.state for t in transitions][:3] == ["ORDER_RECEIVED", "VALIDATING", "CHARGING"]
    assert transitions[-1].state == "SUCCEEDED"
    assert {t.actor for t in transitions} == {"worker-1"}
    [charge] = [e for e in entries(timeline, "gateway") if e.kind == "charge"]
    assert charge.details["idempotency_key"] == f"{order_id}:charge"
    [outcome] = [e for e in entries(timeline, "orders") if e.kind == "outcome"]
    assert outcome.state == "completed"
    steps = path_steps(timeline)
    assert steps[-1] == Step(name="SUCCEEDED", current=True) and sum(s.current for s in steps) == 1
    since_previous = [t.since_previous_seconds for t in timeline.entries[1:]]
    assert all(s is not None and s >= 0 for s in since_previous)


def test_a_declined_saga_shows_the_error_compensation_and_failure(
    clean_db: Engine, saga, order_data
) -> None:
    order_id = saga_order(clean_db, saga, order_data(payment_method=DECLINED_TOKEN))
    timeline = build_timeline(order_id, timeline_sources(clean_db).sources)
    transitions = entries(timeline, "saga")
    failed = [t for t in transitions if t.state == "FAILED"]
    assert failed and failed[0].error and "declined" in failed[0].error.lower()
    assert not [e for e in entries(timeline, "gateway") if e.kind == "charge"]
    [outcome] = [e for e in entries(timeline, "orders") if e.kind == "outcome"]
    assert outcome.state == "failed" and outcome.error


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_cli_prints_the_timeline_and_names_airflow_when_it_is_down(
    clean_db: Engine, saga, order_data, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id = saga_order(clean_db, saga, order_data())
    down = f"http://127.0.0.1:{closed_port()}"
    assert main(["orders", "timeline", order_id, "--url", pg_url, "--airflow-url", down]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"Order {order_id}: ") and "(missing: airflow)" in lines[0]
    assert any("routed to saga by flag route v1" in line for line in lines)
    assert any("CHARGING -> FULFILMENT on done" in line for line in lines)
    assert "MISSING" in lines[-1] and "airflow" in lines[-1]

    assert main(["orders", "timeline", order_id, "--url", pg_url, "--no-airflow", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["order_id"] == order_id and data["missing"] == []
    assert {e["source"] for e in data["entries"]} >= {"route", "saga", "orders", "gateway"}
    assert data["entries"][1]["since_first_seconds"] >= 0


def test_the_cli_refuses_an_unknown_order_with_a_clear_message(
    clean_db: Engine, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["orders", "timeline", "ord-nobody", "--url", pg_url, "--no-airflow"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "segue orders timeline: no such order: ord-nobody" in captured.err


def test_the_gateways_ledger_shows_the_declined_attempt_our_tables_never_record(
    clean_db: Engine, saga, order_data, pg_url: str, gateway_url: str, capsys
) -> None:
    order_id = saga_order(clean_db, saga, order_data(payment_method=DECLINED_TOKEN))
    argv = ["orders", "timeline", order_id, "--url", pg_url, "--no-airflow", "--json"]
    assert main([*argv, "--gateway-url", gateway_url]) == 0
    data = json.loads(capsys.readouterr().out)
    [attempt] = [e for e in data["entries"] if e["source"] == "gateway ledger"]
    assert attempt["state"] == "declined" and attempt["details"]["amount"] == "49.99"
    assert not [e for e in data["entries"] if e["kind"] == "charge"]

    down = f"http://127.0.0.1:{closed_port()}"
    assert main([*argv, "--gateway-url", down]) == 0
    assert json.loads(capsys.readouterr().out)["missing"] == ["gateway ledger"]
