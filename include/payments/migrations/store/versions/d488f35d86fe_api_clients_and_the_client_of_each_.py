"""API clients of the order intake (hashed keys), and the client that placed each order.

Existing placements keep client NULL: they were placed before keys existed.

Revision ID: d488f35d86fe
Revises: 2f9f43253793
Create Date: 2026-12-01 20:47:21.146462
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d488f35d86fe"
down_revision = "2f9f43253793"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_clients_key_hash")),
    )
    with op.batch_alter_table("order_placements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_placements", schema=None) as batch_op:
        batch_op.drop_column("client")

    op.drop_table("api_clients")
