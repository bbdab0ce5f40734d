"""Fixtures for the bus runtime: a toy service run in-process against real RabbitMQ and PG."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kombu import Connection, Queue
from sqlalchemy import Engine

from segue.bus.connection import connect
from segue.bus.handlers import ServiceSpec
from segue.bus.runtime import ServiceRuntime
from segue.bus.topology import EVENTS, declare_exchanges
from tests.polling import wait_for


@pytest.fixture
def broker(fresh_amqp_url: str) -> Iterator[Connection]:
    connection = connect(fresh_amqp_url)
    declare_exchanges(connection)
    yield connection
    connection.close()


def probe_queue(connection: Connection, name: str, routing_key: str) -> Queue:
    """A plain queue that collects events of one type, to look at what a service emitted."""
    queue = Queue(name, exchange=EVENTS, routing_key=routing_key, durable=True)
    queue(connection.default_channel).declare()
    return queue


def take_all(connection: Connection, queue: str) -> list:
    messages = []
    channel = connection.default_channel
    while (message := channel.basic_get(queue, no_ack=True)) is not None:
        messages.append(message)
    return messages


@pytest.fixture
def run_service(fresh_amqp_url: str, clean_db: Engine) -> Iterator[Callable[..., ServiceRuntime]]:
    started: list[ServiceRuntime] = []

    def start(spec: ServiceSpec, **options: object) -> ServiceRuntime:
        runtime = ServiceRuntime(spec, engine=clean_db, amqp_url=fresh_amqp_url, **options)
        runtime.start()
        wait_for(runtime.ready, what=f"{spec.name} ready")
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()
