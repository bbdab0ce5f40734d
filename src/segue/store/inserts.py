"""Insert-if-absent, the building block of idempotent effects, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
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


def insert_many_if_absent(
    session: Session | Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: str,
    ordered: bool = False,
) -> set[Any]:
    """Insert every row whose unique key is free, in one statement; the ``key`` values written.

    SQLAlchemy's "insertmanyvalues" turns the parameter list into one multi-row
    ``INSERT .. ON CONFLICT DO NOTHING RETURNING``. A key repeated within ``rows`` is written
    once. ``ordered`` makes server-generated ids (SERIAL) follow the order of ``rows`` (the
    ``INSERT .. SELECT .. ORDER BY`` form on PostgreSQL; one row per statement on SQLite).
    """
    if not rows:
        return set()
    bind = session.get_bind() if isinstance(session, Session) else session
    statement = _many_statement(bind.dialect.name, table, key, ordered)
    return {row[0] for row in session.execute(statement, list(rows))}


@lru_cache(maxsize=256)
def _statement(dialect: str, table: Table) -> Executable:
    """``INSERT .. ON CONFLICT DO NOTHING RETURNING <key>``, built once per table.

    RETURNING tells reliably whether a row was written (rowcount does not on every driver);
    building the statement once keeps SQLAlchemy's cache-key work off the hot path.
    """
    return _on_conflict_do_nothing(dialect, table).returning(next(iter(table.primary_key.columns)))


@lru_cache(maxsize=256)
def _many_statement(dialect: str, table: Table, key: str, ordered: bool) -> Executable:
    """The executemany form of ``_statement`` returning ``key``, built once per table."""
    return _on_conflict_do_nothing(dialect, table).returning(
        table.c[key], sort_by_parameter_order=ordered
    )


def _on_conflict_do_nothing(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"insert_if_absent does not support {dialect}")  # pragma: no cover
