"""Baseline: flag versions and route decisions

Revision ID: 2d58534526b1
Revises: (none: the first revision)
Create Date: 2026-12-01 20:50:10.453895
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2d58534526b1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flag_versions",
        sa.Column("flag_name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("layout", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("flag_name", "version", name=op.f("pk_flag_versions")),
    )
    op.create_table(
        "route_decisions",
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("flag_name", sa.String(length=100), nullable=False),
        sa.Column("path", sa.String(length=100), nullable=False),
        sa.Column("flag_version", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_route_decisions")),
    )
    with op.batch_alter_table("route_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_route_decisions_flag_path", ["flag_name", "path"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("route_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_route_decisions_flag_path")

    op.drop_table("route_decisions")
    op.drop_table("flag_versions")
