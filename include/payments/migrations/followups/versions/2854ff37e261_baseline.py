"""Baseline: the tables `create_all` made before migrations, exactly.

Revision ID: 2854ff37e261
Revises: (none: the first revision)
Create Date: 2026-12-01 20:20:19.696278
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2854ff37e261"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_followups",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),  # unnamed, as before: payment_followups_pkey
    )
    with op.batch_alter_table("payment_followups", schema=None) as batch_op:
        batch_op.create_index("ix_payment_followups_order_id", ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment_followups", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_followups_order_id")

    op.drop_table("payment_followups")
