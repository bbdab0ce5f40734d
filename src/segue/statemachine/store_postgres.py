"""The saga store's writes on PostgreSQL through the psycopg 3 connection itself, in autocommit.

Each write is one statement, so one round trip and one implicit transaction: the version-checked
UPDATE and the audit INSERT are chained in a CTE (the INSERT selects from the UPDATE's RETURNING),
so both happen or neither does, and the INSERT's rowcount says whether the optimistic check
passed. Through SQLAlchemy the same work took BEGIN, UPDATE, INSERT and COMMIT: four round trips
plus the Core execution machinery, which together cost more than the SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from segue.statemachine.records import (
    INSTANCE_COLUMNS,
    ConcurrentTransition,
    Instance,
    Move,
    audit_from,
    moved,
)
from segue.store.engine import utcnow

AUDIT_COLUMNS = "instance_id, from_state, to_state, event, attempt, actor, error, at"

CREATE = f"""
WITH created AS (
    INSERT INTO saga_instances (id, machine, machine_version, state, status, data, context,
                                version, created_at, updated_at)
    VALUES (%(id)s, %(machine)s, %(machine_version)s, %(state)s, %(status)s, %(data)s::json,
            %(context)s::json, 1, %(now)s, %(now)s)
    ON CONFLICT DO NOTHING
    RETURNING id, state
)
INSERT INTO saga_transitions ({AUDIT_COLUMNS})
SELECT id, NULL, state, 'start', 1, %(actor)s::text, NULL, %(now)s FROM created
"""

CREATE_MANY = f"""
WITH created AS (
    INSERT INTO saga_instances (id, machine, machine_version, state, status, data, context,
                                version, created_at, updated_at)
    SELECT n.id, n.machine, n.machine_version, n.state, n.status, n.data, n.context, 1,
           %(now)s, %(now)s
    FROM unnest(%(ids)s::text[], %(machines)s::text[], %(machine_versions)s::int[],
                %(states)s::text[], %(statuses)s::text[], %(data)s::text[]::json[],
                %(contexts)s::text[]::json[])
        AS n(id, machine, machine_version, state, status, data, context)
    ON CONFLICT DO NOTHING
    RETURNING id, state
)
INSERT INTO saga_transitions ({AUDIT_COLUMNS})
SELECT id, NULL, state, 'start', 1, %(actor)s::text, NULL, %(now)s FROM created
RETURNING instance_id
"""

MOVE = f"""
WITH moved AS (
    UPDATE saga_instances
    SET state = %(state)s, status = %(status)s, data = %(data)s::json,
        context = %(context)s::json, version = version + 1, wake_at = %(wake_at)s::timestamptz,
        error = %(error)s::text, updated_at = %(now)s
    WHERE id = %(id)s AND version = %(version)s
    RETURNING id
)
INSERT INTO saga_transitions ({AUDIT_COLUMNS})
SELECT id, %(from_state)s::text, %(state)s::text, %(event)s::text, %(attempt)s::int,
       %(actor)s::text, %(error)s::text, %(now)s FROM moved
