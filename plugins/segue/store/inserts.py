"""Insert-if-absent, the building block of idempotent effects, on PostgreSQL and SQLite."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable


def insert_if_absent(session: Session | Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless a row with the same unique key exists; True if inserted.

    Uses ``INSERT ... ON CONFLICT DO NOTHING`` so concurrent writers never raise and never
    duplicate: the unique constraint decides who wins.
    """
    bind = session.get_bind() if isinstance(session, Session) else session
    return session.execute(_statement(bind.dialect.name, table), values).first() is not None


@lru_cache(maxsize=256)
def _statement(dialect: str, table: Table) -> Executable:
    """``INSERT .. ON CONFLICT DO NOTHING RETURNING <key>``, built once per table.

    RETURNING tells reliably whether a row was written (rowcount does not on every driver);
    building the statement once keeps SQLAlchemy's cache-key work off the hot path.
    """
    if dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported backends are tested
        raise NotImplementedError(f"insert_if_absent does not support {dialect}")
    return statement.returning(next(iter(table.primary_key.columns)))
