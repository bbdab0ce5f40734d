"""The batched steps against real PostgreSQL and the real gateway: per-order semantics of
payment_pipeline over a batch (a declined card, no stock, a transient gateway failure), the
claim (SKIP LOCKED, a retried claim, a lease), and effects counted once under a redone step."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments import batch_queue, batch_steps
from include.payments.routing import BatchOrderRow
from include.payments.settings import PaymentSettings
from include.payments.tables import ChargeRow, OrderRow, ReservationRow, ShippingNoticeRow
from segue.store.dead_letters import DeadLetter
from segue.store.engine import session_scope, utcnow
from tests.conftest import DECLINED_TOKEN

DAG = "payment_pipeline_batch"
# One order at a time, in claim order (oldest first): the gateway's next failure is the first's.
SETTINGS = PaymentSettings(
    retries=2, retry_delay_seconds=1.5, max_retry_delay_seconds=4, batch_step_threads=1
)


def queue(engine, orders) -> list[str]:
    with session_scope(engine) as session:
        for data in orders:
            batch_queue.enqueue(session, str(data["order_id"]), DAG, data)
    return [str(data["order_id"]) for data in orders]


def run_all_steps(deps, run_id: str) -> dict[str, dict[str, str]]:
    order_ids = [c.order_id for c in batch_queue.claim(deps.engine, DAG, run_id, 50, 600)]
    for step in batch_steps.STEPS:
        batch_steps.run_batch_step(
            deps, SETTINGS, workflow=DAG, run_id=run_id, step=step, order_ids=order_ids
        )
    return batch_steps.finish(deps, run_id, order_ids)


def count(engine, table, order_id: str) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(table).where(table.order_id == order_id)
        return session.scalar(query)


def test_a_batch_keeps_per_order_semantics(deps, order_data, gateway_url, gateway_admin):
    flaky, declined, no_stock, good = (
        order_data(),
        order_data(payment_method=DECLINED_TOKEN),
        order_data(items=[{"sku": "SKU-MUG", "quantity": 1000}]),
        order_data(),
    )
    ids = queue(deps.engine, [flaky, declined, no_stock, good])
    gateway_admin.set_faults(fail_next=1)  # the first charge of the batch fails with a 503

    started = utcnow()
    first = run_all_steps(deps, "run-1")
    assert {o: v["state"] for o, v in first.items()} == dict(
        zip(ids, ["queued", "failed", "failed", "done"], strict=True)
    )
    assert "decline" in first[ids[1]]["outcome"] and "OutOfStock" in first[ids[2]]["outcome"]
    assert first[ids[0]]["step"] == "charge"
    retried = [ids[0]]

    with session_scope(deps.engine) as session:  # the retry waits out its backoff (1.5 s)
        row = session.get(BatchOrderRow, ids[0])
        assert (row.not_before - started).total_seconds() >= 1.5 and row.attempts == 1
        if (row.not_before - utcnow()).total_seconds() > 0.2:  # (unless a loaded machine
            # spent the backoff already)
            assert run_all_steps(deps, "run-2") == {}
        session.execute(BatchOrderRow.__table__.update().values(not_before=utcnow()))
    second = run_all_steps(deps, "run-3")
    assert second == {retried[0]: {"state": "done", "step": "done", "outcome": "completed"}}

    with session_scope(deps.engine) as session:
        status = dict(session.execute(select(OrderRow.order_id, OrderRow.status)).all())
        letters = session.execute(select(DeadLetter.subject, DeadLetter.step)).all()
        runs = dict(session.execute(select(BatchOrderRow.order_id, BatchOrderRow.runs)).all())
    assert [status[i] for i in ids] == ["completed", "failed", "failed", "completed"]
    assert all(i != ids[0] or "charge" in outcome["outcome"] for i, outcome in first.items())
    assert sorted(letters) == sorted([(ids[1], "charge"), (ids[2], "update_inventory")])
    assert [count(deps.engine, ChargeRow, i) for i in ids] == [1, 0, 1, 1]  # no stock: charged
    assert count(deps.engine, ReservationRow, ids[2]) == 0
    assert [count(deps.engine, ShippingNoticeRow, i) for i in ids] == [1, 0, 0, 1]
    assert runs[retried[0]] == "run-1 run-3"
    stats = gateway_stats(gateway_url)
    assert stats["charges"]["succeeded"] == 3 and stats["injected_failures"] == 1


def test_a_redone_step_repeats_no_effect(deps, order_data, gateway_url):
    ids = queue(deps.engine, [order_data(), order_data()])
    claimed = [c.order_id for c in batch_queue.claim(deps.engine, DAG, "run-a", 10, 600)]
    for step in ("validate", "charge"):
        batch_steps.run_batch_step(
            deps, SETTINGS, workflow=DAG, run_id="run-a", step=step, order_ids=claimed
        )
    # A task retry after a kill between the charges and their bookkeeping: the step again.
    with session_scope(deps.engine) as session:
        session.execute(BatchOrderRow.__table__.update().values(next_step="charge", attempts=0))
    result = batch_steps.run_batch_step(
        deps, SETTINGS, workflow=DAG, run_id="run-a", step="charge", order_ids=claimed
    )
    assert sorted(result.succeeded) == sorted(ids)
    assert [count(deps.engine, ChargeRow, i) for i in ids] == [1, 1]
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 2


def test_claims_split_orders_between_runs_and_a_retry_gets_its_own(deps, order_data):
    ids = queue(deps.engine, [order_data() for _ in range(5)])
    first = [c.order_id for c in batch_queue.claim(deps.engine, DAG, "run-x", 3, 600)]
    again = [c.order_id for c in batch_queue.claim(deps.engine, DAG, "run-x", 3, 600)]
    other = [c.order_id for c in batch_queue.claim(deps.engine, DAG, "run-y", 3, 600)]
    assert first == again and len(first) == 3
    assert sorted(first + other) == sorted(ids)
    assert batch_queue.ready(deps.engine, DAG)[0] == 0
    # run-y died: once its lease is over another run takes its orders.
    assert batch_queue.claim(deps.engine, DAG, "run-z", 10, 600) == []
    taken = [c.order_id for c in batch_queue.claim(deps.engine, DAG, "run-z2", 10, 0)]
    assert sorted(taken) == sorted(first + other)


def test_a_failed_run_puts_its_orders_back(deps, order_data):
    queue(deps.engine, [order_data(), order_data()])
    batch_queue.claim(deps.engine, DAG, "run-f", 10, 600)
    assert batch_queue.release_run(deps.engine, "run-f") == 2
    ready, oldest = batch_queue.ready(deps.engine, DAG)
    assert ready == 2 and oldest >= 0


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.5), (2, 3.0), (3, 4.0), (4, 4.0)])
def test_backoff_doubles_up_to_the_cap(attempt, delay):
    assert batch_steps.backoff_seconds(SETTINGS, attempt) == pytest.approx(delay)
