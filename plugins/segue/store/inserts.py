"""Insert-if-absent, the building block of idempotent effects, on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_if_absent(session: Session | Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless a row with the same unique key exists; True if inserted.

    Uses ``INSERT ... ON CONFLICT DO NOTHING`` so concurrent writers never raise and never
    duplicate: the unique constraint decides who wins.
    """
    bind = session.get_bind() if isinstance(session, Session) else session
    dialect = bind.dialect.name
    if dialect == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported backends are tested
        raise NotImplementedError(f"insert_if_absent does not support {dialect}")
    # RETURNING tells reliably whether a row was written (rowcount does not on every driver).
    key = next(iter(table.primary_key.columns))
    return session.execute(statement.returning(key)).first() is not None
