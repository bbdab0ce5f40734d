"""The event path overview, read from a real RabbitMQ vhost and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kombu import Connection, Consumer, Producer
from sqlalchemy import Engine, insert

from segue.bus.overview import read_overview
from segue.bus.tables import OutboxRow
from segue.bus.topology import declare_exchanges, declare_service, service_queues
from segue.store.engine import session_scope


def declare_and_fill(amqp_url: str) -> None:
    """``alpha``: 3 ready, 1 parked, one consumer attached; ``beta``: declared, empty."""
    with Connection(amqp_url) as connection:
        declare_exchanges(connection)
        for name in ("alpha", "beta"):
            declare_service(connection, service_queues(name, [f"{name}.happened"]))
        producer = Producer(connection.channel())
        for queue, count in (("segue.alpha", 3), ("segue.alpha.parked", 1)):
            for n in range(count):
                producer.publish({"n": n}, exchange="", routing_key=queue, serializer="json")


def outbox_rows(engine: Engine, source: str, count: int, age: timedelta) -> None:
    created = datetime.now(UTC) - age
    with session_scope(engine) as session:
        for n in range(count):
            session.execute(
                insert(OutboxRow).values(
                    event_id=f"{source}-{n}",
                    source=source,
                    routing_key="x.happened",
                    subject=f"ord-{n}",
                    headers={},
                    properties={},
                    body=b"{}",
                    created_at=created,
                )
            )


def test_lag_consumers_parked_and_outbox_per_service(fresh_amqp_url: str, clean_db: Engine) -> None:
    declare_and_fill(fresh_amqp_url)
    outbox_rows(clean_db, "alpha", 2, timedelta(seconds=30))
    outbox_rows(clean_db, "intake", 1, timedelta(seconds=5))
    with Connection(fresh_amqp_url) as listener:
        channel = listener.channel()
        channel.basic_qos(0, 1, False)
        queue = service_queues("beta", ["beta.happened"]).main
        with Consumer(channel, queues=[queue], auto_declare=False, on_message=lambda m: None):
            overview = read_overview(
                amqp_url=fresh_amqp_url, engine=clean_db, services=["alpha", "beta"]
            )
    rows = {row.service: row for row in overview.services}
    assert list(rows) == ["alpha", "beta", "intake"]  # named first, then outbox-only sources
    alpha, beta, intake = rows["alpha"], rows["beta"], rows["intake"]
    assert alpha.lag is not None and (alpha.lag.ready, alpha.lag.consumers) == (3, 0)
    assert alpha.parked is not None and alpha.parked.ready == 1
    assert alpha.retrying is not None and alpha.retrying.ready == 0
    assert alpha.outbox_pending == 2 and 29 < (alpha.outbox_oldest_seconds or 0) < 120
    assert alpha.attention  # parked messages, and lag with nobody consuming
    assert beta.lag is not None and (beta.lag.ready, beta.lag.consumers) == (0, 1)
    assert not beta.attention and beta.outbox_pending == 0 and beta.outbox_oldest_seconds is None
    assert intake.lag is None and intake.outbox_pending == 1
    assert overview.missing == ()  # intake is outbox-only: its queues are not asked for


def test_an_undeclared_service_is_named_missing_and_the_rest_is_shown(
    fresh_amqp_url: str, clean_db: Engine
) -> None:
    declare_and_fill(fresh_amqp_url)
    overview = read_overview(amqp_url=fresh_amqp_url, engine=clean_db, services=["ghost", "alpha"])
    assert overview.missing == (
        "queue segue.ghost: not declared",
        "queue segue.ghost.retry: not declared",
        "queue segue.ghost.parked: not declared",
    )
    rows = {row.service: row for row in overview.services}
    assert rows["ghost"].lag is None
    assert rows["alpha"].lag is not None and rows["alpha"].lag.ready == 3  # read after the miss


def test_an_unreachable_broker_still_shows_the_outbox(clean_db: Engine) -> None:
    outbox_rows(clean_db, "alpha", 4, timedelta(seconds=1))
    overview = read_overview(
        amqp_url="amqp://guest:guest@127.0.0.1:1//", engine=clean_db, services=["alpha"], timeout=1
    )
    assert len(overview.missing) == 1 and overview.missing[0].startswith("broker: unreachable")
    (alpha,) = overview.services
    assert alpha.lag is None and alpha.outbox_pending == 4
