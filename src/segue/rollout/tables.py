"""The rollout's tables (component ``segue.rollout``): flag versions, kept forever, the route
decision of every subject, written once, and the guarded rollouts' plans (versioned), rollouts
and each evaluation's measurements."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from segue.migrations.component import Component
from segue.store.engine import new_metadata, utcnow


class RolloutBase(DeclarativeBase):
    """Declarative base of the rollout tables (component ``segue.rollout``)."""

    metadata = new_metadata()


class FlagVersionRow(RolloutBase):
    """One version of a flag: the definition in force from ``changed_at`` on, who and why.

    The primary key (flag, version) is the optimistic lock: two changes based on the same
    version cannot both be written.
    """

    __tablename__ = "flag_versions"

    flag_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    definition: Mapped[Any] = mapped_column(JSON)
    layout: Mapped[Any] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text)


class RouteDecisionRow(RolloutBase):
    """The path one subject (an order) was sent to, by which flag version and why; never changed."""

    __tablename__ = "route_decisions"
    __table_args__ = (Index("ix_route_decisions_flag_path", "flag_name", "path"),)

    subject_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    flag_name: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(100))
    flag_version: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(300))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RolloutPlanRow(RolloutBase):
    """One version of a rollout plan, kept forever, with who saved it and why."""

    __tablename__ = "rollout_plans"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    plan: Mapped[Any] = mapped_column(JSON)
    saved_by: Mapped[str] = mapped_column(String(200))
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text)


class RolloutRow(RolloutBase):
    """One guarded rollout of a plan version: where it is and what it last decided."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_flag_state", "flag_name", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flag_name: Mapped[str] = mapped_column(String(100))
    flag: Mapped[Any] = mapped_column(JSON)
    plan_name: Mapped[str] = mapped_column(String(100))
    plan_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(30))
    step_index: Mapped[int] = mapped_column(Integer)
    step_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    awaiting_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flag_version: Mapped[int] = mapped_column(Integer)
    counters: Mapped[Any] = mapped_column(JSON)
    evaluations: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text)


class RolloutEvaluationRow(RolloutBase):
    """One check's measurement in one evaluation of a rollout, kept for the charts."""

    __tablename__ = "rollout_evaluations"
    __table_args__ = (Index("ix_rollout_evaluations_rollout", "rollout_id", "check_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(Integer)
    evaluation: Mapped[int] = mapped_column(Integer)
    evaluated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    step_index: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer)
    check_name: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))
    candidate_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    candidate_sample: Mapped[int] = mapped_column(Integer)
    baseline_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    baseline_sample: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text)


COMPONENT = Component(
    name="segue.rollout",
    metadata=RolloutBase.metadata,
    script_location=Path(__file__).with_name("migrations"),
    version_table="alembic_version_segue_rollout",
)
