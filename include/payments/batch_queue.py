"""The durable queue of front-door orders bound for a batched DAG (table ``batch_orders``).

The intake writes an order's row in the transaction that accepts it (``enqueue``), so an order
is queued exactly when it is accepted; a batch run claims up to N ready rows with
``FOR UPDATE SKIP LOCKED`` (two runs never take one order), records each step it finished for
the whole batch with one UPDATE (``advance``), puts an order that failed transiently back with a
backoff (``release``) and settles the rest (``mark_done``, ``mark_failed``). A claim expires
after a lease, so the orders of a run that died for good are taken again by a later run; the
steps are idempotent, so redoing a step of theirs changes nothing.

Component ``include.payments.routing`` (its migrations): the queue belongs with the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from include.payments.routing import CLAIMED, DONE, FAILED, FIRST_STEP, QUEUED, BatchOrderRow

__all__ = ["CLAIMED", "DONE", "FAILED", "QUEUED", "BatchOrderRow", "Claimed"]
from segue.store.engine import session_scope, utcnow
from segue.store.inserts import insert_if_absent

TABLE = BatchOrderRow.__table__
C = TABLE.c


@dataclass(frozen=True)
class Claimed:
    """An order a run took: where it resumes and how many tries its current step had."""

    order_id: str
    next_step: str
    attempts: int


def enqueue(session: Session, order_id: str, dag_id: str, payload: dict[str, Any]) -> bool:
    """Queue ``order_id`` for ``dag_id`` unless it is queued already; True if queued now.

    :param session: the accepting transaction (the row commits or rolls back with the order).
    :param order_id: the order.
    :param dag_id: the batched DAG that takes it.
    :param payload: the order's input (the DAG form's fields: a card token, never a number).
    """
    now = utcnow()
    row = {
        "order_id": order_id,
        "dag_id": dag_id,
        "payload": payload,
        "state": QUEUED,
        "next_step": FIRST_STEP,
        "attempts": 0,
        "enqueued_at": now,
        "not_before": now,
        "runs": "",
    }
    return insert_if_absent(session, TABLE, row)


def claim(
    engine: Engine, dag_id: str, run_id: str, limit: int, lease_seconds: float
) -> list[Claimed]:
    """Up to ``limit`` ready orders of ``dag_id`` for ``run_id``, oldest first; a retried claim
    of the same run gets the orders it still holds (and nothing new).

    Ready: queued and past its backoff, or claimed by a run whose lease expired.

    :param engine: the business store.
    :param dag_id: the batched DAG.
    :param run_id: the claiming DAG run.
    :param limit: the batch size N.
    :param lease_seconds: how long a claim holds before another run may take the order.
    """
    now = utcnow()
    with session_scope(engine) as session:
        mine = session.execute(
            select(C.order_id, C.next_step, C.attempts)
            .where(C.claimed_by == run_id, C.state == CLAIMED)
            .order_by(C.not_before, C.order_id)
        ).all()
        if mine:  # a retry of the claiming task: the same orders, nothing new
            return [Claimed(*row) for row in mine]
        ready = (C.state == QUEUED) & (C.not_before <= now) | (C.state == CLAIMED) & (
            C.claimed_at < now - timedelta(seconds=lease_seconds)
        )
        rows = session.execute(
            select(C.order_id, C.next_step, C.attempts)
            .where(C.dag_id == dag_id, ready)
            .order_by(C.not_before, C.order_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            session.execute(
                update(TABLE)
                .where(C.order_id.in_([r.order_id for r in rows]))
                .values(
                    state=CLAIMED,
                    claimed_by=run_id,
                    claimed_at=now,
                    runs=func.trim(func.coalesce(C.runs, "") + " " + run_id),
                )
            )
        return [Claimed(*row) for row in rows]


def live(engine: Engine, run_id: str, order_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Of ``order_ids``, those ``run_id`` still holds (not failed, not released): id → (the
    step it is at, tries of that step so far).

    :param engine: the business store.
    :param run_id: the DAG run.
    :param order_ids: the run's orders.
    """
    with session_scope(engine) as session:
        rows = session.execute(
            select(C.order_id, C.next_step, C.attempts).where(
                C.order_id.in_(list(order_ids)), C.claimed_by == run_id, C.state == CLAIMED
            )
        ).all()
    return {row.order_id: (row.next_step, row.attempts) for row in rows}


