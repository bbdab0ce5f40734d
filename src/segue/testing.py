"""A test kit: run a choreography's handlers against a real database, without a broker.

``InMemoryBus`` plays the part FastStream's ``TestBroker`` plays: it takes the services'
``ServiceSpec``s and a SQLAlchemy engine and calls their handlers directly, one transaction per
delivery, so a test states "this event, into that service" and asserts on the events emitted
and the rows written. What it leaves out is listed on the class; test those with the runtime.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from sqlalchemy import Engine

from segue.bus.handlers import HandlerContext, ServiceSpec
from segue.bus.inbox import claim, content_hash
from segue.events.amqp import from_amqp, to_amqp
from segue.events.envelope import Envelope
from segue.store.engine import session_scope

MAX_DELIVERIES = 10_000  # a choreography whose events cause each other forever stops here


class NotSubscribed(LookupError):
    """The service named does not consume the event's type (the broker would not route it)."""


class InMemoryBus:
    """Delivers events to services' handlers in-process and records what they emit.

    Each delivery opens one transaction on ``engine``, runs the service's handler for the
    event's type with a ``HandlerContext`` over that session, and commits; if the handler
    raises, the transaction is rolled back and the exception propagates to the test. By default
    each event goes through the AMQP encoding and is decoded with the receiving service's
    registry first, as the runtime's consumer does, so an event the service cannot decode fails
    here with ``InvalidEvent`` instead of passing unnoticed.

    What it does not do (the runtime, ``segue.bus.consumer``, does): no inbox check, so
    delivering an event twice runs its handler twice (handlers' own idempotency is what gets
    tested; ``inbox=True`` only records each delivery in ``inbox`` as the runtime would); no
    outbox or relay, emitted events are returned, not published; no parking of undecodable
    messages or exhausted retries and no delayed redelivery, ``NotYet`` and handler errors are
    raised to the caller, who redelivers by calling again; no batches or savepoints; a
    recorder's ``catch_all_batch`` is not used (its per-event ``catch_all`` is); no broker, so
    no reordering, duplicates or concurrency unless the test makes them.
    """

    def __init__(
        self,
        engine: Engine,
        services: Iterable[ServiceSpec],
        *,
        wire: bool = True,
        inbox: bool = False,
    ) -> None:
        """A bus over ``services``, which get each event in the order given unless told.

        :param engine: the database the handlers' transactions run on (its tables created).
        :param services: the specs of the services under test; their names must be unique.
        :param wire: encode and decode each event as the AMQP binding does before handling it.
        :param inbox: also record each delivery in the bus's ``inbox`` table (consumer, event
            id, content hash) in the delivery's transaction, as the runtime does, so what reads
            the inbox (an order's timeline: who handled each event) can be tested; the table
            must exist. Duplicates are still handled.
        """
        self.engine = engine
        self.services: dict[str, ServiceSpec] = {}
        for spec in services:
            if spec.name in self.services:
                raise ValueError(f"two services are named {spec.name!r}")
            self.services[spec.name] = spec
        self.wire = wire
        self.inbox = inbox
        self.emitted: list[Envelope] = []  # every event emitted through this bus, in order

    def deliver(self, service: str, envelope: Envelope) -> list[Envelope]:
        """Handle ``envelope`` in ``service`` in one transaction; the events it emitted.

        :param service: the name of the service (``ServiceSpec.name``) that gets the event.
        :param envelope: the event; NotSubscribed if the service has no handler for its type.
        """
        spec = self._spec(service)
        handler = spec.handler_for(envelope.type)
        if handler is None:
            consumed = ", ".join(spec.routing_keys) or "nothing"
            raise NotSubscribed(
                f"service {service!r} does not consume {envelope.type!r} (it consumes {consumed})"
            )
        if self.wire:
            envelope = self._through_the_wire(spec, envelope)
        with session_scope(self.engine) as session:
            if self.inbox:
                claim(session, spec.name, envelope.id, content_hash(envelope))
            context = HandlerContext(spec.name, envelope, session)
            handler(context, envelope.data)
        self.emitted.extend(context.emitted)
        return list(context.emitted)

    def subscribers(self, event_type: str) -> list[str]:
        """The services that consume ``event_type`` (catch-all ones included), in bus order.

        :param event_type: a CloudEvents ``type`` (the routing key).
        """
        return [
            name for name, spec in self.services.items() if spec.handler_for(event_type) is not None
        ]

    def run(
        self,
        *envelopes: Envelope,
        order: Iterable[str] | None = None,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> list[Envelope]:
        """Deliver ``envelopes`` and every event they cause, breadth first; all events emitted.

        Each event goes to every subscribed service before the next event is taken; a handler
        error stops the run and propagates (the events emitted so far are in ``emitted``).

        :param envelopes: the events to start from.
        :param order: service names in the order they get each event; services not named
            follow in bus order (default: bus order).
        :param max_deliveries: a bound on deliveries, so a cycle of events fails the test
            instead of hanging it.
        """
        ranking = self._ranking(order)
        queue = deque(envelopes)
        emitted: list[Envelope] = []
        deliveries = 0
        while queue:
            envelope = queue.popleft()
            for service in sorted(self.subscribers(envelope.type), key=ranking.index):
                deliveries += 1
                if deliveries > max_deliveries:
                    raise RuntimeError(f"more than {max_deliveries} deliveries: a cycle of events?")
                new = self.deliver(service, envelope)
                emitted.extend(new)
                queue.extend(new)
        return emitted

    def _spec(self, service: str) -> ServiceSpec:
        try:
            return self.services[service]
        except KeyError:
            known = ", ".join(self.services) or "none"
            message = f"no service named {service!r} on this bus (known: {known})"
            raise LookupError(message) from None

    def _ranking(self, order: Iterable[str] | None) -> list[str]:
        first = list(order or ())
        for name in first:
            self._spec(name)
        return first + [name for name in self.services if name not in first]

    @staticmethod
    def _through_the_wire(spec: ServiceSpec, envelope: Envelope) -> Envelope:
        """``envelope`` as the service's consumer would decode it off the broker."""
        message = to_amqp(envelope)
        content_type = str(message.properties["content_type"])
        return from_amqp(message.body, message.headers, content_type, spec.registry)
