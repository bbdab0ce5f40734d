"""A service's ``/metrics`` in Prometheus' text exposition format, for the scrapers operators run.

The same snapshot the JSON ``/metrics`` returns (``ServiceRuntime.metrics``) becomes, at each
scrape, ``segue_messages_total{service, outcome}`` (handled, duplicates, conflicting_duplicates,
parked, retried, not_yet, batches_redone, published), the queue gauges ``segue_queue_messages
{service, queue}`` (``backlog``: ready in the service's queue; ``retrying``; ``parked``), the
outbox backlog ``segue_outbox_pending``, ``segue_circuit_opened_total`` and the up/down gauges
``segue_consuming``, ``segue_relay_connected``, ``segue_circuit_open``. Built with
``prometheus-client`` (a custom collector, so nothing is counted twice: the runtime's own counters
stay the single source).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The exposition format's content type (text/plain, version 0.0.4)."""

QUEUES = ("backlog", "retrying", "parked")
FLAGS = {
    "consuming": "1 while the consumer is subscribed to the service's queue.",
    "relay_connected": "1 while the outbox relay is connected to the broker.",
    "circuit_open": "1 while the relay holds back publishing because a queue is over its limit.",
}


class RuntimeCollector(Collector):
    """Reads a runtime's metrics snapshot at each scrape and yields it as Prometheus metrics.

    :param snapshot: returns the JSON ``/metrics`` body (``service``, ``counts``, status keys).
    """

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """The metrics of one snapshot (a key the runtime has not reported yet is left out)."""
        data = self.snapshot()
        service = str(data.get("service", ""))
        messages = CounterMetricFamily(
            "segue_messages",
            "Messages the service handled, absorbed, parked, retried or published, by outcome.",
            labels=["service", "outcome"],
        )
        for outcome, count in sorted(dict(data.get("counts", {})).items()):
            messages.add_metric([service, outcome], float(count))
        yield messages
        queues = GaugeMetricFamily(
            "segue_queue_messages",
            "Messages waiting in the service's queues: backlog (ready), retrying, parked.",
            labels=["service", "queue"],
        )
        for queue in QUEUES:
            if isinstance(data.get(queue), int):
                queues.add_metric([service, queue], float(data[queue]))
        yield queues
        if isinstance(data.get("outbox_pending"), int):
            yield _gauge(
                "segue_outbox_pending",
                "Outbox rows written but not yet published.",
                service,
                data["outbox_pending"],
            )
        if isinstance(data.get("circuit_opened"), int):
            opened = CounterMetricFamily(
                "segue_circuit_opened",
                "Times the relay's backlog breaker opened.",
                labels=["service"],
            )
            opened.add_metric([service], float(data["circuit_opened"]))
            yield opened
        for name, description in FLAGS.items():
            if name in data:
                yield _gauge(f"segue_{name}", description, service, bool(data[name]))


def _gauge(name: str, description: str, service: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, description, labels=["service"])
    gauge.add_metric([service], float(value))
    return gauge


def prometheus_text(snapshot: Callable[[], Mapping[str, Any]]) -> bytes:
    """The exposition text of one snapshot.

    :param snapshot: returns the JSON ``/metrics`` body.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(snapshot))
    return generate_latest(registry)


def wants_prometheus(accept: str, query: str = "") -> bool:
    """True when a scrape asks for the text format: Prometheus sends ``Accept: text/plain`` or
    ``application/openmetrics-text``; a person can add ``?format=prometheus``. Anything else
    (``*/*``, ``application/json``, no header) keeps the JSON body.

    :param accept: the request's Accept header.
    :param query: the request's query string.
    """
    return (
        "format=prometheus" in query
        or "text/plain" in accept
        or "application/openmetrics-text" in accept
    )
