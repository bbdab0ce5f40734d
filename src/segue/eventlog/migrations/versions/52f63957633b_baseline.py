"""Baseline: the tables `create_all` made before migrations, exactly.

Revision ID: 52f63957633b
Revises: (none: the first revision)
Create Date: 2026-12-01 20:20:10.879049
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "52f63957633b"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=False),
        sa.Column("causation_id", sa.String(length=200), nullable=True),
        sa.Column("traceparent", sa.String(length=64), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_log_event_id")),
    )
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_log_correlation_id"), ["correlation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_event_log_subject"), ["subject"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_log_time"), ["time"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_log_type"), ["type"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_log_type"))
        batch_op.drop_index(batch_op.f("ix_event_log_time"))
        batch_op.drop_index(batch_op.f("ix_event_log_subject"))
        batch_op.drop_index(batch_op.f("ix_event_log_correlation_id"))

    op.drop_table("event_log")
