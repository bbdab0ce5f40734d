"""The payment domain's business store: one engine per URL, schema created on first use."""

from __future__ import annotations

from sqlalchemy import Engine

import include.payments.tables  # noqa: F401  (registers the tables on Base.metadata)
import segue.bus.inbox
import segue.bus.outbox
import segue.statemachine.store
import segue.store.dead_letters  # noqa: F401
from segue.store.engine import shared_engine


def payments_engine(url: str) -> Engine:
    """The shared engine of ``url`` in this process, with every table created if missing."""
    return shared_engine(url)
