"""Durable saga state: one row per instance (optimistic ``version``) and an append-only audit
trail of every transition. SQLAlchemy Core, on PostgreSQL and SQLite."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from segue.store.engine import Base, create_schema, utcnow
from segue.store.inserts import insert_if_absent

RUNNING, WAITING, COMPENSATING = "running", "waiting", "compensating"
FINAL_STATUSES = ("succeeded", "failed", "compensated", "compensation_failed")


class SagaInstanceRow(Base):
    __tablename__ = "saga_instances"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    machine: Mapped[str] = mapped_column(String(100), index=True)
    machine_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    wake_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SagaTransitionRow(Base):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "saga_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(100), index=True)
    from_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_state: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


INSTANCES = SagaInstanceRow.__table__
TRANSITIONS = SagaTransitionRow.__table__


@dataclass
class Instance:
    """A saga instance as loaded; ``context`` is the engine's bookkeeping (attempts, visits,
    completed steps, branch results, compensation progress)."""

    id: str
    machine: str
    machine_version: int
    state: str
    status: str
    data: dict[str, Any]
    context: dict[str, Any]
    version: int
    wake_at: datetime | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Move:
    """One transition to persist: the instance's new values and its audit record."""

    to_state: str
    status: str
    event: str
    attempt: int
    data: dict[str, Any]
    context: dict[str, Any]
    wake_at: datetime | None = None
    error: str | None = None
    from_state: str | None = None


class ConcurrentTransition(RuntimeError):
    """Another worker moved the instance first (its version changed): reload and look again."""


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


class SagaStore:
    """Loads and moves saga instances. Each thread keeps one connection for its transitions
    (no pool checkout, ping and reset per transition: they cost more than the SQL itself)."""

    def __init__(self, engine: Engine, *, synchronous_commit: bool = True) -> None:
        """``synchronous_commit=False`` (PostgreSQL) stops waiting for the WAL flush on each
        transition: a database crash may then forget the last fraction of a second of
        transitions, and those instances redo their (idempotent) steps from an earlier state,
        as after a worker crash. An application crash loses nothing either way."""
        self.engine = engine
        self.synchronous_commit = synchronous_commit
        self._local = threading.local()
        create_schema(engine)

    def _connection(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = self.engine.connect()
            if not self.synchronous_commit and connection.dialect.name == "postgresql":
                with connection.begin():
                    connection.execute(text("SET synchronous_commit = off"))
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def create(self, instance: Instance, actor: str) -> bool:
        """Insert a new instance with its first audit record; False if the id exists."""
        now = utcnow()
        connection = self._connection()
        with connection.begin():
            created = insert_if_absent(
                connection,
                INSTANCES,
                {
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
                },
            )
            if created:
                connection.execute(
                    insert(TRANSITIONS).values(
                        instance_id=instance.id,
                        from_state=None,
                        to_state=instance.state,
                        event="start",
                        attempt=1,
                        actor=actor,
                        at=now,
                    )
                )
        return created

    def load(self, instance_id: str) -> Instance:
        connection = self._connection()
        with connection.begin():
            row = connection.execute(LOAD_INSTANCE, {"b_id": instance_id}).first()
        if row is None:
            raise KeyError(instance_id)
        return _instance(row._asdict())

    def apply(self, instance: Instance, move: Move, actor: str) -> Instance:
        """Persist ``move`` if nobody moved the instance since it was loaded (else raise
        ConcurrentTransition). State and audit record commit together."""
        now = utcnow()
        connection = self._connection()
        with connection.begin():
            changed = connection.execute(
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
                raise ConcurrentTransition(f"{instance.id} moved past version {instance.version}")
            connection.execute(
                RECORD_TRANSITION,
                {
                    "instance_id": instance.id,
                    "from_state": move.from_state
                    if move.from_state is not None
                    else instance.state,
                    "to_state": move.to_state,
                    "event": move.event,
                    "attempt": move.attempt,
                    "actor": actor,
                    "error": move.error,
                    "at": now,
                },
            )
        return Instance(
            id=instance.id,
            machine=instance.machine,
            machine_version=instance.machine_version,
            state=move.to_state,
            status=move.status,
            data=move.data,
            context=move.context,
            version=instance.version + 1,
            wake_at=move.wake_at,
            error=move.error,
            created_at=instance.created_at,
            updated_at=now,
        )

    def audit_trail(self, instance_id: str) -> list[dict[str, Any]]:
        query = (
            select(TRANSITIONS)
            .where(TRANSITIONS.c.instance_id == instance_id)
            .order_by(TRANSITIONS.c.id)
        )
        with self.engine.connect() as connection:
            return [row._asdict() for row in connection.execute(query)]

    def list_instances(
        self, *, state: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Instance]:
        query = select(INSTANCES).order_by(INSTANCES.c.updated_at.desc()).limit(limit)
        if state:
            query = query.where(INSTANCES.c.state == state)
        if status:
            query = query.where(INSTANCES.c.status == status)
        with self.engine.connect() as connection:
            return [_instance(row._asdict()) for row in connection.execute(query)]


def _instance(row: dict[str, Any]) -> Instance:
    """An Instance from a row; SQLite hands back naive datetimes, which are UTC here."""
    for column in ("wake_at", "created_at", "updated_at"):
        value = row.get(column)
        if value is not None and value.tzinfo is None:
            row[column] = value.replace(tzinfo=UTC)
    return Instance(**row)