"""

# Many instances, one statement, one commit (group commit); each id appears at most once.
MOVE_MANY = f"""
WITH moves AS (
    SELECT * FROM unnest(%(ids)s::text[], %(versions)s::int[], %(states)s::text[],
                         %(statuses)s::text[], %(data)s::text[]::json[],
                         %(contexts)s::text[]::json[], %(wake_ats)s::timestamptz[],
                         %(errors)s::text[], %(from_states)s::text[], %(events)s::text[],
                         %(attempts)s::int[])
        AS m(id, version, state, status, data, context, wake_at, error, from_state, event,
             attempt)
), moved AS (
    UPDATE saga_instances AS s
    SET state = m.state, status = m.status, data = m.data, context = m.context,
        version = s.version + 1, wake_at = m.wake_at, error = m.error, updated_at = %(now)s
    FROM moves AS m
    WHERE s.id = m.id AND s.version = m.version
    RETURNING s.id
)
INSERT INTO saga_transitions ({AUDIT_COLUMNS})
SELECT m.id, m.from_state, m.state, m.event, m.attempt, %(actor)s::text, m.error, %(now)s
FROM moves AS m JOIN moved USING (id)
RETURNING instance_id
"""

LOAD = f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM saga_instances WHERE id = %s"


class PostgresWriter:
    """Creates, loads and moves instances on one thread's own psycopg connection (autocommit,
    detached from the pool so it never goes back to other users in that mode)."""

    def __init__(self, engine: Engine, *, synchronous_commit: bool = True) -> None:
        """Take a connection from ``engine``'s pool, detach it and switch it to autocommit.

        :param engine: the business store (PostgreSQL through psycopg 3).
        :param synchronous_commit: False sets ``synchronous_commit = off`` for this session.
        """
        self._fairy = engine.raw_connection()
        self.connection: Any = self._fairy.driver_connection
        self._fairy.detach()
        self.connection.autocommit = True
        if not synchronous_commit:
            self.connection.execute("SET synchronous_commit = off")

    @property
    def usable(self) -> bool:
        """False once the connection is closed or broken (the store then opens another)."""
        return not (self.connection.closed or self.connection.broken)

    def close(self) -> None:
        """Close the connection (detached, so it does not go back to the pool)."""
        self._fairy.close()

    def create(self, instance: Instance, actor: str) -> bool:
        """Insert a new instance with its first audit record; False if the id exists.

        :param instance: the new instance (its ``version`` is stored as 1).
        :param actor: who created it, for the audit record.
        """
        params = {
            "id": instance.id,
            "machine": instance.machine,
            "machine_version": instance.machine_version,
            "state": instance.state,
            "status": instance.status,
            "data": json.dumps(instance.data),
            "context": json.dumps(instance.context),
            "actor": actor,
            "now": utcnow(),
        }
        return self.connection.execute(CREATE, params).rowcount == 1

    def create_many(self, instances: Sequence[Instance], actor: str) -> set[str]:
        """Insert the instances absent so far, each with its first audit record, in one
        statement (one commit); the ids actually created.

        :param instances: the new instances.
        :param actor: who created them, for the audit records.
        """
        if not instances:
            return set()
        params = {
            "ids": [i.id for i in instances],
            "machines": [i.machine for i in instances],
            "machine_versions": [i.machine_version for i in instances],
            "states": [i.state for i in instances],
            "statuses": [i.status for i in instances],
            "data": [json.dumps(i.data) for i in instances],
            "contexts": [json.dumps(i.context) for i in instances],
            "actor": actor,
            "now": utcnow(),
        }
        return {row[0] for row in self.connection.execute(CREATE_MANY, params).fetchall()}

    def load(self, instance_id: str) -> Instance:
        """The instance as stored now; KeyError if there is none.

        :param instance_id: the instance's id.
        """
        row = self.connection.execute(LOAD, (instance_id,)).fetchone()
        if row is None:
            raise KeyError(instance_id)
        return Instance(**dict(zip(INSTANCE_COLUMNS, row, strict=True)))

    def apply(self, instance: Instance, move: Move, actor: str) -> Instance:
        """Persist ``move`` if the version still matches, else raise ConcurrentTransition."""
        now = utcnow()
        params = {
            "id": instance.id,
            "version": instance.version,
            "state": move.to_state,
            "status": move.status,
            "data": json.dumps(move.data),
            "context": json.dumps(move.context),
            "wake_at": move.wake_at,
            "error": move.error,
            "from_state": audit_from(instance, move),
            "event": move.event,
            "attempt": move.attempt,
            "actor": actor,
            "now": now,
        }
        if self.connection.execute(MOVE, params).rowcount != 1:
            raise ConcurrentTransition(f"{instance.id} moved past version {instance.version}")
        return moved(instance, move, now)

    def apply_many(
        self, moves: Sequence[tuple[Instance, Move]], actor: str
    ) -> list[Instance | None]:
        """Persist every move in one statement (one commit); None where the version check
        failed (that instance is left untouched, the others are saved).

        :param moves: (instance as loaded, move) pairs, each instance at most once; the results
            come in the same order.
        :param actor: who moved them, for the audit records.
        """
        if not moves:
            return []
        now = utcnow()
        params = {
            "ids": [instance.id for instance, _ in moves],
            "versions": [instance.version for instance, _ in moves],
            "states": [move.to_state for _, move in moves],
            "statuses": [move.status for _, move in moves],
            "data": [json.dumps(move.data) for _, move in moves],
            "contexts": [json.dumps(move.context) for _, move in moves],
            "wake_ats": [move.wake_at for _, move in moves],
            "errors": [move.error for _, move in moves],
            "from_states": [audit_from(instance, move) for instance, move in moves],
            "events": [move.event for _, move in moves],
            "attempts": [move.attempt for _, move in moves],
            "actor": actor,
            "now": now,
        }
        saved = {row[0] for row in self.connection.execute(MOVE_MANY, params).fetchall()}
        return [moved(i, m, now) if i.id in saved else None for i, m in moves]
