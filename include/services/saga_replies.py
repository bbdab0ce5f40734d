"""The saga-replies service: hands the charge service's replies to the sagas awaiting them.

A ChargeCompleted / ChargeFailed answering a ChargeRequested (``requested_by =
"charge_requested"``) whose correlation id is a ``payment_saga_bridged`` instance becomes the
event ``charge_completed`` / ``charge_failed`` of that instance (``SagaRunner.send``). Driving
the instance on is left to whoever runs it (RunSagaOperator, woken by its trigger).

Idempotent: the inbox drops a redelivered reply; a reply for an instance that no longer waits
for it (already moved on, timed out, or not the command of its current visit) is not delivered.
A reply that overtook the saga's own save (the instance still in CHARGING, the command sent but
the transition to AWAITING_CHARGE not yet committed) is retried later (``NotYet``).

A late charge is refunded here. A ChargeCompleted for an instance that gave up (compensating,
or ended failed / compensated / compensation_failed: its reply timeout fired, a charge_failed
came first, an operator abandoned it) means the charge service charged a command the saga no
longer waits for: the command was still in flight when the saga failed, and CHARGING's
compensation (``refund``) ran before the charge existed and found nothing to refund. Every
charge for a ChargeRequested is committed together with its ChargeCompleted (charge service,
one transaction), so every such charge reaches this handler, whichever came first: the
compensation (which then found no charge) or the charge (which the compensation then refunds).
Under the order's row lock (which the charge service holds while charging) the handler refunds
the order's recorded charge with ``money.settle_failed_order`` (``recorded="refund"``): the
same refund, idempotency key (``<order>:refund``), gateway request and ``refunds`` row as the
saga's compensation, so whichever of the two runs first refunds and the other finds it done —
exactly one refund. The refund row, the inbox row, a ``late_charge_refunded`` note in the
instance's audit trail (``SagaStore.note``) and a RefundIssued event (outbox) commit in one
transaction: a crash before the commit redelivers the
reply and the gateway replays the same refund for the key; a redelivered or second reply finds
the refund recorded and does nothing. A gateway outage rolls back and retries later.

A reply for an instance that succeeded or is still running is never refunded: that saga uses
the charge (or its own compensation will refund it). Once the compensation has failed the order
(its last step), the charge service refuses a command still queued (ChargeFailed
``order_failed``), so the window for a late charge is the compensation itself.

This process also relays the saga commands: the sagas write them to the outbox under its name.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from include.payments import money
from include.payments.deps import default_deps
from include.payments.events import PAYMENT_EVENTS, ChargeCompleted, ChargeFailed, RefundIssued
from include.payments.gateway_client import GatewayClient
from include.payments.saga_bridged import (
    CHARGE_COMPLETED,
    CHARGE_FAILED,
    CHARGE_STEP,
    COMMAND_SOURCE,
    PAYMENT_MACHINE_BRIDGED,
    bridged_payment_machine,
)
from segue.bus.handlers import HandlerContext, NotYet, ServiceSpec
from segue.statemachine.records import (
    COMPENSATING,
    WAITING,
    ConcurrentTransition,
    Instance,
)
from segue.statemachine.runner import InvalidAction, SagaRunner
from segue.statemachine.store import SagaStore

NAME = COMMAND_SOURCE
# Statuses of an instance that gave up: it will never use a charge, so a late one is refunded.
GAVE_UP = (COMPENSATING, "failed", "compensated", "compensation_failed")
# The audit-trail event recording that a charge which arrived after the saga failed was refunded.
LATE_CHARGE_REFUNDED = "late_charge_refunded"
logger = logging.getLogger(__name__)


class SagaReplies:
    """Delivers charge replies to bridged payment sagas; refunds charges that came too late.

    ``gateway`` refunds late charges (default: this process's, from its settings, on first use).
    """

    def __init__(self, gateway: GatewayClient | None = None) -> None:
        self._gateway = gateway
        self._engines: dict[int, SagaRunner] = {}

    @property
    def gateway(self) -> GatewayClient:
        if self._gateway is None:
            self._gateway = default_deps().gateway
        return self._gateway

    def engine_for(self, bind: Engine) -> SagaRunner:
        """The saga runner over ``bind`` (its store keeps a writer connection: built once)."""
        key = id(bind)
        if key not in self._engines:
            store = SagaStore(bind)
            self._engines[key] = SagaRunner(bridged_payment_machine(), store, actor=NAME)
        return self._engines[key]

    def on_completed(self, ctx: HandlerContext, event: ChargeCompleted) -> None:
        data = event.model_dump(mode="json", exclude={"order_id", "requested_by"})
        instance = self._deliver(ctx, event.requested_by, CHARGE_COMPLETED, {"charge": data})
        if instance is not None and instance.status in GAVE_UP:
            self._refund_late_charge(ctx, instance, event)

    def on_failed(self, ctx: HandlerContext, event: ChargeFailed) -> None:
        failure = {"code": event.code, "reason": event.reason}
        self._deliver(ctx, event.requested_by, CHARGE_FAILED, {"charge_failure": failure})

    def _deliver(
        self, ctx: HandlerContext, requested_by: str, saga_event: str, data: dict[str, Any]
    ) -> Instance | None:
        """Send ``saga_event`` to the instance awaiting it; the instance when it awaits no reply."""
        if requested_by != "charge_requested":
            return None  # the choreography's charge events are not replies
        envelope, log = ctx.envelope, _log(ctx)
        engine = self.engine_for(ctx.session.get_bind())
        try:
            instance = engine.store.load(envelope.correlationid)
        except KeyError:
            logger.info("reply for no saga instance (another orchestrator's): ignored", extra=log)
            return None
        if instance.machine != PAYMENT_MACHINE_BRIDGED.name:
            logger.info("reply for a %s instance: ignored", instance.machine, extra=log)
            return None
        if instance.state == CHARGE_STEP.state and not instance.final:
            raise NotYet(f"{instance.id} has not saved its move to {CHARGE_STEP.wait_state} yet")
        awaiting = instance.state == CHARGE_STEP.wait_state and instance.status == WAITING
        if not awaiting or instance.data.get(CHARGE_STEP.sent_key) != envelope.causationid:
            level = logging.WARNING if saga_event == CHARGE_COMPLETED else logging.INFO
            logger.log(
                level,
                "reply %s for saga %s no longer awaited (%s, %s)",
                saga_event,
                instance.id,
                instance.state,
                instance.status,
                extra=log,
            )
            return instance
        try:
            engine.send(instance.id, saga_event, data)
        except ConcurrentTransition as exc:  # e.g. its timeout fired meanwhile: look again
            raise NotYet(f"{instance.id} moved while the reply was delivered") from exc
        except InvalidAction as exc:
            logger.info("reply %s ignored: %s", saga_event, exc, extra=log)
            return None
        logger.info("saga %s got %s", instance.id, saga_event, extra=log)
        return None

    def _refund_late_charge(
        self, ctx: HandlerContext, instance: Instance, event: ChargeCompleted
    ) -> None:
        """Refund the order's charge once: the saga ``instance`` gave up before it arrived."""
        session, order_id, log = ctx.session, event.order_id, _log(ctx)
        if instance.data.get("order_id") != order_id:
            logger.warning(
                "reply for order %s names saga %s: ignored", order_id, instance.id, extra=log
            )
            return
        # Under the order's row lock (after the charge's commit, one reply at a time). The saga's
        # own compensation refunds with the same key and request, so whichever of the two runs
        # first refunds and the other finds the charge refunded (nothing made).
        settled = money.settle_failed_order(
            session, self.gateway, order_id, recorded="refund", find_unrecorded=False
        )
        if settled.charge is None:
            logger.info("order %s has no recorded charge: nothing to refund", order_id, extra=log)
            return
        if not settled.made:
            logger.info("late charge of order %s already refunded", order_id, extra=log)
            return
        refund = settled.made[0]
        reason = f"charged after saga {instance.id} gave up ({instance.status})"
        self.engine_for(session.get_bind()).store.note(
            session, instance, LATE_CHARGE_REFUNDED, NAME
        )
        ctx.emit(
            RefundIssued(
                order_id=order_id,
                gateway_refund_id=refund.gateway_refund_id,
                amount=refund.amount,
                reason=reason,
            )
        )
        logger.warning("late charge of order %s refunded: %s", order_id, reason, extra=log)


def saga_replies_service(gateway: GatewayClient | None = None) -> ServiceSpec:
    """The spec of the saga-replies service (queue ``segue.saga-replies``)."""
    replies = SagaReplies(gateway)
    return ServiceSpec(
        name=NAME,
        handlers={
            ChargeCompleted.event_type: replies.on_completed,
            ChargeFailed.event_type: replies.on_failed,
        },
        registry=PAYMENT_EVENTS,
    )


def _log(ctx: HandlerContext) -> dict[str, str]:
    return ctx.envelope.log_context()


def main() -> None:
    from include.services import run_with_gateway  # declares every consumer's queue

    run_with_gateway(saga_replies_service)


if __name__ == "__main__":
    main()