def payloads(engine: Engine, order_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The queued input of each of ``order_ids``.

    :param engine: the business store.
    :param order_ids: orders in the queue.
    """
    with session_scope(engine) as session:
        rows = session.execute(
            select(C.order_id, C.payload).where(C.order_id.in_(list(order_ids)))
        ).all()
    return {row.order_id: row.payload for row in rows}


def advance(engine: Engine, run_id: str, order_ids: Sequence[str], next_step: str) -> None:
    """Record for the whole batch that ``order_ids`` finished a step: one UPDATE.

    :param engine: the business store.
    :param run_id: the DAG run holding them.
    :param order_ids: the orders whose step succeeded.
    :param next_step: where each resumes if a later run takes it over.
    """
    if not order_ids:
        return
    with session_scope(engine) as session:
        session.execute(
            update(TABLE)
            .where(C.order_id.in_(list(order_ids)), C.claimed_by == run_id, C.state == CLAIMED)
            .values(next_step=next_step, attempts=0)
        )


def release(
    session: Session, order_id: str, run_id: str, step: str, attempts: int, delay_seconds: float
) -> None:
    """Put an order whose ``step`` failed transiently back in the queue for a later run.

    :param session: an open transaction.
    :param order_id: the order.
    :param run_id: the run that held it.
    :param step: the step to retry.
    :param attempts: the step's tries so far.
    :param delay_seconds: the backoff before a run may take it again.
    """
    session.execute(
        update(TABLE)
        .where(C.order_id == order_id, C.claimed_by == run_id)
        .values(
            state=QUEUED,
            claimed_by=None,
            next_step=step,
            attempts=attempts,
            not_before=utcnow() + timedelta(seconds=delay_seconds),
        )
    )


def mark_failed(session: Session, order_id: str, reason: str) -> None:
    """Settle an order that failed for good (in the dead letter's transaction).

    :param session: the dead letter's transaction.
    :param order_id: the order.
    :param reason: why.
    """
    session.execute(
        update(TABLE)
        .where(C.order_id == order_id)
        .values(state=FAILED, outcome=reason[:1000], finished_at=utcnow())
    )


def mark_done(engine: Engine, run_id: str, order_ids: Sequence[str], outcome: str) -> None:
    """Settle orders ``run_id`` finished: one UPDATE.

    :param engine: the business store.
    :param run_id: the DAG run.
    :param order_ids: its finished orders.
    :param outcome: recorded on each (e.g. ``completed``).
    """
    if not order_ids:
        return
    with session_scope(engine) as session:
        session.execute(
            update(TABLE)
            .where(C.order_id.in_(list(order_ids)), C.claimed_by == run_id, C.state == CLAIMED)
            .values(state=DONE, outcome=outcome, finished_at=utcnow())
        )


def release_run(engine: Engine, run_id: str) -> int:
    """Put every order ``run_id`` still holds back in the queue (the run failed); how many.

    :param engine: the business store.
    :param run_id: the failed DAG run.
    """
    with session_scope(engine) as session:
        result = session.execute(
            update(TABLE)
            .where(C.claimed_by == run_id, C.state == CLAIMED)
            .values(state=QUEUED, claimed_by=None, not_before=utcnow())
        )
        return int(result.rowcount or 0)


def ready(engine: Engine, dag_id: str) -> tuple[int, float]:
    """How many orders of ``dag_id`` a run could take now, and the oldest one's wait (s).

    :param engine: the business store.
    :param dag_id: the batched DAG.
    """
    now = utcnow()
    with session_scope(engine) as session:
        count, oldest = session.execute(
            select(func.count(), func.min(C.not_before)).where(
                C.dag_id == dag_id, C.state == QUEUED, C.not_before <= now
            )
        ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite hands naive datetimes back
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return int(count), max((now - oldest).total_seconds(), 0.0)


def rows_of(engine: Engine, order_ids: Sequence[str]) -> list[BatchOrderRow]:
    """The queue rows of ``order_ids`` (for a run's summary and the timeline).

    :param engine: the business store.
    :param order_ids: orders.
    """
    with session_scope(engine) as session:
        rows = session.scalars(select(BatchOrderRow).where(C.order_id.in_(list(order_ids))))
        result = list(rows)
        session.expunge_all()
        return result


def ready_now(dag_id: str) -> tuple[int, float]:
    """``ready`` on this process's business store (``SEGUE_DATABASE_URL``): the probe of the
    batched DAGs' ``BatchReadyTrigger``.

    :param dag_id: the batched DAG.
    """
    from include.payments.database import payments_engine
    from segue.settings import get_settings

    return ready(payments_engine(get_settings().database_url), dag_id)
