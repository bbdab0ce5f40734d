"""The test kit's bus over a toy two-service workflow of the test's own (no payment imports).

``greeter`` consumes ``toy.Started``, writes a row and emits ``toy.Greeted``; ``audit``
consumes ``toy.Greeted`` and emits ``toy.Logged``. The row goes to a table of this test's own,
created with SQLAlchemy Core on the session's PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select

from segue.bus.handlers import HandlerContext, ServiceSpec
from segue.events.envelope import Envelope
from segue.events.errors import InvalidEvent
from segue.events.payload import EventPayload
from segue.events.registry import EventRegistry
from segue.testing import InMemoryBus, NotSubscribed

toy_metadata = MetaData()
greetings = Table(
    "toy_greetings",
    toy_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False),
)


class Started(EventPayload):
    event_type = "toy.Started"
    name: str


class Greeted(EventPayload):
    event_type = "toy.Greeted"
    name: str


class Logged(EventPayload):
    event_type = "toy.Logged"
    text: str


def greet(ctx: HandlerContext, event: Started) -> None:
    ctx.session.execute(insert(greetings).values(name=event.name))
    ctx.emit(Greeted(name=event.name))
    if event.name == "boom":
        raise ValueError("boom is not a name")


def log_greeting(ctx: HandlerContext, event: Greeted) -> None:
    ctx.emit(Logged(text=f"greeted {event.name}"))


def echo(ctx: HandlerContext, event: Greeted) -> None:
    ctx.emit(Greeted(name=event.name))


GREETER = ServiceSpec("greeter", {Started.event_type: greet}, EventRegistry([Started]))
AUDIT = ServiceSpec("audit", {Greeted.event_type: log_greeting}, EventRegistry([Greeted]))


@pytest.fixture
def toy_db(engine: Engine) -> Iterator[Engine]:
    toy_metadata.create_all(engine)
    yield engine
    toy_metadata.drop_all(engine)


@pytest.fixture
def bus(toy_db: Engine) -> InMemoryBus:
    return InMemoryBus(toy_db, [GREETER, AUDIT])


def started(name: str) -> Envelope:
    return Envelope.create(Started(name=name), source="test", subject=name)


def rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(greetings.c.name).order_by(greetings.c.id)))


def test_deliver_runs_the_handler_in_a_committed_transaction(bus, toy_db):
    cause = started("ada")
    [greeted] = bus.deliver("greeter", cause)
    assert greeted.data == Greeted(name="ada")
    assert (greeted.source, greeted.subject, greeted.causationid) == ("greeter", "ada", cause.id)
    assert greeted.correlationid == cause.correlationid
    assert rows(toy_db) == ["ada"]
    assert bus.emitted == [greeted]


def test_run_follows_emitted_events_breadth_first(bus, toy_db):
    events = bus.run(started("ada"), started("bob"))
    assert [(e.type, e.subject) for e in events] == [
        ("toy.Greeted", "ada"),
        ("toy.Greeted", "bob"),
        ("toy.Logged", "ada"),
        ("toy.Logged", "bob"),
    ]
    assert events[2].causationid == events[0].id
    assert events[2].data == Logged(text="greeted ada")
    assert rows(toy_db) == ["ada", "bob"]
    assert bus.emitted == events


def test_run_gives_an_event_to_subscribers_in_the_order_asked(toy_db):
    second_greeter = ServiceSpec("greeter-2", GREETER.handlers, GREETER.registry)
    bus = InMemoryBus(toy_db, [GREETER, second_greeter, AUDIT])
    assert bus.subscribers(Started.event_type) == ["greeter", "greeter-2"]
    events = bus.run(started("ada"), order=["greeter-2"])
    assert [(e.type, e.source) for e in events] == [
        ("toy.Greeted", "greeter-2"),
        ("toy.Greeted", "greeter"),
        ("toy.Logged", "audit"),
        ("toy.Logged", "audit"),
    ]


def test_a_handler_error_rolls_back_its_transaction_and_is_raised(bus, toy_db):
    with pytest.raises(ValueError, match="boom is not a name"):
        bus.run(started("ada"), started("boom"))
    assert rows(toy_db) == ["ada"]  # boom's row was rolled back, ada's delivery committed
    assert [e.subject for e in bus.emitted] == ["ada"]  # boom's Greeted was never emitted


def test_a_service_that_does_not_consume_the_type_is_refused(bus, toy_db):
    with pytest.raises(NotSubscribed, match=r"'audit' does not consume 'toy.Started'.*toy.Greeted"):
        bus.deliver("audit", started("ada"))
    with pytest.raises(LookupError, match=r"no service named 'shipping'.*greeter, audit"):
        bus.deliver("shipping", started("ada"))
    with pytest.raises(LookupError, match="no service named 'shipping'"):
        bus.run(started("ada"), order=["shipping"])
    assert rows(toy_db) == []


def test_events_are_decoded_with_the_receivers_registry(toy_db):
    deaf = ServiceSpec("audit", AUDIT.handlers, EventRegistry([Started]))  # lacks Greeted
    greeted = Envelope.create(Greeted(name="ada"), source="test", subject="ada")
    with pytest.raises(InvalidEvent, match=r"unknown event type 'toy\.Greeted'"):
        InMemoryBus(toy_db, [deaf]).deliver("audit", greeted)
    [logged] = InMemoryBus(toy_db, [deaf], wire=False).deliver("audit", greeted)
    assert logged.data == Logged(text="greeted ada")


def test_no_inbox_so_a_redelivery_runs_the_handler_again(bus, toy_db):
    cause = started("ada")
    first = bus.deliver("greeter", cause)
    second = bus.deliver("greeter", cause)
    assert [e.id for e in first] == [e.id for e in second]  # emitted ids derive from the cause
    assert rows(toy_db) == ["ada", "ada"]


def test_a_cycle_of_events_is_stopped(toy_db):
    echoing = ServiceSpec("echo", {Greeted.event_type: echo}, EventRegistry([Greeted]))
    bus = InMemoryBus(toy_db, [GREETER, echoing])
    with pytest.raises(RuntimeError, match="more than 5 deliveries"):
        bus.run(started("ada"), max_deliveries=5)


def test_service_names_must_be_unique(toy_db):
    with pytest.raises(ValueError, match="two services are named 'greeter'"):
        InMemoryBus(toy_db, [GREETER, GREETER])


def test_inbox_true_records_each_delivery_as_the_runtime_would(toy_db: Engine) -> None:
    from segue.bus.tables import InboxRow

    first, unrecorded = started("ada"), started("bob")
    [greeted] = InMemoryBus(toy_db, [GREETER, AUDIT], inbox=True).deliver("greeter", first)
    InMemoryBus(toy_db, [GREETER, AUDIT], inbox=True).deliver("audit", greeted)
    InMemoryBus(toy_db, [GREETER, AUDIT]).deliver("greeter", unrecorded)  # off by default
    ids = [first.id, greeted.id, unrecorded.id]
    query = select(InboxRow.consumer, InboxRow.event_id).where(InboxRow.event_id.in_(ids))
    with toy_db.connect() as connection:
        claimed = set(connection.execute(query).all())
    assert claimed == {("greeter", first.id), ("audit", greeted.id)}
