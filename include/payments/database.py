"""The payment domain's business store: one engine per URL, schema created on first use."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine

import include.payments.tables  # noqa: F401  (registers the tables on Base.metadata)
import segue.store.dead_letters  # noqa: F401
from segue.store.engine import build_engine, create_schema


@lru_cache(maxsize=8)
def payments_engine(url: str) -> Engine:
    """The shared engine of ``url`` in this process, with every table created if missing."""
    engine = build_engine(url)
    create_schema(engine)
    return engine
