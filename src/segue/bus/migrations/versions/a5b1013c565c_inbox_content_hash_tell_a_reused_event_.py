"""Inbox content hash: tell a reused event id (another event) from a duplicate.

Rows written before hold NULL, which the consumer takes as matching any content.

Revision ID: a5b1013c565c
Revises: 3901d2524167
Create Date: 2026-12-01 20:49:43.201507
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a5b1013c565c"
down_revision = "3901d2524167"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("content_hash")
