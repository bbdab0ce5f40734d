"""The payment saga with the charge done by the charge service: a command and its awaited reply.

Identical to ``payment_saga`` except CHARGING: instead of calling the gateway in-process it
sends the command ChargeRequested (correlation id = the saga instance id, subject = the order)
and the instance waits in AWAITING_CHARGE for ``charge_completed`` / ``charge_failed``, which
the saga-replies service (``include.services.saga_replies``) delivers with ``engine.send``, or
for its timeout (→ FAILED, compensating).

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

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from include.payments import pipeline
from include.payments.events import ChargeRequested
from include.payments.pipeline import PaymentDeps
from include.payments.saga import GATEWAY_RETRY, PAYMENT_MACHINE, payment_machine
from segue.bus.outbox import add_to_outbox
from segue.events.envelope import Envelope
from segue.events.payload import EventPayload
from segue.statemachine.definition import (
    RetryPolicy,
    State,
    StateMachineDefinition,
    Transition,
)
from segue.statemachine.machine import Action, ActionContext, Machine
from segue.statemachine.registry import register
from segue.store.engine import session_scope

NAME = "payment_saga_bridged"
# The outbox source of saga commands: the saga-replies process relays these rows.
COMMAND_SOURCE = "saga-replies"
CHARGE_COMPLETED = "charge_completed"
CHARGE_FAILED = "charge_failed"
CHARGE_REPLY_TIMEOUT_SECONDS = 600.0


def command_event_id(instance_id: str, state: str, visit: int) -> str:
    """The id of the command sent on ``visit`` of ``state``: the same on every retry."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"segue-saga/{instance_id}/{state}/{visit}"))


@dataclass(frozen=True)
class CommandStep:
    """A saga step done by a service: ``state`` sends a command, ``wait_state`` awaits its reply.

    ``on_reply`` maps each reply event to the state it leads to; no reply within
    ``timeout_seconds`` fires ``timeout`` (→ the fail state). ``compensation`` undoes what the
    service did, once the command was sent (it must cope with the command never having run).
    """

    state: str
    wait_state: str
    action: str
    on_reply: Mapping[str, str]
    compensation: str | None = None
    retry: RetryPolicy | None = None
    timeout_seconds: float = CHARGE_REPLY_TIMEOUT_SECONDS
    fail_state: str = "FAILED"
    description: str = ""
    sent_key: str = "command_id"  # the data key that records the command's event id

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(self.on_reply)

    def states(self) -> tuple[State, State]:
        """The task state that sends the command and the wait state that awaits its reply."""
        send = State(
            name=self.state,
            kind="task",
            action=self.action,
            compensation=self.compensation,
            retry=self.retry,
            transitions=(
                Transition(event="done", target=self.wait_state),
                Transition(event="failed", target=self.fail_state),
            ),
            description=self.description or f"Send the command of {self.state}.",
        )
        replies = tuple(Transition(event=e, target=t) for e, t in self.on_reply.items())
        wait = State(
            name=self.wait_state,
            kind="wait",
            timeout_seconds=self.timeout_seconds,
            transitions=(
                *replies,
                Transition(event="timeout", target=self.fail_state),
            ),
            description=f"Await the reply to {self.state}'s command: {', '.join(self.events)}.",
        )
        return send, wait


def command_action(
    step: CommandStep,
    engine: Callable[[], Engine],
    build: Callable[[ActionContext], EventPayload],
    *,
    subject_field: str = "order_id",
) -> Action:
    """The action of ``step``: queue the command ``build`` makes in the outbox, idempotently.

    Returns ``{step.sent_key: event id}`` so the reply consumer can check a reply answers the
    command of the instance's current visit (the reply's causation id).
    """

    def send(ctx: ActionContext) -> dict[str, Any]:
        envelope = Envelope.create(
            build(ctx),
            source=COMMAND_SOURCE,
            subject=str(ctx.data[subject_field]),
            correlation_id=ctx.instance_id,
            event_id=command_event_id(ctx.instance_id, ctx.state, ctx.visit),
        )
        with session_scope(engine()) as session:
            add_to_outbox(session, envelope)  # False (a no-op) when already queued
        return {step.sent_key: envelope.id}

    send.__name__ = step.action
    return send


CHARGE_STEP = CommandStep(
    state="CHARGING",
    wait_state="AWAITING_CHARGE",
    action="request_charge",
    on_reply={CHARGE_COMPLETED: "FULFILMENT", CHARGE_FAILED: "FAILED"},
    compensation="refund",
    retry=GATEWAY_RETRY,
    sent_key="charge_command_id",
    description="Send ChargeRequested to the charge service (idempotency key per order).",
)


def _bridged_states() -> tuple[State, ...]:
    states: list[State] = []
    for state in PAYMENT_MACHINE.states:
        states.extend(CHARGE_STEP.states() if state.name == CHARGE_STEP.state else (state,))
    return tuple(states)


PAYMENT_MACHINE_BRIDGED = StateMachineDefinition(
    name=NAME,
    version=PAYMENT_MACHINE.version,
    initial=PAYMENT_MACHINE.initial,
    events=(*PAYMENT_MACHINE.events, *CHARGE_STEP.events),
    states=_bridged_states(),
    description="The payment saga with the charge sent as a command to the charge service.",
)


def bridged_payment_machine(deps: PaymentDeps | None = None) -> Machine:
    """The bridged machine: payment_saga's actions, with CHARGING's sending the command."""

    def engine() -> Engine:
        return (deps or pipeline.default_deps()).engine

    actions = dict(payment_machine(deps).actions)
    del actions["charge"]
    actions[CHARGE_STEP.action] = command_action(
        CHARGE_STEP, engine, lambda ctx: ChargeRequested(order_id=ctx.data["order_id"])
    )
    return Machine(PAYMENT_MACHINE_BRIDGED, actions)


register(NAME, bridged_payment_machine)
