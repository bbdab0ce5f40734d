"""The saga-replies service: hands the charge service's replies to the sagas awaiting them.

A ChargeCompleted / ChargeFailed answering a ChargeRequested (``requested_by =
"charge_requested"``) whose correlation id is a ``payment_saga_bridged`` instance becomes the
event ``charge_completed`` / ``charge_failed`` of that instance (``SagaEngine.send``). Driving
the instance on is left to whoever runs it (RunSagaOperator, woken by its trigger).

Idempotent: the inbox drops a redelivered reply; a reply for an instance that no longer waits
for it (already moved on, timed out, or not the command of its current visit) is logged and
ignored. A reply that overtook the saga's own save (the instance still in CHARGING, the command
sent but the transition to AWAITING_CHARGE not yet committed) is retried later (``NotYet``).

This process also relays the saga commands: the sagas write them to the outbox under its name.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from include.payments.events import PAYMENT_EVENTS, ChargeCompleted, ChargeFailed
from include.payments.saga_bridged import (
    CHARGE_COMPLETED,
    CHARGE_FAILED,
    CHARGE_STEP,
    COMMAND_SOURCE,
    PAYMENT_MACHINE_BRIDGED,
    bridged_payment_machine,
)
from segue.bus.handlers import HandlerContext, NotYet, ServiceSpec
from segue.statemachine.engine import InvalidAction, SagaEngine
from segue.statemachine.records import WAITING, ConcurrentTransition
from segue.statemachine.store import SagaStore

NAME = COMMAND_SOURCE
logger = logging.getLogger(__name__)


class SagaReplies:
    """Delivers charge replies to bridged payment sagas; one saga engine per database."""

    def __init__(self) -> None:
        self._engines: dict[int, SagaEngine] = {}

    def engine_for(self, bind: Engine) -> SagaEngine:
        """The saga engine over ``bind`` (its store keeps a writer connection: built once)."""
        key = id(bind)
        if key not in self._engines:
            store = SagaStore(bind)
            self._engines[key] = SagaEngine(bridged_payment_machine(), store, actor=NAME)
        return self._engines[key]

    def on_completed(self, ctx: HandlerContext, event: ChargeCompleted) -> None:
        data = event.model_dump(mode="json", exclude={"order_id", "requested_by"})
        self._deliver(ctx, event.requested_by, CHARGE_COMPLETED, {"charge": data})

    def on_failed(self, ctx: HandlerContext, event: ChargeFailed) -> None:
        failure = {"code": event.code, "reason": event.reason}
        self._deliver(ctx, event.requested_by, CHARGE_FAILED, {"charge_failure": failure})

    def _deliver(
        self, ctx: HandlerContext, requested_by: str, saga_event: str, data: dict[str, Any]
    ) -> None:
        if requested_by != "charge_requested":
            return  # the choreography's charge events are not replies
        envelope, log = ctx.envelope, _log(ctx)
        engine = self.engine_for(ctx.session.get_bind())
        try:
            instance = engine.store.load(envelope.correlationid)
        except KeyError:
            logger.info("reply for no saga instance (another orchestrator's): ignored", extra=log)
            return
        if instance.machine != PAYMENT_MACHINE_BRIDGED.name:
            logger.info("reply for a %s instance: ignored", instance.machine, extra=log)
            return
        if instance.state == CHARGE_STEP.state and not instance.final:
            raise NotYet(f"{instance.id} has not saved its move to {CHARGE_STEP.wait_state} yet")
        awaiting = instance.state == CHARGE_STEP.wait_state and instance.status == WAITING
        if not awaiting or instance.data.get(CHARGE_STEP.sent_key) != envelope.causationid:
            level = logging.WARNING if saga_event == CHARGE_COMPLETED else logging.INFO
            logger.log(
                level,
                "reply %s for saga %s no longer awaited (%s, %s): ignored",
                saga_event,
                instance.id,
                instance.state,
                instance.status,
                extra=log,
            )
            return
        try:
            engine.send(instance.id, saga_event, data)
        except ConcurrentTransition as exc:  # e.g. its timeout fired meanwhile: look again
            raise NotYet(f"{instance.id} moved while the reply was delivered") from exc
        except InvalidAction as exc:
            logger.info("reply %s ignored: %s", saga_event, exc, extra=log)
            return
        logger.info("saga %s got %s", instance.id, saga_event, extra=log)


def saga_replies_service() -> ServiceSpec:
    """The spec of the saga-replies service (queue ``segue.saga-replies``)."""
    replies = SagaReplies()
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
    from include.services import run as run_service  # declares every consumer's queue

    run_service(saga_replies_service())


if __name__ == "__main__":
    main()
