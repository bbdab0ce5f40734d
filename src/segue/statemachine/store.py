"""Durable saga state: one row per instance (optimistic ``version``) and an append-only audit
trail of every transition, on PostgreSQL and SQLite.

Writes go through a per-thread writer: on PostgreSQL with psycopg 3, the driver connection in
autocommit with one CTE statement per transition (:mod:`store_postgres`); elsewhere SQLAlchemy
Core (:mod:`store_core`). Both keep one connection per thread: a pool checkout, ping and reset per
transition cost more than the SQL itself.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from segue.migrations.cache import migrated
from segue.statemachine.records import (
    COMPENSATING,
    COMPONENT,
    FINAL_STATUSES,
    INSTANCES,
    RUNNING,
    TRANSITIONS,
    WAITING,
    ConcurrentTransition,
    Instance,
    Move,
    SagaInstanceRow,
    SagaTransitionRow,
    as_instance,
)
from segue.statemachine.store_core import CoreWriter
from segue.statemachine.store_postgres import PostgresWriter
from segue.store.engine import utcnow

__all__ = [
    "COMPENSATING",
    "COMPONENT",
    "FINAL_STATUSES",
    "INSTANCES",
    "RUNNING",
    "TRANSITIONS",
    "WAITING",
    "ConcurrentTransition",
    "Instance",
    "Move",
    "SagaInstanceRow",
    "SagaStore",
    "SagaTransitionRow",
]


class SagaStore:
    """Loads and moves saga instances; each thread keeps its own writer and connection."""

    def __init__(self, engine: Engine, *, synchronous_commit: bool = True) -> None:
        """``synchronous_commit=False`` (PostgreSQL) stops waiting for the WAL flush on each
        transition: a database crash may then forget the last fraction of a second of
        transitions, and those instances redo their (idempotent) steps from an earlier state,
        as after a worker crash. An application crash loses nothing either way.

        :param engine: the business store; ``segue.statemachine`` is migrated on it here.
        :param synchronous_commit: False to skip the WAL flush wait (PostgreSQL with psycopg 3).
        """
        self.engine = engine
        self.synchronous_commit = synchronous_commit
        dialect = engine.dialect
        self.raw_postgres = dialect.name == "postgresql" and dialect.driver == "psycopg"
        self._local = threading.local()
        migrated(engine, [COMPONENT])

    def _writer(self) -> CoreWriter | PostgresWriter:
        writer: CoreWriter | PostgresWriter | None = getattr(self._local, "writer", None)
        if writer is None or not writer.usable:
            if self.raw_postgres:
                writer = PostgresWriter(self.engine, synchronous_commit=self.synchronous_commit)
            else:
                writer = CoreWriter(self.engine)
            self._local.writer = writer
        return writer

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        writer = getattr(self._local, "writer", None)
        if writer is not None:
            writer.close()
            self._local.writer = None

    def create(self, instance: Instance, actor: str) -> bool:
        """Insert a new instance with its first audit record; False if the id exists.

        :param instance: the new instance (its ``version`` is stored as 1).
        :param actor: who created it, for the audit record.
        """
        return self._writer().create(instance, actor)

    def create_many(self, instances: Sequence[Instance], actor: str) -> set[str]:
        """``create`` for several instances in one commit; the ids actually created (the
        others existed already and are left as they are).

        :param instances: the new instances, each id at most once (else ValueError).
        :param actor: who created them, for the audit records.
        """
        _distinct(instance.id for instance in instances)
        return self._writer().create_many(instances, actor)

    def load(self, instance_id: str) -> Instance:
        """The instance as stored now; KeyError if there is none.

        :param instance_id: the instance's id.
        """
        return self._writer().load(instance_id)

    def apply(self, instance: Instance, move: Move, actor: str) -> Instance:
        """Persist ``move`` if nobody moved the instance since it was loaded (else raise
        ConcurrentTransition). State and audit record commit together."""
        return self._writer().apply(instance, move, actor)

    def apply_many(
        self, moves: Sequence[tuple[Instance, Move]], actor: str
    ) -> list[Instance | None]:
        """Persist the moves of several distinct instances in one commit (group commit). Each
        instance's state and audit record still go together; where its version check fails
        the result is None and nothing of it is written, while the others are saved.

        :param moves: (instance as loaded, move) pairs, each instance at most once (else
            ValueError); the results come in the same order.
        :param actor: who moved them, for the audit records.
        """
        _distinct(instance.id for instance, _ in moves)
        return self._writer().apply_many(moves, actor)

    def note(
        self,
        bind: Connection | Session,
        instance: Instance,
        event: str,
        actor: str,
        *,
        error: str | None = None,
    ) -> None:
        """Append an audit note to ``instance``'s trail without moving it, in the caller's
        transaction (so the note commits or rolls back with the work it records).

        Parameters:
            bind: the caller's connection or session; the row is written there, not committed.
            instance: the instance the note is about; its current state is the note's from and
                to state (nothing moved).
            event: what happened, as the trail's event name (e.g. ``late_charge_refunded``).
            actor: who did it (a service's name).
            error: an optional message kept with the note.
        """
        bind.execute(
            TRANSITIONS.insert().values(
                instance_id=instance.id,
                from_state=instance.state,
                to_state=instance.state,
                event=event,
                attempt=1,
                actor=actor,
                error=error,
                at=utcnow(),
            )
        )

    def audit_trail(self, instance_id: str) -> list[dict[str, Any]]:
        """The audit records of one instance as dicts of columns, oldest first.

        :param instance_id: the instance's id (no instance: an empty list).
        """
        query = (
            select(TRANSITIONS)
            .where(TRANSITIONS.c.instance_id == instance_id)
            .order_by(TRANSITIONS.c.id)
        )
        with self.engine.connect() as connection:
            return [row._asdict() for row in connection.execute(query)]

    def load_many(self, instance_ids: Sequence[str]) -> dict[str, Instance]:
        """The stored instances of ``instance_ids`` (one query); ids not found are left out.

        :param instance_ids: the instances' ids.
        """
        query = select(INSTANCES).where(INSTANCES.c.id.in_(list(instance_ids)))
        with self.engine.connect() as connection:
            rows = [as_instance(row._asdict()) for row in connection.execute(query)]
        return {instance.id: instance for instance in rows}

    def list_instances(
        self,
        *,
        state: str | None = None,
        status: str | None = None,
        limit: int = 100,
        machines: Collection[str] | None = None,
    ) -> list[Instance]:
        """Instances, most recently updated first.

        :param state: only instances in this state (default: any).
        :param status: only instances with this status (default: any).
        :param limit: at most this many.
        :param machines: only instances of these machines (default: any; empty: none).
        """
        query = select(INSTANCES).order_by(INSTANCES.c.updated_at.desc()).limit(limit)
        if machines is not None:
            query = query.where(INSTANCES.c.machine.in_(sorted(machines)))
        if state:
            query = query.where(INSTANCES.c.state == state)
        if status:
            query = query.where(INSTANCES.c.status == status)
        with self.engine.connect() as connection:
            return [as_instance(row._asdict()) for row in connection.execute(query)]


def _distinct(ids: Iterable[str]) -> None:
    """Batches name each instance at most once (one row change per instance per commit)."""
    listed = list(ids)
    if len(set(listed)) != len(listed):
        raise ValueError("a batch takes at most one entry per instance")
