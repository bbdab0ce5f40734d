"""Run by test_legacy_upgrade in a subprocess, on the tree of the commit before migrations:
build the business store with that code's ``create_all`` and put rows in every table.

Usage: python legacy_store.py <database url> <expected segue package folder>
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import JSON, Table

import segue
from include.payments.database import payments_engine
from include.payments.followups import FollowupBase, followups_engine
from segue.eventlog.store import eventlog_engine
from segue.store.engine import Base, session_scope

ROWS_PER_TABLE = 3


def value_for(table: Table, column_name: str, row: int) -> object:
    """A valid, distinct value of the column's Python type for row ``row``."""
    column = table.columns[column_name]
    if isinstance(column.type, JSON):
        return {"row": row, "nested": [1, "two"]}
    kind = column.type.python_type
    if kind is str:
        length = getattr(column.type, "length", None) or 200
        return f"{table.name[:8]}-{column_name[:8]}-{row}"[:length]
    if kind is int:
        return row + 1
    if kind is Decimal:
        return Decimal("12.34") + row
    if kind is datetime:
        return datetime(2026, 11, 20, 9, 30, tzinfo=UTC) + timedelta(minutes=row)
    if kind is bytes:
        return f"body-{row}".encode()
    raise TypeError(f"no sample for {table.name}.{column_name} ({kind})")


def main(url: str, expected_package: str) -> None:
    here = Path(segue.__file__).resolve().parent
    if here != Path(expected_package).resolve():
        raise SystemExit(f"imported segue from {here}, not the old tree {expected_package}")
    engine = payments_engine(url)
    eventlog_engine(url)
    followups_engine(url)
    tables = [*Base.metadata.sorted_tables, *FollowupBase.metadata.sorted_tables]
    with session_scope(engine) as session:
        for table in tables:
            for row in range(ROWS_PER_TABLE):
                values = {
                    column.name: value_for(table, column.name, row)
                    for column in table.columns
                    if not (column.primary_key and column.autoincrement is True)
                }
                session.execute(table.insert().values(values))
    print(",".join(sorted(table.name for table in tables)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
