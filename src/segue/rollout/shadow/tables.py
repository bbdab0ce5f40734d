"""The shadow switch's table (component ``segue.shadow``): every version kept, with who and why.

A component of its own, not part of ``segue.rollout``, so that the split's migrations and the
switch's evolve independently.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from segue.migrations.component import Component
from segue.store.engine import new_metadata, utcnow


class ShadowSwitchBase(DeclarativeBase):
    """Declarative base of the shadow switch (component ``segue.shadow``)."""

    metadata = new_metadata()


class ShadowSettingRow(ShadowSwitchBase):
    """One version of a flag's shadow setting; ``path`` NULL (or percent 0) is off.

    The primary key (flag, version) is the optimistic lock, as for the split's versions.
    """

    __tablename__ = "shadow_settings"

    flag_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str | None] = mapped_column(String(100), nullable=True)
    percent: Mapped[int] = mapped_column(Integer)
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text)


COMPONENT = Component(
    name="segue.shadow",
    metadata=ShadowSwitchBase.metadata,
    script_location=Path(__file__).with_name("migrations"),
    version_table="alembic_version_segue_shadow",
)
