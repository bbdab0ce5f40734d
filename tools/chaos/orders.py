"""The order mix of the fault runs and comparisons: good orders, declined cards, out of stock.

Orders carry two good lines; an out-of-stock order adds a line of ``SKU-SCARCE``, a catalog
item with no stock; a declined one pays with the gateway's always-declined test token.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, update

from include.payments.tables import StockRow
from segue.store.engine import session_scope

GOOD_TOKEN = "pm_card_visa"
DECLINED_TOKEN = "pm_card_chargeDeclined"
SCARCE_SKU = "SKU-SCARCE"  # in the catalog with no stock: every order of it runs out of stock
LINES = ({"sku": "SKU-MUG", "quantity": 2}, {"sku": "SKU-TEE", "quantity": 1})
KINDS = ("good", "declined", "out_of_stock")


def order_mix(count: int, prefix: str = "ord", start: int = 0) -> dict[str, str]:
    """``count`` order ids as ``order_id -> kind``: 1 in 10 declined, 1 in 10 out of stock.

    The bad orders sit at positions 3 and 7 of every ten, so any run of eight or more has one
    of each.

    :param count: how many orders.
    :param prefix: the ids' first part (an id is ``prefix-kind-index-random``).
    :param start: the first order's position (phases of one run continue the pattern).
    """
    kinds = {}
    for index in range(start, start + count):
        kind = {3: "declined", 7: "out_of_stock"}.get(index % 10, "good")
        kinds[f"{prefix}-{kind}-{index}-{uuid.uuid4().hex[:6]}"] = kind
    return kinds


def order_body(order_id: str, kind: str, **overrides: Any) -> dict[str, Any]:
    """The JSON of one order of ``kind`` (as ``POST /orders`` or a DAG run's conf takes it).

    :param order_id: its id.
    :param kind: ``good``, ``declined`` or ``out_of_stock``.
    :param overrides: fields to set on top (e.g. ``customer_email``).
    """
    items = [dict(line) for line in LINES]
    if kind == "out_of_stock":
        items = [{"sku": "SKU-MUG", "quantity": 1}, {"sku": SCARCE_SKU, "quantity": 1}]
    body: dict[str, Any] = {
        "order_id": order_id,
        "customer_email": "ada@example.com",
        "payment_method": DECLINED_TOKEN if kind == "declined" else GOOD_TOKEN,
        "amount": "49.99",
        "currency": "USD",
        "items": items,
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
    }
    body.update(overrides)
    return body


def prepare_stock(engine: Engine, orders: int) -> None:
    """Make sure ``orders`` good orders find stock, and that ``SKU-SCARCE`` exists with none.

    Adds what the orders take to the good SKUs (the stock already there stays); a run never
    fails an order for lack of stock it was not meant to lack.

    :param engine: the business store.
    :param orders: how many orders will run.
    """
    with session_scope(engine) as session:
        session.merge(StockRow(sku=SCARCE_SKU, name="Sold out", available=0))
        for line in LINES:
            session.execute(
                update(StockRow)
                .where(StockRow.sku == line["sku"])
                .values(available=StockRow.available + int(line["quantity"]) * orders)
            )
