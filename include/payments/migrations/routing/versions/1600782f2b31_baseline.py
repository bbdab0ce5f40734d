"""baseline: order_routes, the path each order was assigned when placed

Revision ID: 1600782f2b31
Revises:
Create Date: 2026-12-01 20:49:12.380529
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1600782f2b31"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_routes",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=True),
        sa.Column("dag_run_id", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_routes")),
    )


def downgrade() -> None:
    op.drop_table("order_routes")
