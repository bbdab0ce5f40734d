"""Benchmark: what order tracing adds to each message of the event path, off and on.

    .venv/bin/python benchmarks/tracing_overhead.py --messages 20000 --rounds 5

Per message the event path does, where tracing touches it: open the handler's span under the
event's ``traceparent`` (``segue.tracing.span``), emit one event caused by it
(``Envelope.create``, whose ``traceparent`` names the open span) and, in the relay, record its
publish span (``tracing.record_published``). This runs exactly that around an empty handler:

- ``bare``: the same work without any tracing code (the handler call, and the envelope's
  traceparent made as before tracing: a new span id in the cause's trace);
- ``off``: Segue's code with no OTLP endpoint (what every deployment without Jaeger runs);
- ``on``: tracing on, spans handed to a BatchSpanProcessor whose exporter drops them (the SDK's
  cost in the handling thread plus its export thread, without a network);

Each mode runs ``--rounds`` times interleaved; the best round counts (shared, noisy machine).
CPU time is this process's (every thread, so the batch exporter's thread is counted). Writes
benchmarks/results/tracing_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from include.payments.events import OrderPlaced
from include.payments.models import Order
from segue import tracing
from segue.events.envelope import Envelope, new_traceparent, trace_id_of
from segue.events.payload import EventPayload

RESULTS = Path(__file__).parent / "results" / "tracing_overhead.json"
ORDER = {
    "order_id": "ord-bench-1",
    "customer_email": "ada@example.com",
    "payment_method": "pm_card_visa",
    "card_last4": "4242",
    "card_brand": "visa",
    "amount": "49.99",
    "currency": "USD",
    "items": [{"sku": "SKU-MUG", "quantity": 2}],
    "shipping_address": {
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    },
}


class Dropping(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[object]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def handler(cause: Envelope, payload: EventPayload) -> Envelope:
    """An empty handler: emits one event caused by ``cause``."""
    return Envelope.create(payload, source="validation", subject=cause.subject, caused_by=cause)


def bare_message(cause: Envelope, payload: EventPayload) -> None:
    """The pre-tracing work: call the handler; the emitted event's traceparent made by hand."""
    emitted = handler(cause, payload)
    new_traceparent(trace_id_of(cause.traceparent))  # what Envelope.create did before
    del emitted


def traced_message(cause: Envelope, payload: EventPayload) -> None:
    """Segue's per-message tracing calls around the handler (consumer and relay)."""
    with tracing.span(f"validation {cause.type}", traceparent=cause.traceparent):
        emitted = handler(cause, payload)
    tracing.record_published("validation", [(emitted.type, emitted.traceparent)], time.time_ns())


def measure(run: Callable[[Envelope, EventPayload], None], messages: int) -> dict[str, float]:
    """µs of wall and CPU time per message over ``messages`` messages."""
    order = Order.model_validate(ORDER)
    cause = Envelope.create(OrderPlaced(order=order), source="intake", subject=order.order_id)
    payload = OrderPlaced(order=order)
    tracing.flush()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(messages):
        run(cause, payload)
    tracing.flush()
    return {
        "wall_us": (time.perf_counter() - wall) / messages * 1e6,
        "cpu_us": (time.process_time() - cpu) / messages * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    os.environ.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    rounds: dict[str, list[dict[str, float]]] = {"bare": [], "off": [], "on": []}
    for _ in range(args.rounds):
        tracing.install(None)
        rounds["bare"].append(measure(bare_message, args.messages))
        rounds["off"].append(measure(traced_message, args.messages))
        tracing.configure_tracing("bench", exporter=Dropping())
        rounds["on"].append(measure(traced_message, args.messages))
        tracing.install(None)
    best = {mode: min(r, key=lambda m: m["cpu_us"]) for mode, r in rounds.items()}
    result = {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "messages_per_round": args.messages,
        "best": best,
        "added_cpu_us_off": best["off"]["cpu_us"] - best["bare"]["cpu_us"],
        "added_cpu_us_on": best["on"]["cpu_us"] - best["bare"]["cpu_us"],
        "rounds": rounds,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for mode, figures in best.items():
        print(
            f"{mode:>4}: {figures['cpu_us']:7.1f} µs CPU, "
            f"{figures['wall_us']:7.1f} µs wall per message"
        )
    print(
        f"tracing off adds {result['added_cpu_us_off']:+.1f} µs CPU per message; "
        f"on adds {result['added_cpu_us_on']:+.1f} µs"
    )


if __name__ == "__main__":
    main()
