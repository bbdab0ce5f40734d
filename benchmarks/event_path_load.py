"""Load and readings for benchmarks/event_path.py: orders placed through the intake (its own
``place_order`` in batches, or HTTP POST /orders paced open-loop) and the figures read back from
PostgreSQL (orders table for progress, event_log for throughput and latency).
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from include.payments.events import OrderPlaced, ShippingNotified
from include.payments.models import Order
from include.services.intake import place_order
from segue.store.engine import session_scope

EXAMPLE_ORDER = json.loads((Path(__file__).parents[1] / "examples" / "order.json").read_text())
# What the gateway tells of the example's token (pm_card_visa) when the intake looks it up.
EXAMPLE_CARD = {"card_last4": "4242", "card_brand": "visa"}
PLACED = OrderPlaced.event_type
SHIPPED = ShippingNotified.event_type


BENCHMARK_CLIENT = "benchmark"


def order_data(order_id: str) -> dict[str, Any]:
    """The README's example order (good card token, catalog SKUs in stock) under ``order_id``, as
    ``POST /orders`` takes it."""
    return {**EXAMPLE_ORDER, "order_id": order_id}


def place_batch(engine: Engine, order_ids: list[str]) -> None:
    """The intake's own code path: ``place_order`` for each order, one transaction per batch."""
    orders = [Order.model_validate({**order_data(oid), **EXAMPLE_CARD}) for oid in order_ids]
    with session_scope(engine) as session:
        for order in orders:
            place_order(session, order, client=BENCHMARK_CLIENT)


def count_orders(engine: Engine, prefix: str, status: str = "completed") -> int:
    with engine.connect() as connection:
        query = text("SELECT count(*) FROM orders WHERE order_id LIKE :p AND status = :s")
        return int(connection.execute(query, {"p": f"{prefix}%", "s": status}).scalar_one())


def count_logged(engine: Engine, prefix: str, event_type: str = SHIPPED) -> int:
    with engine.connect() as connection:
        query = text("SELECT count(*) FROM event_log WHERE type = :t AND subject LIKE :p")
        return int(connection.execute(query, {"t": event_type, "p": f"{prefix}%"}).scalar_one())


@dataclass
class Placement:
    """Orders placed so far by a load generator (read by the progress monitor)."""

    prefix: str
    placed: int = 0
    errors: list[str] = field(default_factory=list)
    response_seconds: list[float] = field(default_factory=list)
    lag_seconds: list[float] = field(default_factory=list)  # late starts of paced requests
    lock: threading.Lock = field(default_factory=threading.Lock)


def place_closed_loop(
    engine: Engine,
    placement: Placement,
    total: int,
    *,
    batch: int,
    window: int,
    stalled_after: float,
) -> None:
    """Place ``total`` orders in batches, keeping at most ``window`` orders in flight."""
    completed, progress_at = 0, time.monotonic()
    while placement.placed < total:
        now_completed = count_orders(engine, placement.prefix)
        if now_completed > completed:
            completed, progress_at = now_completed, time.monotonic()
        if time.monotonic() - progress_at > stalled_after:
            raise RuntimeError(f"no order completed for {stalled_after:.0f}s while placing")
        room = min(window - (placement.placed - completed), total - placement.placed)
        if room < batch and placement.placed + room < total:
            time.sleep(0.25)  # each poll is a count over the orders table: keep it cheap
            continue
        while room > 0:
            size = min(batch, room)
            ids = [f"{placement.prefix}{placement.placed + i}" for i in range(size)]
            place_batch(engine, ids)
            placement.placed += size
            room -= size


