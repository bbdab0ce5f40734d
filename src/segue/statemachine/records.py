"""What the saga store keeps: the two tables (one row per instance, guarded by ``version``, and
an append-only audit trail) and the plain values the runner reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from segue.migrations.component import Component
from segue.store.engine import new_metadata, utcnow

RUNNING, WAITING, COMPENSATING = "running", "waiting", "compensating"
FINAL_STATUSES = ("succeeded", "failed", "compensated", "compensation_failed")


class SagaBase(DeclarativeBase):
    """Declarative base of the saga store (component ``segue.statemachine``)."""

    metadata = new_metadata()


class SagaInstanceRow(SagaBase):
    """One saga instance: its state, status, data and bookkeeping, guarded by ``version``."""

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


class SagaTransitionRow(SagaBase):
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
COMPONENT = Component(
    name="segue.statemachine",
    metadata=SagaBase.metadata,
    script_location=Path(__file__).with_name("migrations"),
    version_table="alembic_version_segue_statemachine",
    legacy_tables=("saga_instances", "saga_transitions"),
)
# Column order of every instance read (the raw PostgreSQL path builds Instance from tuples).
INSTANCE_COLUMNS = tuple(column.name for column in INSTANCES.columns)


@dataclass
class Instance:
    """A saga instance as loaded; ``context`` is the runner's bookkeeping (attempts, visits,
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
        """True once the instance has a final status (nothing more will move it)."""
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


def moved(instance: Instance, move: Move, now: datetime) -> Instance:
    """The instance as it is once ``move`` is saved (version + 1)."""
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


def audit_from(instance: Instance, move: Move) -> str:
    """The ``from_state`` of the audit record: the move's own, else the instance's state.

    :param instance: the instance as loaded, before the move.
    :param move: the transition being saved.
    """
    return move.from_state if move.from_state is not None else instance.state


def as_instance(row: dict[str, Any]) -> Instance:
    """An Instance from a row; SQLite hands back naive datetimes, which are UTC here.

    :param row: the ``saga_instances`` columns by name; its naive datetimes are fixed in place.
    """
    for column in ("wake_at", "created_at", "updated_at"):
        value = row.get(column)
        if value is not None and value.tzinfo is None:
            row[column] = value.replace(tzinfo=UTC)
    return Instance(**row)
