"""Baseline: the reconciliation report, one row per run and one per finding.

A component born with migrations: no legacy tables to adopt.

Revision ID: 912615b09cce
Revises: (none: the first revision)
Create Date: 2026-12-01 20:55:38.692364
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "912615b09cce"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("finding_key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("gateway_charge_id", sa.String(length=64), nullable=True),
        sa.Column("gateway_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("store_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("refund_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_findings")),
        sa.UniqueConstraint(
            "run_id", "finding_key", name=op.f("uq_reconciliation_findings_run_id_finding_key")
        ),
    )
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_findings_order_id"), ["order_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_reconciliation_findings_run_id"), ["run_id"], unique=False
        )

    op.create_table(
        "reconciliation_runs",
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("charges_checked", sa.Integer(), nullable=False),
        sa.Column("orders_checked", sa.Integer(), nullable=False),
        sa.Column("refunds_made", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_reconciliation_runs")),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_runs")
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_findings_run_id"))
        batch_op.drop_index(batch_op.f("ix_reconciliation_findings_order_id"))

    op.drop_table("reconciliation_findings")
