"""The Celery-chain baseline of benchmarks/event_path.py, measured on the event path's own
PostgreSQL database and gateway and on the same RabbitMQ (a vhost of its own, ``perf-celery-*``):
the five steps per order as a Celery chain (``celery_chain.py``), orders sent open loop with
Poisson arrivals at each rate, latency = last step done - chain sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import celery_chain
from event_path_fleet import Fleet
from event_path_load import arrival_times, distribution_ms, order_data
from event_path_stepped import cpu_per_1000, loadavg

from tools.broker import fresh_vhost
from tools.services import service_env

ROOT = Path(__file__).resolve().parents[1]


def children_of(pid: int) -> list[int]:
    """The child pids of ``pid`` (a prefork worker's pool processes).

    :param pid: the parent.
    """
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def read_latencies(path: Path, prefix: str) -> dict[str, tuple[float, float]]:
    """``order_id -> (sent, done)`` of the orders under ``prefix`` recorded so far.

    :param path: the workers' latency file.
    :param prefix: the orders' id prefix.
    """
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        order_id, sent, done = line.split()
        if order_id.startswith(prefix):
            found[order_id] = (float(sent), float(done))
    return found


@contextmanager
def celery_workers(box: Fleet, concurrency: int) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A Celery worker (prefork, ``concurrency`` processes) on a fresh vhost, the benchmark's
    app pointed at it; (the worker process, its latency file).

    :param box: the fleet whose database and gateway the steps use.
    :param concurrency: worker pool processes.
    """
    latency_file = box.log_dir / f"perf-celery-latency-{os.getpid()}.txt"
    latency_file.unlink(missing_ok=True)
    with fresh_vhost(f"perf-celery-{os.getpid()}") as amqp_url:
        env = service_env(
            database_url=box.database_url,
            amqp_url=amqp_url,
            gateway_url=box.gateway.url,
            extra={"PERF_CELERY_BROKER": amqp_url, "PERF_CELERY_LATENCY_FILE": str(latency_file)},
        )
        command = [sys.executable, "-m", "celery", "-A", "benchmarks.celery_chain", "worker"]
        command += ["-c", str(concurrency), "-P", "prefork", "-l", "warning", "-Q"]
        command += [celery_chain.QUEUE, "--without-gossip", "--without-mingle"]
        command += ["--without-heartbeat"]
        with open(box.log_dir / "celery-worker.log", "ab") as log:
            worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        celery_chain.app.conf.broker_url = amqp_url
        os.environ["PERF_CELERY_LATENCY_FILE"] = str(latency_file)
        try:
            yield worker, latency_file
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def send_orders(prefix: str, rate: float, seconds: float, *, seed: int) -> list[float]:
    """Send the chains of Poisson arrivals at ``rate``/s; each send's lag behind schedule.

    :param prefix: the orders' id prefix.
    :param rate: orders/s.
    :param seconds: how long.
    :param seed: the arrival schedule's seed (the event path's for the same rate).
    """
    lags = []
    start = time.monotonic() + 0.1
    for index, offset in enumerate(arrival_times(rate, seconds, poisson=True, seed=seed)):
        delay = start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        lags.append(time.monotonic() - start - offset)
        data = order_data(f"{prefix}{index}")
        celery_chain.order_chain(data, time.time()).apply_async()
    return lags


def wait_recorded(path: Path, prefix: str, count: int, stalled_after: float = 60.0) -> None:
    """Until ``count`` orders under ``prefix`` are recorded; raise when none came for a while.

    :param path: the latency file.
    :param prefix: the orders' id prefix.
    :param count: how many to wait for.
    :param stalled_after: seconds without progress before giving up.
    """
    last, moved_at = -1, time.monotonic()
    while (now := len(read_latencies(path, prefix))) < count:
        if now != last:
            last, moved_at = now, time.monotonic()
        elif time.monotonic() - moved_at > stalled_after:
            raise RuntimeError(f"celery chain: stuck at {now}/{count} orders")
        time.sleep(0.5)


def celery_rate(
    box: Fleet, worker: subprocess.Popen, path: Path, rate: float, seconds: float
) -> dict[str, Any]:
    """One offered rate through the Celery chain; latency, CPU per order, machine busy share.

    :param box: the fleet (database, gateway, meters).
    :param worker: the Celery worker process.
    :param path: its latency file.
    :param rate: offered orders/s.
    :param seconds: how long orders arrive.
    """
    prefix = f"celery{rate:g}-"
    pids = {"celery worker": worker.pid}
    pids.update({f"celery pool {i}": pid for i, pid in enumerate(children_of(worker.pid))})
    meter = box.meter(pids)
    print(f"celery chain: {rate:g} orders/s (Poisson) for {seconds:g}s", flush=True)
    meter.start()
    lags = send_orders(prefix, rate, seconds, seed=int(rate))
    wait_recorded(path, prefix, len(lags))
    cpu = meter.stop(len(lags))
    found = read_latencies(path, prefix)
    return {
        "offered_orders_per_second": rate,
        "seconds": seconds,
        "sent": len(lags),
        "completed": len(found),
        "send_lag_behind_schedule": distribution_ms(lags),
        "chain_sent_to_notify_shipping_done": distribution_ms(
            [done - sent for sent, done in found.values()]
        ),
        "cpu_seconds_per_1000_orders": cpu_per_1000(cpu),
        "machine_busy_percent": cpu["machine_busy_percent_of_all_cpus"],
        "loadavg_at_end": loadavg(),
        "cpu": cpu,
    }


def celery_phase(
    box: Fleet, rates: list[float], seconds: float, concurrency: int
) -> dict[str, Any]:
    """A warm-up, then each rate through the Celery chain.

    :param box: the fleet.
    :param rates: offered orders/s.
    :param seconds: arrivals per rate.
    :param concurrency: worker pool processes.
    """
    with celery_workers(box, concurrency) as (worker, path):
        warm = send_orders("celery-warm-", 20, 1, seed=1)
        wait_recorded(path, "celery-warm-", len(warm), stalled_after=90)
        steps = [celery_rate(box, worker, path, rate, seconds) for rate in rates]
    return {
        "what": "the five payment steps as a Celery 5.7 chain (benchmarks/celery_chain.py)",
        "worker": f"prefork, {concurrency} processes, Celery defaults (early ack, no results)",
        "latency": "chain sent -> notify_shipping done (time.time() in sender and worker)",
        "steps": steps,
    }
