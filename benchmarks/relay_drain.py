"""CPU of one outbox relay drain (``OutboxRelay.drain_once``), this checkout against another.

Each round queues ``--rows`` outbox rows in their own transaction (as a service's commit does),
then times the drain that publishes them (thread CPU, real PostgreSQL and RabbitMQ, confirms
on), ``--drains`` times; the best round's CPU-µs per drain is kept. With ``--against DIR`` the
same measurement runs, round by round in turn, on the code of the checkout in ``DIR`` (its
``src`` on ``PYTHONPATH``, with this checkout's interpreter and packages), and the ratio is
printed.

    git worktree add /tmp/base <commit>
    .venv/bin/python benchmarks/relay_drain.py --against /tmp/base --rows 1,20 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "benchmarks" / "results" / "relay_drain.json"


def measure(rows: int, drains: int) -> float:
    """CPU-µs per drain of ``rows`` rows, in this interpreter (whatever ``segue`` it imports)."""
    sys.path[:0] = [str(HERE)]  # tools/ and include/ of this checkout; segue from PYTHONPATH
    from include.payments.events import ReceiptSent
    from segue.bus.connection import connect
    from segue.bus.outbox import add_many_to_outbox
    from segue.bus.relay import BacklogBreaker, OutboxRelay, queues_by_routing_key
    from segue.bus.tables import COMPONENT as BUS
    from segue.bus.topology import declare_exchanges, declare_service, queue_name, service_queues
    from segue.events.envelope import Envelope
    from segue.migrations import migrated
    from segue.store.engine import build_engine, session_scope
    from tools.broker import fresh_vhost
    from tools.sandbox import fresh_database

    def queue(count: int, start: int) -> None:
        with session_scope(engine) as session:
            add_many_to_outbox(
                session,
                [
                    Envelope.create(
                        ReceiptSent(order_id=f"o-{n}", email="a@example.com"),
                        source="src",
                        subject=f"o-{n}",
                    )
                    for n in range(start, start + count)
                ],
            )

    name = f"segue_bench_relay_{os.getpid()}"
    with fresh_database(name) as url, fresh_vhost(name) as amqp_url:
        engine = migrated(build_engine(url), [BUS])
        connection = connect(amqp_url)
        declare_exchanges(connection)
        sink = queue_name("sink")
        declare_service(connection, service_queues("sink", [ReceiptSent.event_type]))
        routes = queues_by_routing_key({sink: [ReceiptSent.event_type]})
        breaker = BacklogBreaker(connection, 10**9, routes)
        relay = OutboxRelay(engine, connection, source="src", breaker=breaker)
        spent = 0.0
        for n in range(drains + 50):  # the first 50 warm up the pool and statement caches
            queue(rows, n * rows)
            started = time.thread_time()
            assert relay.drain_once() == rows
            if n >= 50:
                spent += time.thread_time() - started
            if n % 200 == 0:
                connection.default_channel.queue_purge(sink)
        connection.close()
        engine.dispose()
    return spent / drains * 1e6


def one_round(checkout: Path, rows: int, drains: int) -> float:
    """CPU-µs per drain measured in a fresh interpreter on ``checkout``'s ``segue``."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    command = [sys.executable, __file__, "--measure", str(rows), "--drains", str(drains)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1,20", help="rows per drain, comma-separated")
    parser.add_argument("--drains", type=int, default=1000, help="timed drains per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="a checkout to measure the same way")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(measure(args.measure, args.drains))
        return 0
    checkouts = {"this": HERE} | ({"against": args.against.resolve()} if args.against else {})
    results: dict[str, dict[str, float]] = {}
    for rows in (int(value) for value in args.rows.split(",")):
        best = {label: float("inf") for label in checkouts}
        for round_ in range(1, args.rounds + 1):
            for label, checkout in checkouts.items():
                best[label] = min(best[label], one_round(checkout, rows, args.drains))
            figures = ", ".join(f"{label} {value:.0f}" for label, value in best.items())
            print(f"rows {rows}, round {round_}/{args.rounds}: best CPU-µs per drain {figures}")
        results[str(rows)] = best
        if args.against:
            print(f"rows {rows}: this ÷ against = {best['this'] / best['against']:.2f}x")
    RESULTS.write_text(
        json.dumps(
            {
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": " ".join(sys.argv),
                "checkouts": {label: str(path) for label, path in checkouts.items()},
                "cpu_us_per_drain": results,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
