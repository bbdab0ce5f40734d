"""The payment saga with the charge done by the charge service: a command and its awaited reply.

Identical to ``payment_saga`` except CHARGING: instead of calling the gateway in-process it
sends the command ChargeRequested (correlation id = the saga instance id, subject = the order)
and the instance waits in AWAITING_CHARGE for ``charge_completed`` / ``charge_failed``, which
the saga-replies service (``include.services.saga_replies``) delivers with ``engine.send``, or
for its timeout (``SEGUE_CHARGE_REPLY_TIMEOUT_SECONDS``, the setting ``payment_hybrid`` waits by
too; → FAILED, compensating). The command/reply step itself is the library's
``segue.statemachine.command.CommandStep``; this module gives it the payment values.

The command is written to the outbox (source ``saga-replies``: that process relays it) in its
own transaction just before the saga saves the transition; its event id is derived from
instance, state and visit, so a retry or a crash before the save re-sends the same id and the
charge service's inbox absorbs it.

A charge that arrives after the saga gave up (the timeout fired, or the compensation ran while
the command was still queued) is refunded by saga-replies when its ChargeCompleted finds the
instance failed: with the compensation's own idempotency key, so it is refunded exactly once
whichever comes first (see ``include.services.saga_replies``).
"""

from __future__ import annotations

from sqlalchemy import Engine

from include.payments.deps import PaymentDeps, default_deps
from include.payments.events import ChargeRequested
from include.payments.retry import GATEWAY_RETRY
from include.payments.saga import PAYMENT_MACHINE, payment_machine
from include.payments.settings import get_payment_settings
from segue.statemachine.command import CommandStep, command_action
from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.machine import Machine
from segue.statemachine.registry import register

__all__ = [
    "CHARGE_COMPLETED",
    "CHARGE_FAILED",
    "CHARGE_STEP",
    "COMMAND_SOURCE",
    "NAME",
    "PAYMENT_MACHINE_BRIDGED",
    "bridged_payment_machine",
]

NAME = "payment_saga_bridged"
# The outbox source of saga commands: the saga-replies process relays these rows.
COMMAND_SOURCE = "saga-replies"
CHARGE_COMPLETED = "charge_completed"
CHARGE_FAILED = "charge_failed"

CHARGE_STEP = CommandStep(
    state="CHARGING",
    wait_state="AWAITING_CHARGE",
    action="request_charge",
    on_reply={CHARGE_COMPLETED: "FULFILMENT", CHARGE_FAILED: "FAILED"},
    # the one reply timeout of the charge service, shared with payment_hybrid's await_charge
    timeout_seconds=get_payment_settings().charge_reply_timeout_seconds,
    compensation="refund",
    retry=GATEWAY_RETRY,
    sent_key="charge_command_id",
    description="Send ChargeRequested to the charge service (idempotency key per order).",
)

PAYMENT_MACHINE_BRIDGED = StateMachineDefinition(
    name=NAME,
    version=PAYMENT_MACHINE.version,
    initial=PAYMENT_MACHINE.initial,
    events=(*PAYMENT_MACHINE.events, *CHARGE_STEP.events),
    states=CHARGE_STEP.replace_in(PAYMENT_MACHINE.states),
    description="The payment saga with the charge sent as a command to the charge service.",
)


def bridged_payment_machine(deps: PaymentDeps | None = None) -> Machine:
    """The bridged machine: payment_saga's actions, with CHARGING's sending the command.

    ``deps`` default to this process's, from its settings, on first use.
    """

    def engine() -> Engine:
        return (deps or default_deps()).engine

    actions = dict(payment_machine(deps).actions)
    del actions["charge"]
    actions[CHARGE_STEP.action] = command_action(
        CHARGE_STEP,
        engine,
        lambda ctx: ChargeRequested(order_id=ctx.data["order_id"]),
        source=COMMAND_SOURCE,
        subject_field="order_id",
    )
    return Machine(PAYMENT_MACHINE_BRIDGED, actions)


register(NAME, bridged_payment_machine, dag_ids=("payment_state_machine_bridged",))
