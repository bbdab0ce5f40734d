"""At-least-once through a triggerer crash: a ChargeFailed delivered to the triggerer's
AssetWatcher but not yet handed over is not lost when the triggerer is SIGKILLed; a new
triggerer gets it again and the follow-up DAG runs for it.

The triggerer of ``airflow standalone`` is frozen (SIGSTOP) so the message is provably in its
hands (unacknowledged at the broker), then killed; a replacement triggerer runs until the end
of the session so later tests keep a working triggerer.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import psutil
import pytest

from include.payments.events import ChargeFailed
from include.payments.followups import followups_engine, followups_for
from segue.airflow.hooks.amqp import AmqpHook, AmqpParams
from segue.events.envelope import Envelope
from segue.store.engine import session_scope
from tools.airflow_stack import AirflowStack
from tools.processes import read_pid, spawn_detached, stop_detached

pytestmark = pytest.mark.e2e
FOLLOWUP = "payment_charge_failed_followup"
QUEUE = "segue.airflow.charge_failed_followup"


def queue_counts(amqp_url: str) -> tuple[int, int, int]:
    """(ready, unacknowledged, consumers) of the watcher's queue; zeros before it exists."""
    vhost = unquote(amqp_url.rsplit("/", 1)[1])
    columns = ["name", "messages_ready", "messages_unacknowledged", "consumers"]
    out = subprocess.run(
        ["rabbitmqctl", "--quiet", "list_queues", "-p", vhost, *columns],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        name, *numbers = line.split()
        if name == QUEUE:
            ready, unacked, consumers = (int(n) for n in numbers)
            return ready, unacked, consumers
    return 0, 0, 0


def wait_until(check, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def triggerer_processes(stack: AirflowStack) -> list[psutil.Process]:
    """The standalone's ``airflow triggerer`` and everything it started."""
    standalone = psutil.Process(read_pid(stack.pid_path))
    for child in standalone.children(recursive=False):
        if "triggerer" in " ".join(child.cmdline()):
            return [child, *child.children(recursive=True)]
    raise AssertionError("no triggerer process under airflow standalone")


@pytest.fixture(scope="session")
def replacement_triggerer(airflow_stack: AirflowStack) -> Iterator[Callable[[], None]]:
    """Starts a triggerer on demand; it runs until the end of the test session."""
    pid_path = airflow_stack.home / "triggerer-replacement.pid"

    def start() -> None:
        spawn_detached(
            [str(Path(airflow_stack.airflow_command()[0])), "triggerer"],
            env=airflow_stack.env(),
            log_path=airflow_stack.home / "logs" / "triggerer-replacement.log",
            pid_path=pid_path,
            cwd=airflow_stack.project_root,
        )

    yield start
    stop_detached(pid_path)


def test_a_message_survives_a_triggerer_killed_before_handing_it_over(
    airflow_api, airflow_stack, pg_url, replacement_triggerer
):
    airflow_api.wait_for_dag(FOLLOWUP)
    amqp_url = airflow_stack.extra_env["SEGUE_AMQP_URL"]
    wait_until(lambda: queue_counts(amqp_url)[2] >= 1, "the watcher to consume")
    processes = triggerer_processes(airflow_stack)
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    order_id = f"ord-crash-{time.time_ns()}"
    payload = ChargeFailed(order_id=order_id, code="card_declined", reason="declined")
    envelope = Envelope.create(payload, source="test", subject=order_id)
    try:
        with AmqpHook(params=AmqpParams(url=amqp_url)) as hook:
            hook.publish_event(envelope)
        wait_until(lambda: queue_counts(amqp_url)[1] == 1, "delivery to the frozen triggerer")
    finally:
        for process in processes:
            process.send_signal(signal.SIGKILL)
    wait_until(lambda: queue_counts(amqp_url)[:2] == (1, 0), "the message back in the queue", 60)
    engine = followups_engine(pg_url)
    with session_scope(engine) as session:
        assert followups_for(session, order_id) == []  # not handed over before the crash

    replacement_triggerer()

    def recorded() -> bool:
        with session_scope(engine) as session:
            return [r.event_id for r in followups_for(session, order_id)] == [envelope.id]

    wait_until(recorded, "the follow-up after the restart", timeout=240)
    wait_until(lambda: queue_counts(amqp_url)[:2] == (0, 0), "the ack after persistence", 60)
