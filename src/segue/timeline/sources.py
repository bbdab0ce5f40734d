"""Timeline sources over the library's own tables, for any workflow that uses them.

``route_decision_source`` (``route_decisions``), ``saga_source`` (``saga_transitions``),
``event_source`` (``event_log``, with the consumers that handled each event from ``inbox``) and
``dead_letter_source`` (``dead_letters``). Each takes the business store's engine and reads in
its own short transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Engine, select

from segue.bus.tables import InboxRow
from segue.eventlog.store import order_timeline
from segue.rollout.tables import RouteDecisionRow
from segue.statemachine.records import SagaTransitionRow
from segue.store.dead_letters import dead_letters_for
from segue.store.engine import session_scope
from segue.timeline.model import Entry, TimelineSource

RECORDERS = frozenset({"event-log"})  # consumers that only record events, not handle them


def route_decision_source(engine: Engine) -> TimelineSource:
    """The routing decision: path, flag version, bucket and reason.

    :param engine: the business store.
    """

    def read(subject: str) -> Sequence[Entry]:
        with session_scope(engine) as session:
            row = session.get(RouteDecisionRow, subject)
            if row is None:
                return []
            return [
                Entry(
                    at=row.decided_at,
                    source="route",
                    kind="decision",
                    title=f"routed to {row.path} by flag {row.flag_name} v{row.flag_version}",
                    state=row.path,
                    details={
                        "path": row.path,
                        "flag": row.flag_name,
                        "flag_version": row.flag_version,
                        "bucket": row.bucket,
                        "reason": row.reason,
                    },
                )
            ]

    return TimelineSource("route", read)


def saga_source(engine: Engine) -> TimelineSource:
    """Every transition of the saga instance named like the subject, with actor and error.

    :param engine: the business store (the saga store's tables).
    """

    def read(subject: str) -> Sequence[Entry]:
        query = (
            select(SagaTransitionRow)
            .where(SagaTransitionRow.instance_id == subject)
            .order_by(SagaTransitionRow.id)
        )
        with session_scope(engine) as session:
            return [
                Entry(
                    at=row.at,
                    source="saga",
                    kind="transition",
                    title=f"{row.from_state or '(start)'} -> {row.to_state} on {row.event}",
                    state=row.to_state,
                    actor=row.actor,
                    error=row.error,
                    details={"attempt": row.attempt, "event": row.event},
                )
                for row in session.scalars(query)
            ]

    return TimelineSource("saga", read)


def event_source(engine: Engine) -> TimelineSource:
    """Every logged event: source, type, causation link and the consumers that handled it.

    :param engine: the business store (``event_log`` and the bus's ``inbox``).
    """

    def read(subject: str) -> Sequence[Entry]:
        with session_scope(engine) as session:
            records = order_timeline(session, subject)
            ids = [record.event_id for record in records]
            handled: dict[str, list[str]] = defaultdict(list)
            if ids:
                query = (
                    select(InboxRow.event_id, InboxRow.consumer)
                    .where(InboxRow.event_id.in_(ids))
                    .order_by(InboxRow.received_at, InboxRow.consumer)
                )
                for event_id, consumer in session.execute(query):
                    if consumer not in RECORDERS:
                        handled[event_id].append(consumer)
            return [
                Entry(
                    at=record.time,
                    source="event",
                    kind="event",
                    title=f"{record.short_type} from {record.source}",
                    actor=", ".join(handled[record.event_id]) or None,
                    details={
                        "type": record.type,
                        "event_id": record.event_id,
                        "causation_id": record.causation_id,
                        "emitted_by": record.source,
                        "handled_by": handled[record.event_id],
                    },
                )
                for record in records
            ]

    return TimelineSource("events", read)


def dead_letter_source(engine: Engine) -> TimelineSource:
    """Work abandoned for the subject: workflow, step, attempts and error.

    :param engine: the business store.
    """

    def read(subject: str) -> Sequence[Entry]:
        with session_scope(engine) as session:
            return [
                Entry(
                    at=row.created_at,
                    source="dead_letters",
                    kind="dead letter",
                    title=f"{row.workflow} gave up on step {row.step} after {row.attempts} "
                    "attempt(s)",
                    state="dead-lettered",
                    error=row.error,
                    details={"workflow": row.workflow, "step": row.step, "attempts": row.attempts},
                )
                for row in dead_letters_for(session, subject)
            ]

    return TimelineSource("dead_letters", read)


def library_sources(engine: Engine) -> tuple[TimelineSource, ...]:
    """The four sources above, for a workflow that uses all of the library's tables.

    :param engine: the business store.
    """
    return (
        route_decision_source(engine),
        saga_source(engine),
        event_source(engine),
        dead_letter_source(engine),
    )
