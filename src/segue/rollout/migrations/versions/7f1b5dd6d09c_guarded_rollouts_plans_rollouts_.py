"""Guarded rollouts: plans (versioned), rollouts and their evaluations

Revision ID: 7f1b5dd6d09c
Revises: 2d58534526b1
Create Date: 2026-12-06 13:23:37.102851
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7f1b5dd6d09c"
down_revision = "2d58534526b1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("evaluation", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("check_name", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("candidate_value", sa.Float(), nullable=True),
        sa.Column("candidate_sample", sa.Integer(), nullable=False),
        sa.Column("baseline_value", sa.Float(), nullable=True),
        sa.Column("baseline_sample", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_evaluations")),
    )
    with op.batch_alter_table("rollout_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rollout_evaluations_rollout", ["rollout_id", "check_name"], unique=False
        )

    op.create_table(
        "rollout_plans",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("saved_by", sa.String(length=200), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_rollout_plans")),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flag_name", sa.String(length=100), nullable=False),
        sa.Column("flag", sa.JSON(), nullable=False),
        sa.Column("plan_name", sa.String(length=100), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("awaiting_step", sa.Integer(), nullable=True),
        sa.Column("flag_version", sa.Integer(), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.Column("evaluations", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.create_index("ix_rollouts_flag_state", ["flag_name", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index("ix_rollouts_flag_state")

    op.drop_table("rollouts")
    op.drop_table("rollout_plans")
    with op.batch_alter_table("rollout_evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_rollout_evaluations_rollout")

    op.drop_table("rollout_evaluations")
