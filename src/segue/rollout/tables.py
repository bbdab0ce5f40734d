"""The rollout's tables (component ``segue.rollout``): flag versions, kept forever, and the route
decision of every subject, written once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
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


COMPONENT = Component(
    name="segue.rollout",
    metadata=RolloutBase.metadata,
    script_location=Path(__file__).with_name("migrations"),
    version_table="alembic_version_segue_rollout",
)
