"""The demo catalog and stock seeding (idempotent: existing stock levels are kept)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from include.payments.tables import StockRow
from segue.store.inserts import insert_if_absent

DEFAULT_STOCK = 1_000_000

DEFAULT_CATALOG: dict[str, str] = {
    "SKU-MUG": "Segue mug",
    "SKU-TEE": "Segue t-shirt",
    "SKU-CAP": "Segue cap",
    "SKU-BOOK": "Choreography, a field guide",
}


def seed_catalog(
    session: Session, catalog: dict[str, str] | None = None, stock: int = DEFAULT_STOCK
) -> int:
    """Add missing catalog items with ``stock`` units; returns how many were added."""
    added = 0
    for sku, name in (catalog or DEFAULT_CATALOG).items():
        added += insert_if_absent(
            session, StockRow.__table__, {"sku": sku, "name": name, "available": stock}
        )
    return added
