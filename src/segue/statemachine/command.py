"""A saga step done by another service: send a command event, wait for its reply event.

Eventuate-style command/reply: the step's task state writes the command to the transactional
outbox and the instance then waits in a ``wait`` state for one of the typed replies, each
mapped to the state it leads to, or for its timeout. Whoever consumes the replies delivers them
with ``SagaRunner.send``; it can check that a reply answers the command of the instance's current
visit by comparing the reply's causation id with ``data[step.sent_key]``.

The command's event id is derived from instance, state and visit, so a retried action (or one
redone after a crash before the transition was saved) queues the same id again and the
receiving service's inbox absorbs it.

What a workflow supplies (event types, timeout, mapping, the outbox source that relays the
commands) are parameters: this module knows nothing of any workflow.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from segue.bus.outbox import add_to_outbox
from segue.events.envelope import Envelope
from segue.events.payload import EventPayload
from segue.statemachine.definition import RetryPolicy, State, Transition
from segue.statemachine.machine import Action, ActionContext
from segue.store.engine import session_scope


def command_event_id(instance_id: str, state: str, visit: int) -> str:
    """The id of the command sent on ``visit`` of ``state``: the same on every retry."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"segue-saga/{instance_id}/{state}/{visit}"))


@dataclass(frozen=True)
class CommandStep:
    """A step whose task state ``state`` sends a command and whose ``wait_state`` awaits the reply.

    Parameters:
        state: the task state that sends the command (runs ``action``).
        wait_state: the wait state entered once the command is queued.
        action: the name of the sending action (see :func:`command_action`).
        on_reply: each reply event (a saga event name) and the state it leads to.
        timeout_seconds: how long ``wait_state`` waits; then ``timeout`` goes to ``fail_state``.
        compensation: undoes what the service did, once the command was sent (it must cope with
            the command never having run, or running later).
        retry: the retry policy of sending the command.
        fail_state: where a failed send or the timeout leads.
        description: the task state's description.
        sent_key: the data key that records the command's event id.
    """

    state: str
    wait_state: str
    action: str
    on_reply: Mapping[str, str]
    timeout_seconds: float
    compensation: str | None = None
    retry: RetryPolicy | None = None
    fail_state: str = "FAILED"
    description: str = ""
    sent_key: str = "command_id"

    @property
    def events(self) -> tuple[str, ...]:
        """The reply events, for the machine's ``events``."""
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
            transitions=(*replies, Transition(event="timeout", target=self.fail_state)),
            description=f"Await the reply to {self.state}'s command: {', '.join(self.events)}.",
        )
        return send, wait

    def replace_in(self, states: tuple[State, ...]) -> tuple[State, ...]:
        """``states`` with the state named ``self.state`` replaced by this step's two states
        (to derive a machine that delegates one of its steps from one that runs it itself)."""
        replaced: list[State] = []
        for state in states:
            replaced.extend(self.states() if state.name == self.state else (state,))
        return tuple(replaced)


def command_action(
    step: CommandStep,
    engine: Callable[[], Engine],
    build: Callable[[ActionContext], EventPayload],
    *,
    source: str,
    subject_field: str,
) -> Action:
    """The action of ``step``: queue the command ``build`` makes in the outbox, idempotently.

    Parameters:
        step: the step whose action this is (its name becomes the function's name).
        engine: the database holding the outbox (called on each run: built lazily).
        build: the command's payload from the action's context.
        source: the envelope's source: the outbox rows of the process that relays them.
        subject_field: the data key whose value is the command's subject (e.g. the order id).

    The command is written in its own transaction just before the saga saves the transition; its
    correlation id is the instance id. Returns ``{step.sent_key: event id}``.
    """

    def send(ctx: ActionContext) -> dict[str, Any]:
        envelope = Envelope.create(
            build(ctx),
            source=source,
            subject=str(ctx.data[subject_field]),
            correlation_id=ctx.instance_id,
            event_id=command_event_id(ctx.instance_id, ctx.state, ctx.visit),
        )
        with session_scope(engine()) as session:
            add_to_outbox(session, envelope)  # False (a no-op) when already queued
        return {step.sent_key: envelope.id}

    send.__name__ = step.action
    return send
