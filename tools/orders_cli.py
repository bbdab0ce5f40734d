"""``segue orders ...``: operator commands over one order of the payment workflow.

``segue orders reconcile ORDER_ID`` refunds a failed order's gateway charges that have no
refund yet (``pipeline.reconcile_failed_order``, the keys every path uses: running it twice
refunds nothing more) and prints the refunds it made as JSON. ``segue orders timeline ORDER_ID``
prints the order's timeline (``tools.timeline_cli``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from segue.cli import CliContext
from tools.timeline_cli import add_timeline_command


def add_orders_commands(commands: Any) -> None:
    """Register ``orders reconcile`` and ``orders timeline`` on the ``segue`` command's subparsers.

    :param commands: the subparsers of the ``segue`` parser.
    """
    orders = commands.add_parser("orders", help="operate on one order of the payment workflow")
    order_commands = orders.add_subparsers(dest="orders_command", required=True)
    reconcile = order_commands.add_parser(
        "reconcile", help="refund a failed order's gateway charges that have no refund"
    )
    reconcile.add_argument("order_id", help="the order (its gateway reference)")
    reconcile.add_argument("--url", help="database URL (default: the one `segue up` uses)")
    reconcile.add_argument("--gateway-url", help="the gateway (default: SEGUE_GATEWAY_URL)")
    reconcile.set_defaults(run=reconcile_order)
    add_timeline_command(order_commands)


def reconcile_order(args: argparse.Namespace, context: CliContext) -> int:
    """Reconcile ``args.order_id``; 0 when settled (refunds printed), 1 when not reconcilable.

    :param args: ``order_id``, and optionally ``url`` and ``gateway_url``.
    :param context: gives the default database URL.
    """
    from include.payments import pipeline
    from include.payments.deps import PaymentDeps
    from include.payments.errors import PaymentError
    from include.payments.settings import get_payment_settings
    from include.payments.tables import OrderRow
    from segue.store.engine import session_scope

    settings = get_payment_settings()
    if args.gateway_url:
        settings = settings.model_copy(update={"gateway_url": args.gateway_url})
    deps = PaymentDeps.from_settings(settings, args.url or context.database_url())
    try:
        with session_scope(deps.engine) as session:
            order = session.get(OrderRow, args.order_id)
            status = None if order is None else order.status
        if status is None:
            print(f"order {args.order_id}: no such order", file=sys.stderr)
            return 1
        if status != "failed":
            print(
                f"order {args.order_id} is {status}, not failed: only a failed order's "
                "charges are refunded",
                file=sys.stderr,
            )
            return 1
        try:
            refunds = pipeline.reconcile_failed_order(deps, args.order_id)
        except PaymentError as exc:
            print(f"order {args.order_id}: gateway: {exc}", file=sys.stderr)
            return 1
    finally:
        deps.gateway.close()
    print(json.dumps({"order_id": args.order_id, "refunds": refunds}, indent=2))
    print(f"order {args.order_id}: {len(refunds)} refund(s) made now", file=sys.stderr)
    return 0
