"""The saga store's writes through SQLAlchemy Core: the portable path (SQLite, and PostgreSQL
with a driver other than psycopg 3). One thread's connection, statements built once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from segue.statemachine.records import (
    INSTANCES,
    TRANSITIONS,
    ConcurrentTransition,
    Instance,
    Move,
    as_instance,
    audit_from,
    moved,
)
from segue.store.engine import utcnow
from segue.store.inserts import insert_if_absent

# Built once: the hot path only binds values (SQLAlchemy caches the compiled form).
MOVE_INSTANCE = (
    update(INSTANCES)
    .where(INSTANCES.c.id == bindparam("b_id"), INSTANCES.c.version == bindparam("b_version"))
    .values(
        {
            column: bindparam(column)
            for column in (
                "state",
                "status",
                "data",
                "context",
                "version",
                "wake_at",
                "error",
                "updated_at",
            )
        }
    )
)
RECORD_TRANSITION = insert(TRANSITIONS)
LOAD_INSTANCE = select(INSTANCES).where(INSTANCES.c.id == bindparam("b_id"))


class CoreWriter:
    """Creates, loads and moves instances on one SQLAlchemy connection (one thread's)."""

    def __init__(self, engine: Engine) -> None:
        """Check out one connection from ``engine`` and keep it for this writer's thread.

        :param engine: the business store.
        """
        self.connection: Connection = engine.connect()

    @property
    def usable(self) -> bool:
        """False once the connection is closed or invalidated (the store then opens another)."""
        return not (self.connection.closed or self.connection.invalidated)

    def close(self) -> None:
        """Close the connection (return it to the engine's pool)."""
        self.connection.close()

    def create(self, instance: Instance, actor: str) -> bool:
        """Insert a new instance with its first audit record; False if the id exists.

        :param instance: the new instance (its ``version`` is stored as 1).
        :param actor: who created it, for the audit record.
        """
        with self.connection.begin():
            return self._create(instance, actor)

    def create_many(self, instances: Sequence[Instance], actor: str) -> set[str]:
        """Insert the instances absent so far in one transaction; the ids actually created.

        :param instances: the new instances.
        :param actor: who created them, for the audit records.
        """
        with self.connection.begin():
            return {i.id for i in instances if self._create(i, actor)}

    def _create(self, instance: Instance, actor: str) -> bool:
        now = utcnow()
        connection = self.connection
        values = {
            "id": instance.id,
            "machine": instance.machine,
            "machine_version": instance.machine_version,
            "state": instance.state,
            "status": instance.status,
            "data": instance.data,
            "context": instance.context,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        created = insert_if_absent(connection, INSTANCES, values)
        if created:
            connection.execute(
                RECORD_TRANSITION,
                {
                    "instance_id": instance.id,
                    "from_state": None,
                    "to_state": instance.state,
                    "event": "start",
                    "attempt": 1,
                    "actor": actor,
                    "error": None,
                    "at": now,
                },
            )
        return created

    def load(self, instance_id: str) -> Instance:
        """The instance as stored now; KeyError if there is none.

        :param instance_id: the instance's id.
        """
        with self.connection.begin():
            row = self.connection.execute(LOAD_INSTANCE, {"b_id": instance_id}).first()
        if row is None:
            raise KeyError(instance_id)
        return as_instance(row._asdict())

    def apply(self, instance: Instance, move: Move, actor: str) -> Instance:
        """Persist ``move`` if the version still matches, else raise ConcurrentTransition."""
        with self.connection.begin():
            result = self._move(instance, move, actor)
        if result is None:
            raise ConcurrentTransition(f"{instance.id} moved past version {instance.version}")
        return result

    def apply_many(
        self, moves: Sequence[tuple[Instance, Move]], actor: str
    ) -> list[Instance | None]:
        """Persist every move in one transaction; None where the version check failed (that
        instance is left untouched, the others are saved).

        :param moves: (instance as loaded, move) pairs; the results come in the same order.
        :param actor: who moved them, for the audit records.
        """
        with self.connection.begin():
            return [self._move(instance, move, actor) for instance, move in moves]

    def _move(self, instance: Instance, move: Move, actor: str) -> Instance | None:
        now = utcnow()
        changed = self.connection.execute(
            MOVE_INSTANCE,
            {
                "b_id": instance.id,
                "b_version": instance.version,
                "state": move.to_state,
                "status": move.status,
                "data": move.data,
                "context": move.context,
                "version": instance.version + 1,
                "wake_at": move.wake_at,
                "error": move.error,
                "updated_at": now,
            },
        ).rowcount
        if changed != 1:
            return None
        self.connection.execute(
            RECORD_TRANSITION,
            {
                "instance_id": instance.id,
                "from_state": audit_from(instance, move),
                "to_state": move.to_state,
                "event": move.event,
                "attempt": move.attempt,
                "actor": actor,
                "error": move.error,
                "at": now,
            },
        )
        return moved(instance, move, now)
