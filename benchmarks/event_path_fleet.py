"""The fleet benchmarks/event_path.py measures: a fresh vhost and database, the gateway, the
payment services, the event log and the intake, all started and ready; plus the warm-up and the
idle reading that every run begins with, and paced HTTP load waited for to the end of the path."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from event_path_load import (
    BENCHMARK_CLIENT,
    Placement,
    count_logged,
    events_of_order,
    place_batch,
    place_paced_http,
    wait_for,
)
from event_path_probe import CpuMeter, pg_counters
from event_path_profiled import profiled_services
from sqlalchemy import Engine

import segue.eventlog.store  # noqa: F401  (registers event_log before the schema is created)
from include.payments.catalog import seed_catalog
from include.payments.database import payments_engine
from include.services import EVENT_PATH_PROCESSES
from include.services.api_clients import create_client
from include.services.front_door import route_everything_to
from segue.store.engine import session_scope
from tools.broker import fresh_vhost
from tools.gateway import GatewayProcess, start_gateway
from tools.ports import unused_port
from tools.sandbox import fresh_database
from tools.services import ServiceProcess, start_services

STOCK = 10_000_000
FLEET = dict(EVENT_PATH_PROCESSES)
RELAYS = len(EVENT_PATH_PROCESSES) - 1  # every process but the event log publishes
STALLED_AFTER = 90.0


@dataclass
class Fleet:
    """The running fleet: its processes, its database and the intake's URL and API key."""

    services: dict[str, ServiceProcess]
    gateway: GatewayProcess
    engine: Engine
    database: str
    database_url: str
    intake_url: str
    log_dir: Path
    api_key: str

    def meter(self, extra: Mapping[str, int] | None = None) -> CpuMeter:
        """A CPU meter over the fleet's processes (and ``extra``: name -> pid).

        :param extra: more processes to count, e.g. a baseline's workers.
        """
        pids = {name: service.pid for name, service in self.services.items()}
        return CpuMeter(
            {**pids, "gateway": self.gateway.pid, **(extra or {})},
            self.database,
            lambda: pg_counters(self.engine, self.database),
        )

    def counts(self) -> dict[str, dict[str, Any]]:
        """Each service's /metrics counts and how often its circuit opened."""
        found = {}
        for name, service in self.services.items():
            metrics = service.metrics()
            found[name] = {
                **metrics.get("counts", {}),
                "circuit_opened": metrics.get("circuit_opened"),
            }
        return found


class Intake(Protocol):
    """What paced load needs of a fleet (``Fleet`` has it): its intake and its database."""

    engine: Engine
    intake_url: str
    api_key: str


@contextmanager
def fleet(
    log_dir: Path, *, profile: bool = False, env: dict[str, str] | None = None
) -> Iterator[Fleet]:
    """Fresh vhost + database, gateway, services, event log and intake, all ready.

    :param log_dir: where the services write their logs (and profiles).
    :param profile: run each service under cProfile.
    :param env: extra environment variables for every service.
    """
    tag = f"event-path-{os.getpid()}"
    with (
        fresh_vhost(f"segue-bench-{tag}") as amqp_url,
        fresh_database(f"segue_bench_{tag.replace('-', '_')}") as database_url,
        start_gateway(
            failure_rate=0,
            log_path=log_dir / "gateway.log",
            extra_args=("--latency-mean-ms", "0", "--timeout-rate", "0", "--log-level", "warning"),
        ) as gateway,
    ):
        engine = payments_engine(database_url)
        with session_scope(engine) as session:
            seed_catalog(session, stock=STOCK)
            api_key = create_client(session, BENCHMARK_CLIENT)
        # Through the front door with a 100% events split: the benchmark measures routing too.
        route_everything_to(engine, "events", actor="benchmark", reason="event-path benchmark")
        intake_port = unused_port()
        print(f"starting {len(FLEET)} services (logs in {log_dir})", flush=True)
        launch = profiled_services if profile else start_services
        with launch(
            FLEET,
            database_url=database_url,
            amqp_url=amqp_url,
            gateway_url=gateway.url,
            log_dir=log_dir,
            extra_env={
                "SEGUE_INTAKE_PORT": str(intake_port),
                # the benchmark measures the path, not the per-client limit
                "SEGUE_INTAKE_RATE_PER_SECOND": "1000000",
                "SEGUE_INTAKE_RATE_BURST": "1000000",
                **(env or {}),
            },
        ) as services:
            yield Fleet(
                services,
                gateway,
                engine,
                database_url.rsplit("/", 1)[1],
                database_url,
                f"http://127.0.0.1:{intake_port}",
                log_dir,
                api_key,
            )
        engine.dispose()


def warm_up(box: Fleet, orders: int = 20) -> dict[str, int]:
    """A few orders through the whole path; the event types one order produced.

    :param box: the fleet.
    :param orders: how many.
    """
    place_batch(box.engine, [f"warm-{i}" for i in range(orders)])
    wait_for(
        lambda: count_logged(box.engine, "warm-") >= orders,
        lambda: count_logged(box.engine, "warm-"),
        stalled_after=STALLED_AFTER,
        what="warm-up orders",
    )
    return events_of_order(box.engine, "warm-0")


def place_paced_http_and_wait(
    box: Intake,
    placement: Placement,
    *,
    rate: float,
    seconds: float,
    threads: int,
    stalled_after: float,
    what: str,
    poisson: bool = False,
    seed: int = 14,
) -> None:
    """Paced open-loop orders to ``box``'s intake over HTTP (``place_paced_http``), then wait
    until every order placed has reached the end of the path (ShippingNotified logged).

    :param box: the fleet.
    :param placement: what is placed so far (its prefix names the orders).
    :param rate: offered orders/s.
    :param seconds: how long orders arrive.
    :param threads: HTTP client threads.
    :param stalled_after: give up when no order finished for this long (s).
    :param what: the orders, as an error names them.
    :param poisson: Poisson arrivals instead of evenly spaced ones.
    :param seed: the Poisson schedule's seed.
    """
    place_paced_http(
        box.intake_url,
        placement,
        api_key=box.api_key,
        rate=rate,
        seconds=seconds,
        threads=threads,
        poisson=poisson,
        seed=seed,
    )
    wait_for(
        lambda: count_logged(box.engine, placement.prefix) >= placement.placed,
        lambda: count_logged(box.engine, placement.prefix),
        stalled_after=stalled_after,
        what=what,
    )


def idle_phase(box: Fleet, seconds: float = 5.0) -> dict[str, Any]:
    """CPU of the fleet with nothing to do: the cost of polling (relays, consumers, metrics).

    :param box: the fleet.
    :param seconds: how long to watch.
    """
    meter = box.meter()
    meter.start()
    time.sleep(seconds)
    cpu = meter.stop(1)
    return {"seconds": seconds, "cpu_percent_of_one_core": cpu["cpu_percent_of_one_core"]}
