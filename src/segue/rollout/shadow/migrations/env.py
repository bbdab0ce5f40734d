"""Alembic environment of this component: Segue hands it the connection (segue db ...)."""

from __future__ import annotations

from alembic import context

from segue.migrations.environment import run_environment

run_environment(context)
