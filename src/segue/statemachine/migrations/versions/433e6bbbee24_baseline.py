"""Baseline: the tables `create_all` made before migrations, exactly.

Revision ID: 433e6bbbee24
Revises: (none: the first revision)
Create Date: 2026-12-01 20:20:09.433051
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "433e6bbbee24"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saga_instances",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("machine", sa.String(length=100), nullable=False),
        sa.Column("machine_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saga_instances")),
    )
    with op.batch_alter_table("saga_instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saga_instances_machine"), ["machine"], unique=False)
        batch_op.create_index(batch_op.f("ix_saga_instances_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_saga_instances_status"), ["status"], unique=False)

    op.create_table(
        "saga_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=100), nullable=False),
        sa.Column("from_state", sa.String(length=64), nullable=True),
        sa.Column("to_state", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saga_transitions")),
    )
    with op.batch_alter_table("saga_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saga_transitions_instance_id"), ["instance_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("saga_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saga_transitions_instance_id"))

    op.drop_table("saga_transitions")
    with op.batch_alter_table("saga_instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saga_instances_status"))
        batch_op.drop_index(batch_op.f("ix_saga_instances_state"))
        batch_op.drop_index(batch_op.f("ix_saga_instances_machine"))

    op.drop_table("saga_instances")
