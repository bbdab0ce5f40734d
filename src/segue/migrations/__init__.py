"""Versioned schemas: each part of the toolkit owns its tables, migrations and version table.

A :class:`Component` names one MetaData, the Alembic folder that migrates it and its version
table; :func:`upgrade` brings a database to the head of the components given, :func:`current`
reads where it is and :func:`check` compares the models to the migrations (``alembic check``).
No ``alembic.ini`` is needed: Alembic is driven from here.
"""

from __future__ import annotations

from segue.migrations.cache import migrated
from segue.migrations.component import Component
from segue.migrations.runner import MigrationError, check, current, heads, upgrade

__all__ = ["Component", "MigrationError", "check", "current", "heads", "migrated", "upgrade"]
