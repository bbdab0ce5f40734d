"""The payment workflow as a saga: the article's state machine, with compensations.

ORDER_RECEIVED → VALIDATING → CHARGING → FULFILMENT (INVENTORY_RESERVED ∥ RECEIPT_SENT)
→ SHIPPING_NOTIFIED → SUCCEEDED; any failure → FAILED, which cancels the receipt, releases the
stock, refunds the charge and marks the order failed — only what was done, in reverse order
(the UNDO_* states). Failing the order settles its money (``money.settle_failed_order``): a
charge only the gateway knows of (its answer was lost) is refunded too.
The actions are the same domain steps the linear DAG runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from include.payments import money, payment_methods, pipeline, steps
from include.payments.deps import PaymentDeps, default_deps
from include.payments.retry import GATEWAY_RETRY, STORE_RETRY
from segue.statemachine.definition import State, StateMachineDefinition, Transition
from segue.statemachine.machine import ActionContext, Machine
from segue.statemachine.registry import register
from segue.store.engine import session_scope

NAME = "payment_saga"


def _next(target: str) -> tuple[Transition, ...]:
    return (Transition(event="done", target=target), Transition(event="failed", target="FAILED"))


PAYMENT_MACHINE = StateMachineDefinition(
    name=NAME,
    version=1,
    initial="ORDER_RECEIVED",
    description=__doc__.strip().splitlines()[0],
    states=(
        State(
            name="ORDER_RECEIVED",
            kind="task",
            action="receive",
            side_effects=False,
            transitions=_next("VALIDATING"),
            description="Parse the order's fields.",
        ),
        State(
            name="VALIDATING",
            kind="task",
            action="validate",
            compensation="cancel_order",
            retry=STORE_RETRY,
            transitions=_next("CHARGING"),
            description="Check the catalog and record the order.",
        ),
        State(
            name="CHARGING",
            kind="task",
            action="charge",
            compensation="refund",
            retry=GATEWAY_RETRY,
            timeout_seconds=600,
            transitions=(*_next("FULFILMENT"), Transition(event="timeout", target="FAILED")),
            description="Charge the card (idempotency key per order).",
        ),
        State(
            name="FULFILMENT",
            kind="parallel",
            branches=("INVENTORY_RESERVED", "RECEIPT_SENT"),
            transitions=_next("SHIPPING_NOTIFIED"),
            description="Reserve stock and send the receipt, independently.",
        ),
        State(
            name="INVENTORY_RESERVED",
            kind="task",
            action="reserve",
            compensation="release",
            retry=STORE_RETRY,
            transitions=_next("SHIPPING_NOTIFIED"),
        ),
        State(
            name="RECEIPT_SENT",
            kind="task",
            action="receipt",
            compensation="cancel_receipt",
            retry=STORE_RETRY,
            transitions=_next("SHIPPING_NOTIFIED"),
        ),
        State(
            name="SHIPPING_NOTIFIED",
            kind="task",
            action="ship",
            pivot=True,
            retry=STORE_RETRY,
            transitions=_next("SUCCEEDED"),
            description="Commit the stock and notify shipping: the point of no return.",
        ),
        State(name="SUCCEEDED", kind="succeed"),
        State(name="FAILED", kind="fail"),
    ),
)


def payment_machine(deps: PaymentDeps | None = None) -> Machine:
    """The payment machine bound to ``deps`` (default: this process's settings, on first use)."""

    def use() -> PaymentDeps:
        return deps or default_deps()

    def in_transaction(work: Callable[[Session], Any]) -> Any:
        with session_scope(use().engine) as session:
            return work(session)

    def receive(ctx: ActionContext) -> dict[str, Any]:
        return {"order_id": payment_methods.parse_input(ctx.data).order_id}

    def validate(ctx: ActionContext) -> dict[str, Any]:
        return {"order_id": pipeline.validate(use(), ctx.data)}

    def cancel_order(ctx: ActionContext) -> None:
        """Fail the order and settle its money: every charge at the gateway without a refund is
        refunded (a CHARGING that timed out on every attempt may have charged, recorded or not).
        Runs last, after CHARGING's ``refund`` of the charge it completed with, and retries per
        policy while the gateway is down."""
        order_id, reason = ctx.data["order_id"], ctx.error or "saga compensated"
        in_transaction(
            lambda session: money.settle_failed_order(
                session, use().gateway, order_id, fail_reason=reason, recorded="as_found"
            )
        )

    def charge(ctx: ActionContext) -> dict[str, Any]:
        return {"charge": pipeline.charge(use(), ctx.data["order_id"])}

    def refund(ctx: ActionContext) -> None:
        in_transaction(lambda s: steps.refund_charge(s, use().gateway, ctx.data["order_id"]))

    def reserve(ctx: ActionContext) -> dict[str, Any]:
        return {
            "reserved": in_transaction(lambda s: steps.reserve_inventory(s, ctx.data["order_id"]))
        }

    def release(ctx: ActionContext) -> None:
        in_transaction(lambda s: steps.release_reservation(s, ctx.data["order_id"]))

    def receipt(ctx: ActionContext) -> None:
        in_transaction(lambda s: steps.send_receipt(s, ctx.data["order_id"]))

    def cancel_receipt(ctx: ActionContext) -> None:
        in_transaction(lambda s: steps.cancel_receipt(s, ctx.data["order_id"]))

    def ship(ctx: ActionContext) -> dict[str, Any]:
        return {"shipping": in_transaction(lambda s: _ship(s, ctx.data["order_id"]))}

    actions = {
        fn.__name__: fn
        for fn in (
            receive,
            validate,
            cancel_order,
            charge,
            refund,
            reserve,
            release,
            receipt,
            cancel_receipt,
            ship,
        )
    }
    return Machine(PAYMENT_MACHINE, actions)


def _ship(session: Session, order_id: str) -> dict[str, Any]:
    steps.commit_inventory(session, order_id)
    return {"shipping": steps.notify_shipping(session, order_id)}


# The DAG whose runs drive it: the Sagas pages show an instance to who may read that DAG.
register(NAME, payment_machine, dag_ids=("payment_state_machine", "payment_state_machine_batch"))
