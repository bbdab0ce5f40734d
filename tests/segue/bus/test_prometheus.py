"""``/metrics`` in Prometheus' text format: a real runtime on a real broker and database is
scraped as Prometheus does (its Accept header), parsed with prometheus-client's own parser, and
the figures equal the JSON body's; a caller that asks for nothing in particular still gets JSON."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from segue.bus.health import HealthServer
from segue.bus.prometheus import prometheus_text, wants_prometheus
from segue.bus.publisher import Publisher
from segue.bus.runtime import ServiceRuntime
from tests.segue.bus.conftest import probe_queue
from tests.segue.bus.test_runtime import OUTPUT, event, toy_service, wait_for

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.headers["Content-Type"], answer.read().decode()


def test_a_running_service_is_scraped_in_the_text_format(
    run_service: Callable[..., ServiceRuntime], broker: Connection
) -> None:
    seen: list[str] = []
    probe_queue(broker, "probe.prometheus", OUTPUT)  # the toy's output has somewhere to go
    runtime = run_service(toy_service(seen))
    Publisher(broker).publish_event(event("o-prom"))
    wait_for(lambda: seen == ["o-prom"], what="the event handled")
    wait_for(lambda: runtime.counts["handled"] == 1, what="the handled count")
    url = f"http://127.0.0.1:{runtime.health.port}/metrics"

    content_type, text = get(url, PROMETHEUS_ACCEPT)
    assert content_type.startswith("text/plain")
    scraped = samples(text)
    assert scraped[("segue_messages_total", (("outcome", "handled"), ("service", "toy")))] == 1
    assert scraped[("segue_consuming", (("service", "toy"),))] == 1

    content_type, body = get(url)  # no Accept: the JSON body, unchanged
    assert content_type == "application/json"
    assert json.loads(body)["counts"]["handled"] == 1
    assert samples(get(f"{url}?format=prometheus")[1]) == scraped


def test_every_figure_of_the_snapshot_becomes_a_sample() -> None:
    snapshot = {
        "service": "charge",
        "counts": {"handled": 7, "parked": 2, "published": 9},
        "consuming": True,
        "relay_connected": False,
        "circuit_open": False,
        "circuit_opened": 3,
        "backlog": 11,
        "retrying": 1,
        "parked": 2,
        "outbox_pending": 4,
    }
    scraped = samples(prometheus_text(lambda: snapshot).decode())
    charge = (("service", "charge"),)
    assert scraped == {
        ("segue_messages_total", (("outcome", "handled"), *charge)): 7,
        ("segue_messages_total", (("outcome", "parked"), *charge)): 2,
        ("segue_messages_total", (("outcome", "published"), *charge)): 9,
        ("segue_queue_messages", (("queue", "backlog"), *charge)): 11,
        ("segue_queue_messages", (("queue", "retrying"), *charge)): 1,
        ("segue_queue_messages", (("queue", "parked"), *charge)): 2,
        ("segue_outbox_pending", charge): 4,
        ("segue_circuit_opened_total", charge): 3,
        ("segue_consuming", charge): 1,
        ("segue_relay_connected", charge): 0,
        ("segue_circuit_open", charge): 0,
    }


def test_a_figure_not_reported_yet_is_left_out_not_zeroed() -> None:
    scraped = samples(prometheus_text(lambda: {"service": "s", "counts": {}}).decode())
    assert {name for name, _ in scraped} == set()


def test_who_gets_the_text_format() -> None:
    assert wants_prometheus(PROMETHEUS_ACCEPT)
    assert wants_prometheus("text/plain")
    assert wants_prometheus("", "format=prometheus")
    assert not wants_prometheus("*/*")
    assert not wants_prometheus("application/json")
    assert not wants_prometheus("")


def test_the_health_server_serves_both_formats() -> None:
    server = HealthServer(
        0, live=lambda: True, ready=lambda: True, metrics=lambda: {"service": "x", "counts": {}}
    )
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert get(url)[0] == "application/json"
        assert get(url, "text/plain")[0].startswith("text/plain")
    finally:
        server.stop()
