"""batch_orders: the queue of front-door orders for batched DAG runs

Revision ID: 146fe8e7d12c
Revises: 1600782f2b31
Create Date: 2026-12-06 16:25:25.979913
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "146fe8e7d12c"
down_revision = "1600782f2b31"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_orders",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("next_step", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=250), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs", sa.String(length=4000), nullable=False),
        sa.Column("outcome", sa.String(length=1000), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_batch_orders")),
    )
    with op.batch_alter_table("batch_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_batch_orders_ready", ["dag_id", "state", "not_before"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("batch_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_batch_orders_ready")

    op.drop_table("batch_orders")
