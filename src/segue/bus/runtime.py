"""Runs one choreographed service: consumer and outbox relay threads, health endpoint, SIGTERM.

Each thread owns its Kombu connection (py-amqp is not thread-safe) and reconnects with a capped
backoff when the broker drops it; unacked messages are then redelivered and the inbox absorbs
the duplicates. SIGTERM stops consuming, finishes the batch in hand, drains the outbox once more
and exits 0.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from kombu import Connection, Consumer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from segue import tracing
from segue.bus.connection import connect
from segue.bus.consumer import BatchHandler
from segue.bus.handlers import ServiceSpec
from segue.bus.health import HealthServer
from segue.bus.logs import configure_json_logging
from segue.bus.publisher import Publisher, PublishFailed
from segue.bus.relay import BacklogBreaker, OutboxRelay, queues_by_routing_key
from segue.bus.tables import COMPONENT as BUS
from segue.bus.topology import (
    backlog,
    declare_service,
    parking_queue_name,
    queue_name,
    retry_queue_name,
    service_queues,
)
from segue.migrations import Component, migrated
from segue.settings import SegueSettings, get_settings
from segue.store.engine import shared_engine

log = logging.getLogger(__name__)

BATCH_MAX = 50
# How long a batch stays open for more messages after its first one (group commit). A service
# on the order's path takes only what already arrived (its latency adds up along the path; under
# load batches fill on their own while the previous one is handled); a recorder (the event log,
# off the path) waits longer, so that at a moderate rate several events share one commit.
BATCH_WINDOW_SECONDS = 0.0
RECORDER_BATCH_WINDOW_SECONDS = 0.025
ALREADY_THERE_SECONDS = 0.0001  # the shortest wait: read what is in the socket already
# The relay drains when a commit wrote outbox rows (it is woken) and, as a safety net for rows
# left by a crash or written by another process of the same source, every IDLE_POLL_SECONDS.
IDLE_POLL_SECONDS = 1.0
# Queue depths and the outbox count for /metrics are read this often (three passive declares
# and a COUNT per process: about 1 CPU-ms per order at 10 orders/s when read every second). A
# Prometheus scrape comes every 15-30 s; the Event path page reads RabbitMQ itself.
METRICS_EVERY_SECONDS = 5.0
HEARTBEAT_EVERY_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0


class Backoff:
    """0.2 s, 0.4 s, ... capped at MAX_BACKOFF_SECONDS; reset after a success."""

    def __init__(self) -> None:
        self.delay = 0.2

    def sleep(self, stop: threading.Event) -> None:
        """Wait the current delay (cut short by ``stop``), then double it up to the maximum.

        :param stop: set when the process is stopping.
        """
        stop.wait(self.delay)
        self.delay = min(self.delay * 2, MAX_BACKOFF_SECONDS)

    def reset(self) -> None:
        """Back to the first, short delay (after a success)."""
        self.delay = 0.2


class ServiceRuntime:
    """The threads of one service process; ``start()``/``stop()``, or ``run()`` until SIGTERM."""

    def __init__(
        self,
        spec: ServiceSpec,
        *,
        engine: Engine,
        amqp_url: str,
        peers: Sequence[ServiceSpec] = (),
        prefetch: int = 100,
        max_body_bytes: int = 256 * 1024,
        backlog_threshold: int = 5_000,
        health_port: int = 0,
    ) -> None:
        """The runtime of one service, not started.

        :param spec: the service.
        :param engine: the store its transactions run on.
        :param amqp_url: the broker.
        :param peers: every consumer's spec, whose queues are declared too (so nothing is
            unroutable).
        :param prefetch: unacked messages per batch.
        :param max_body_bytes: larger messages are parked.
        :param backlog_threshold: a peer queue this long holds the relay back.
        :param health_port: the port of /livez, /readyz and /metrics (0: any free one).
        """
        self.spec = spec
        self.engine = engine
        self.amqp_url = amqp_url
        self.prefetch = prefetch
        self.batch_window = RECORDER_BATCH_WINDOW_SECONDS if spec.recorder else BATCH_WINDOW_SECONDS
        self.max_body_bytes = max_body_bytes
        self.backlog_threshold = backlog_threshold
        everyone = {peer.name: peer for peer in (*peers, spec) if peer.handlers or peer.catch_all}
        self.all_queues = {
            name: service_queues(name, peer.routing_keys) for name, peer in everyone.items()
        }
        self.queues_for = queues_by_routing_key(
            {queue_name(name): peer.routing_keys for name, peer in everyone.items()}
        )
        self.consumes = spec.name in everyone
        self.stopping = threading.Event()
        self.relay_wakeup = threading.Event()
        self.counts: Counter[str] = Counter()
        self.status: dict[str, Any] = {"consuming": False, "relay_connected": False}
        self.relays = not spec.recorder
        self.threads = []
        if self.relays:
            relay = partial(self._reconnecting, "relay", self._relay, "relay_connected")
            self.threads.append(threading.Thread(target=relay, name="relay", daemon=True))
        if self.consumes:
            consume = partial(self._reconnecting, "consumer", self._consume, "consuming")
            self.threads.append(threading.Thread(target=consume, name="consumer", daemon=True))
        self.health = HealthServer(
            health_port, live=self.live, ready=self.ready, metrics=self.metrics
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the health server, consumer and relay threads."""
        self.health.start()
        for thread in self.threads:
            thread.start()
        log.info("%s started; health on http://127.0.0.1:%d", self.spec.name, self.health.port)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the threads and the health server.

        :param timeout: seconds to wait for each thread.
        """
        self.stopping.set()
        self.relay_wakeup.set()
        for thread in self.threads:
            thread.join(timeout)
        self.health.stop()
        log.info("%s stopped", self.spec.name)

    def run(self) -> None:
        """Run until SIGTERM or SIGINT."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())
        self.start()
        while not self.stopping.wait(0.5):
            if not self.live():
                log.error("a worker thread died; exiting")
                break
        self.stop()

    def live(self) -> bool:
        """True while every thread runs (or the runtime is stopping)."""
        return all(thread.is_alive() for thread in self.threads) or self.stopping.is_set()

    def ready(self) -> bool:
        """True once it consumes and relays (what it has to)."""
        consuming = self.status["consuming"] or not self.consumes
        relaying = self.status["relay_connected"] or not self.relays
        return bool(consuming and relaying)

    def metrics(self) -> dict[str, Any]:
        """Counts and status for /metrics."""
        return {"service": self.spec.name, "counts": dict(self.counts), **self.status}

    def wake_relay(self) -> None:
        """Tell the relay there are new outbox rows."""
        self.relay_wakeup.set()

    def _reconnecting(
        self, role: str, work: Callable[[Connection, Backoff], None], flag: str
    ) -> None:
        """Run ``work`` on a fresh connection until it returns on stop; reconnect after failures.

        Nothing is lost on a failure: unacked messages are redelivered and outbox rows stay.
        """
        backoff = Backoff()
        while True:
            try:
                with connect(self.amqp_url) as connection:
                    self._declare(connection)
                    work(connection, backoff)
            except (*Connection().connection_errors, OSError, PublishFailed) as exc:
                log.warning("%s: broker connection lost or publish refused (%r)", role, exc)
            except OperationalError as exc:
                log.warning("%s: database unavailable (%s)", role, exc)
            except Exception:
                log.exception("%s failed", role)
            finally:
                self.status[flag] = False
            if self.stopping.is_set():
                return
            backoff.sleep(self.stopping)

    # --- consumer -------------------------------------------------------------------------

    def _consume(self, connection: Connection, backoff: Backoff) -> None:
        handler = BatchHandler(
            self.spec,
            self.engine,
            Publisher(connection),
            max_body_bytes=self.max_body_bytes,
            on_commit=self.wake_relay,
        )
        handler.counts = self.counts
        buffer: list[Any] = []
        queue = self.all_queues[self.spec.name].main
        with Consumer(
            connection.channel(),
            queues=[queue],
            on_message=buffer.append,
            prefetch_count=self.prefetch,
            auto_declare=False,
        ):
            self.status["consuming"] = True
            backoff.reset()
            metrics_at = 0.0
            while not self.stopping.is_set():
                self._fill(connection, buffer)
                if buffer:
                    batch = buffer[:]
                    buffer.clear()
                    handler.handle(batch)
                connection.heartbeat_check()
                if time.monotonic() - metrics_at > METRICS_EVERY_SECONDS:
                    metrics_at = time.monotonic()
                    self._record_backlogs(connection)

    def _fill(self, connection: Connection, buffer: list[Any]) -> None:
        """Wait briefly for a message, then for more until the batch window closes (at least
        whatever else is already there). Messages may be in ``buffer`` already: deliveries read
        while the last batch awaited confirms on this connection (a retry or a park publishes
        there), which must not wait out the 0.2 s."""
        try:
            connection.drain_events(timeout=ALREADY_THERE_SECONDS if buffer else 0.2)
            closes = time.monotonic() + self.batch_window
            while len(buffer) < BATCH_MAX:
                wait = max(closes - time.monotonic(), ALREADY_THERE_SECONDS)
                connection.drain_events(timeout=wait)
        except TimeoutError:
            pass

    def _record_backlogs(self, connection: Connection) -> None:
        name = self.spec.name
        for label, queue in (
            ("backlog", queue_name(name)),
            ("retrying", retry_queue_name(name)),
            ("parked", parking_queue_name(name)),
        ):
            self.status[label] = backlog(connection, queue)

    def _declare(self, connection: Connection) -> None:
        for queues in self.all_queues.values():
            declare_service(connection, queues)

    # --- relay ----------------------------------------------------------------------------

    def _relay(self, connection: Connection, backoff: Backoff) -> None:
        breaker = BacklogBreaker(connection, self.backlog_threshold, self.queues_for)
        relay = OutboxRelay(self.engine, connection, source=self.spec.name, breaker=breaker)
        self.status["relay_connected"] = True
        backoff.reset()
        heartbeat_at = counted_at = time.monotonic()
        while not self.stopping.is_set():
            # Cleared before the drain: a commit after this point wakes the next round, one
            # before it is seen by this drain's statement.
            self.relay_wakeup.clear()
            published = relay.drain_once()
            self.counts["published"] += published
            self.status["circuit_open"] = relay.paused
            self.status["circuit_opened"] = breaker.opened
            self.status["circuit_blocked_by"] = breaker.open_queue
            if published < relay.batch_size:  # drained: no second transaction to find nothing
                self.relay_wakeup.wait(0.5 if relay.paused else IDLE_POLL_SECONDS)
            now = time.monotonic()
            if now - heartbeat_at > HEARTBEAT_EVERY_SECONDS:  # read heartbeats from the broker
                heartbeat_at = now
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=0.01)
                connection.heartbeat_check()
            if now - counted_at > METRICS_EVERY_SECONDS:
                counted_at = now
                self.status["outbox_pending"] = relay.pending()
        while relay.drain_once():  # stopping: publish what the last batches wrote
            pass


def prepare_process(service: str) -> None:
    """JSON logs tagged with ``service``, traces if an OTLP endpoint is configured;
    ``kill -USR1 <pid>`` prints every thread's stack."""
    configure_json_logging(service)
    tracing.configure_tracing(service)
    faulthandler.register(signal.SIGUSR1)


def run_service(
    spec: ServiceSpec,
    *,
    peers: Sequence[ServiceSpec] = (),
    components: Sequence[Component] = (),
) -> None:
    """The ``main`` of a service process: settings from the environment, run until SIGTERM.

    :param spec: the service to run.
    :param peers: every consumer whose queues this process declares too.
    :param components: the migration components the handlers use; the bus's own (inbox and
        outbox) is always upgraded first.
    """
    settings: SegueSettings = get_settings()
    prepare_process(spec.name)
    engine = migrated(shared_engine(settings.database_url), [BUS, *components])
    runtime = ServiceRuntime(
        spec,
        engine=engine,
        amqp_url=settings.amqp_url,
        peers=peers,
        prefetch=settings.amqp_prefetch,
        max_body_bytes=settings.event_max_body_bytes,
        backlog_threshold=settings.relay_backlog_threshold,
        health_port=settings.service_health_port,
    )
    runtime.run()
