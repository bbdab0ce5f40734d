"""Saga faults across processes: a worker killed between a side effect and the save, and two
workers advancing one instance at once. Counted in the database and the gateway's ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments.tables import ChargeRow

WORKER = Path(__file__).with_name("saga_worker.py")


def worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def charges(engine, order_id):
    with engine.connect() as connection:
        query = select(func.count()).select_from(ChargeRow).where(ChargeRow.order_id == order_id)
        return connection.execute(query).scalar()


def test_killed_after_charging_before_saving_resumes_with_one_charge(
    saga, saga_store, order_data, deps, pg_url, gateway_url
):
    data = order_data()
    engine = saga()
    engine.start(data["order_id"], data)
    process = worker("crash-after-charge", pg_url, gateway_url, data["order_id"])
    process.wait(timeout=60)
    assert process.returncode == -9, process.stderr.read()
    crashed = saga_store.load(data["order_id"])
    assert crashed.state == "CHARGING"  # the charge happened, the transition was never saved
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1
    assert charges(deps.engine, data["order_id"]) == 1  # the step's own transaction committed

    final = engine.run(data["order_id"])
    assert final.status == "succeeded"
    assert charges(deps.engine, data["order_id"]) == 1
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1


def test_two_processes_advancing_one_instance_apply_one_transition(
    saga, saga_store, order_data, deps, pg_url, gateway_url, tmp_path
):
    data = order_data()
    engine = saga()
    engine.start(data["order_id"], data)
    while saga_store.load(data["order_id"]).state != "CHARGING":
        engine.advance(saga_store.load(data["order_id"]))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [
        worker("advance-once", pg_url, gateway_url, data["order_id"], str(barrier))
        for _ in range(2)
    ]
    outputs = sorted(w.communicate(timeout=60)[0].strip() for w in workers)
    assert outputs == ["lost", "won"], [w.stderr for w in workers]
    trail = [(r["from_state"], r["to_state"]) for r in saga_store.audit_trail(data["order_id"])]
    assert trail.count(("CHARGING", "FULFILMENT")) == 1
    assert charges(deps.engine, data["order_id"]) == 1
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1
    assert engine.run(data["order_id"]).status == "succeeded"
