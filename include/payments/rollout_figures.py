"""The payment workflow's figures per execution path, for the Rollout page (SEGUE_ROLLOUT_FIGURES).

An order is *accepted* by a path when its route decision is made (``route_decisions.decided_at``).
From there, by ``orders.status`` and the dead letters (``dead_letters.subject`` is the order id):

- *completed*: status ``completed``;
- *failed, technical*: a dead letter for the order (retries exhausted, charge reply lost, ...),
  or not terminal ``stuck_after`` after acceptance (stuck);
- *failed, business*: status ``failed`` without a dead letter (card declined, out of stock);
- *in flight*: neither terminal nor stuck yet (an order row not written yet counts here too).

Latency: acceptance to the terminal status's ``orders.updated_at``, over the terminal orders.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from include.payments.order_rows import TERMINAL
from include.payments.tables import OrderRow
from segue.rollout.figures import PathFigures, percentile
from segue.rollout.tables import RouteDecisionRow
from segue.store.dead_letters import DeadLetter

_decisions = RouteDecisionRow.__table__
_orders = OrderRow.__table__
_dead = DeadLetter.__table__

MEASURED = (
    "orders whose route decision was made in the window; outcome from orders.status and "
    "dead_letters at {until:%H:%M:%S} UTC; latency from the decision to the terminal status "
    "(nearest-rank percentiles over {terminal} finished orders)"
)


@dataclass
class _Tally:
    accepted: int = 0
    completed: int = 0
    failed_business: int = 0
    failed_technical: int = 0
    in_flight: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def path_figures(
    session: Session, *, since: datetime, until: datetime, stuck_after: timedelta
) -> dict[str, PathFigures]:
    """Per path, what became of the orders routed to it from ``since`` to ``until``.

    :param session: a read session on the business store.
    :param since: start of the window (inclusive).
    :param until: end of the window (exclusive); orders are judged as of this moment.
    :param stuck_after: an order not terminal this long after acceptance is stuck (technical).
    """
    dead_lettered = exists().where(_dead.c.subject == _decisions.c.subject_id)
    query = (
        select(
            _decisions.c.path,
            _decisions.c.decided_at,
            _orders.c.status,
            _orders.c.updated_at,
            dead_lettered.label("dead_lettered"),
        )
        .select_from(_decisions.outerjoin(_orders, _orders.c.order_id == _decisions.c.subject_id))
        .where(_decisions.c.decided_at >= since, _decisions.c.decided_at < until)
    )
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for path, decided_at, status, updated_at, dead in session.execute(query):
        tally = tallies[path]
        tally.accepted += 1
        decided_at = _aware(decided_at)
        if status == "completed":
            tally.completed += 1
        elif dead:
            tally.failed_technical += 1
        elif status == "failed":
            tally.failed_business += 1
        elif until - decided_at >= stuck_after:
            tally.failed_technical += 1
        else:
            tally.in_flight += 1
        if status in TERMINAL and updated_at is not None:
            elapsed = (_aware(updated_at) - decided_at).total_seconds() * 1000
            tally.latencies_ms.append(max(elapsed, 0.0))
    return {path: _figures(path, tally, until) for path, tally in tallies.items()}


def _figures(path: str, tally: _Tally, until: datetime) -> PathFigures:
    latencies = sorted(tally.latencies_ms)
    return PathFigures(
        path=path,
        accepted=tally.accepted,
        completed=tally.completed,
        failed_business=tally.failed_business,
        failed_technical=tally.failed_technical,
        in_flight=tally.in_flight,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        measured=MEASURED.format(until=until.astimezone(UTC), terminal=len(latencies)),
    )


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every timestamp here is stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


__all__ = ["path_figures"]
