"""The broker ceiling for benchmarks/event_path.py: confirmed publishes per second from N parallel
processes, each with its own Kombu connection, publishing the way a relay does (segue's
``Publisher``: confirm_publish, persistent, mandatory) a real OrderPlaced message into a durable
quorum queue declared exactly like a service queue (``service_queues`` / ``declare_service``).
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Barrier
from typing import Any

from include.payments.events import OrderPlaced
from include.payments.models import Order
from segue.bus.connection import connect
from segue.bus.publisher import Publisher
from segue.bus.topology import EVENTS, declare_service, service_queues
from segue.events.amqp import to_amqp
from segue.events.envelope import Envelope


def _publish_for(amqp_url: str, index: int, seconds: float, start: Barrier, out: Any) -> None:
    from event_path_load import EXAMPLE_CARD, order_data  # the child imports it from benchmarks/

    routing_key = f"bench.ceiling.{index}"
    order = Order.model_validate({**order_data(f"ceiling-{index}"), **EXAMPLE_CARD})
    message = to_amqp(
        Envelope.create(OrderPlaced(order=order), source="bench", subject=order.order_id)
    )
    with connect(amqp_url) as connection:
        declare_service(connection, service_queues(f"ceiling-{index}", [routing_key]))
        publisher = Publisher(connection)
        start.wait()
        published, began = 0, time.monotonic()
        while time.monotonic() - began < seconds:
            publisher.publish_raw(
                message.body,
                exchange=EVENTS,
                routing_key=routing_key,
                headers=message.headers,
                properties=message.properties,
            )
            published += 1
        elapsed = time.monotonic() - began
        queue = connection.default_channel
        queue.queue_delete(f"segue.ceiling-{index}")
        for suffix in (".retry", ".parked"):
            queue.queue_delete(f"segue.ceiling-{index}{suffix}")
    out.put((index, published, elapsed, len(message.body)))


def publish_ceiling(amqp_url: str, publishers: int, seconds: float) -> dict[str, Any]:
    """Confirmed publishes per second summed over ``publishers`` processes."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(publishers)
    out = context.Queue()
    processes = [
        context.Process(target=_publish_for, args=(amqp_url, i, seconds, barrier, out))
        for i in range(publishers)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join(30)
    rates = [published / elapsed for _, published, elapsed, _ in results]
    return {
        "publishers": publishers,
        "seconds": seconds,
        "message_bytes": results[0][3],
        "published": sum(published for _, published, _, _ in results),
        "per_publisher_per_second": [round(rate) for rate in sorted(rates)],
        "confirmed_publishes_per_second": round(sum(rates)),
    }