def place_paced_http(
    intake_url: str,
    placement: Placement,
    *,
    api_key: str,
    rate: float,
    seconds: float,
    threads: int,
    poisson: bool = False,
    seed: int = 14,
) -> None:
    """Open-loop load: order i is sent at its due time by a pool of ``threads`` clients,
    whatever happened to the earlier ones, with the intake API key ``api_key``.

    Due times are start + i/rate, or with ``poisson`` a Poisson process of that rate
    (exponential gaps, seeded) for ``seconds``.
    """
    schedule = arrival_times(rate, seconds, poisson=poisson, seed=seed)
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with (
        httpx.Client(
            base_url=intake_url,
            timeout=30,
            limits=limits,
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client,
        ThreadPoolExecutor(threads, thread_name_prefix="client") as pool,
    ):

        def post(index: int, due: float) -> None:
            started = time.monotonic()
            try:
                response = client.post("/orders", json=order_data(f"{placement.prefix}{index}"))
                ok = response.status_code == 202
                problem = f"{response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                ok, problem = False, repr(exc)
            with placement.lock:
                placement.lag_seconds.append(started - due)
                placement.response_seconds.append(time.monotonic() - started)
                if ok:
                    placement.placed += 1
                else:
                    placement.errors.append(problem)

        start = time.monotonic() + 0.1
        for index, offset in enumerate(schedule):
            due = start + offset
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(post, index, due)


def arrival_times(rate: float, seconds: float, *, poisson: bool, seed: int = 14) -> list[float]:
    """Offsets (s) of the arrivals of ``rate``/s over ``seconds``: evenly spaced, or a Poisson
    process (exponential gaps drawn from a generator seeded with ``seed``).

    :param rate: arrivals per second.
    :param seconds: how long.
    :param poisson: exponential gaps instead of even ones.
    :param seed: the generator's seed (the same schedule for every system measured).
    """
    if not poisson:
        return [index / rate for index in range(int(rate * seconds))]
    draw, offsets, now = random.Random(seed), [], 0.0
    while True:
        now += draw.expovariate(rate)
        if now >= seconds:
            return offsets
        offsets.append(now)


def wait_for(
    done: Callable[[], bool], progress: Callable[[], int], *, stalled_after: float, what: str
) -> None:
    """Wait until ``done()``; raise when ``progress()`` has not moved for ``stalled_after`` s."""
    last, moved_at = -1, time.monotonic()
    while not done():
        value = progress()
        if value != last:
            last, moved_at = value, time.monotonic()
        elif time.monotonic() - moved_at > stalled_after:
            raise RuntimeError(f"{what}: stuck at {value} for {stalled_after:.0f}s")
        time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def distribution_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50_ms": round(1000 * statistics.median(values), 1),
        "p95_ms": round(1000 * percentile(values, 0.95), 1),
        "p99_ms": round(1000 * percentile(values, 0.99), 1),
        "max_ms": round(1000 * max(values), 1),
        "mean_ms": round(1000 * statistics.fmean(values), 1),
    }


def order_timings(engine: Engine, prefix: str) -> list[tuple[datetime, datetime, datetime]]:
    """Per completed order: (OrderPlaced time, ShippingNotified time, its recorded_at)."""
    query = text(
        "SELECT p.time, s.time, s.recorded_at FROM event_log p"
        " JOIN event_log s ON s.subject = p.subject AND s.type = :shipped"
        " WHERE p.type = :placed AND p.subject LIKE :prefix"
    )
    with engine.connect() as connection:
        rows = connection.execute(
            query, {"shipped": SHIPPED, "placed": PLACED, "prefix": f"{prefix}%"}
        )
        return [(row[0], row[1], row[2]) for row in rows]


def throughput(engine: Engine, prefix: str) -> dict[str, Any]:
    """Completed orders / (last ShippingNotified time - first OrderPlaced time)."""
    timings = order_timings(engine, prefix)
    if not timings:
        return {"completed": 0}
    first = min(placed for placed, _, _ in timings)
    last = max(shipped for _, shipped, _ in timings)
    wall = (last - first).total_seconds()
    return {
        "completed": len(timings),
        "first_order_placed": first.isoformat(),
        "last_shipping_notified": last.isoformat(),
        "wall_seconds": round(wall, 2),
        "orders_per_second": round(len(timings) / wall, 1) if wall > 0 else None,
    }


def latencies(engine: Engine, prefix: str) -> dict[str, Any]:
    """OrderPlaced ``time`` -> ShippingNotified ``time`` (and -> its ``recorded_at``)."""
    timings = order_timings(engine, prefix)
    to_shipped = [(shipped - placed).total_seconds() for placed, shipped, _ in timings]
    to_logged = [(logged - placed).total_seconds() for placed, _, logged in timings]
    return {
        "orders": len(timings),
        "order_placed_to_shipping_notified": distribution_ms(to_shipped),
        "order_placed_to_shipping_notified_recorded_in_event_log": distribution_ms(to_logged),
    }


def events_of_order(engine: Engine, order_id: str) -> dict[str, int]:
    """Event types recorded in the event log for one order, with their counts."""
    query = text("SELECT type, count(*) FROM event_log WHERE subject = :s GROUP BY type")
    with engine.connect() as connection:
        return {
            row[0].rsplit(".", 1)[-1]: int(row[1])
            for row in connection.execute(query, {"s": order_id})
        }
