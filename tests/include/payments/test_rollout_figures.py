"""The payment workflow's figures per path, on a seeded business store (real PostgreSQL).

Orders in every outcome on three paths, with acceptance and terminal times chosen so every
count and percentile is known in advance; plus the edges of the window and the stuck limit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from include.payments.rollout_figures import path_figures
from include.payments.tables import OrderRow
from segue.rollout.figures import PathFigures
from segue.rollout.tables import RouteDecisionRow
from segue.store.dead_letters import DeadLetter

UNTIL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
STUCK = timedelta(minutes=5)


class Seed:
    def __init__(self, session: Session) -> None:
        self.session = session

    def order(
        self,
        order_id: str,
        path: str,
        accepted_ago: timedelta,
        status: str | None,
        *,
        took_ms: int | None = None,
        dead_letter: bool = False,
        reason: str | None = None,
    ) -> None:
        decided = UNTIL - accepted_ago
        self.session.add(
            RouteDecisionRow(
                subject_id=order_id,
                flag_name="route",
                path=path,
                flag_version=1,
                bucket=1,
                reason="weight",
                decided_at=decided,
            )
        )
        if status is not None:
            updated = decided + timedelta(milliseconds=took_ms or 0)
            self.session.add(
                OrderRow(
                    order_id=order_id,
                    status=status,
                    customer_email="a@example.com",
                    amount=Decimal("10.00"),
                    currency="USD",
                    payload={},
                    failure_reason=reason,
                    created_at=decided,
                    updated_at=updated,
                )
            )
        if dead_letter:
            self.session.add(
                DeadLetter(
                    workflow="payment_pipeline",
                    subject=order_id,
                    step="charge",
                    error="retries exhausted",
                    attempts=3,
                    payload={},
                )
            )


@pytest.fixture
def seeded(clean_db: Engine) -> Engine:
    minute = timedelta(minutes=1)
    with Session(clean_db) as session:
        seed = Seed(session)
        # dag: two completed, a decline, a dead-lettered failure, one stuck, two in flight
        seed.order("d1", "dag", 50 * minute, "completed", took_ms=1000)
        seed.order("d2", "dag", 40 * minute, "completed", took_ms=3000)
        seed.order("d3", "dag", 30 * minute, "failed", took_ms=2000, reason="card_declined")
        seed.order("d4", "dag", 20 * minute, "failed", took_ms=10_000, dead_letter=True)
        seed.order("d5", "dag", 10 * minute, "charged")  # stuck: past the 5-minute limit
        seed.order("d6", "dag", minute, "validated")  # in flight
        seed.order("d7", "dag", timedelta(seconds=30), None)  # decided, order row not yet
        seed.order("d8", "dag", 2 * HOUR, "completed", took_ms=5)  # before the window
        seed.order("d9", "dag", timedelta(0), "completed", took_ms=5)  # at `until`: excluded
        # events: four completed and one out of stock
        for index, took in enumerate((100, 200, 300, 400), start=1):
            seed.order(f"e{index}", "events", 5 * minute, "completed", took_ms=took)
        seed.order("e5", "events", 5 * minute, "failed", took_ms=500, reason="out_of_stock")
        # hybrid: dead-lettered while not terminal (a lost charge reply) and recent
        seed.order("h1", "hybrid", minute, "receipt_sent", dead_letter=True)
        session.commit()
    return clean_db


def figures(engine: Engine, **kwargs: object) -> dict[str, PathFigures]:
    arguments = {"since": UNTIL - HOUR, "until": UNTIL, "stuck_after": STUCK, **kwargs}
    with Session(engine) as session:
        return path_figures(session, **arguments)  # type: ignore[arg-type]


def counts(found: PathFigures) -> tuple[int, int, int, int, int]:
    return (found.accepted, found.completed, found.failed_business, found.failed_technical,
            found.in_flight)  # fmt: skip


def test_outcomes_and_latency_per_path(seeded):
    found = figures(seeded)
    assert set(found) == {"dag", "events", "hybrid"}  # nothing was routed to saga
    dag = found["dag"]
    assert counts(dag) == (7, 2, 1, 2, 2)
    # terminal latencies 1000, 2000, 3000, 10000 ms; nearest rank
    assert (dag.p50_ms, dag.p95_ms, dag.p99_ms) == (2000.0, 10_000.0, 10_000.0)
    events = found["events"]
    assert counts(events) == (5, 4, 1, 0, 0)
    assert (events.p50_ms, events.p95_ms, events.p99_ms) == (300.0, 500.0, 500.0)
    hybrid = found["hybrid"]
    assert counts(hybrid) == (1, 0, 0, 1, 0)
    assert hybrid.p50_ms is None  # nothing finished
    assert "4 finished orders" in dag.measured and "12:00:00 UTC" in dag.measured


def test_the_stuck_limit_decides_between_in_flight_and_technical(seeded):
    lenient = figures(seeded, stuck_after=timedelta(minutes=15))["dag"]
    assert (lenient.failed_technical, lenient.in_flight) == (1, 3)  # d5 is in flight again
    strict = figures(seeded, stuck_after=timedelta(seconds=20))["dag"]
    assert (strict.failed_technical, strict.in_flight) == (4, 0)  # d6 and d7 stuck too


def test_the_window_counts_by_acceptance_time(seeded):
    wide = figures(seeded, since=UNTIL - 3 * HOUR)["dag"]
    assert wide.accepted == 8 and wide.completed == 3  # d8 joins; d9 (at `until`) never
    narrow = figures(seeded, since=UNTIL - 6 * timedelta(minutes=1))
    assert narrow["events"].accepted == 5 and narrow["dag"].accepted == 2  # d6, d7
    assert figures(seeded, until=UNTIL - 3 * HOUR, since=UNTIL - 4 * HOUR) == {}
