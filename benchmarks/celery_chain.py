"""The Celery-chain baseline of benchmarks/event_path.py: the five payment steps that
``payment_pipeline``'s tasks call (``include.payments.pipeline``: validate, charge, update
inventory, send receipt, notify shipping) as one plain Celery 5.7 chain per order.

A baseline, not product code: what a team would run instead of the event path. Each task runs
its step in its own transaction on the same PostgreSQL and gateway (``SEGUE_DATABASE_URL``,
``SEGUE_GATEWAY_URL``) and passes the order id on; the last one appends
``order_id submitted_at done_at`` to ``PERF_CELERY_LATENCY_FILE`` (one short ``O_APPEND`` write,
atomic between worker processes). The broker is ``PERF_CELERY_BROKER`` (the benchmark gives a
vhost of its own); the queue is ``perf-celery-chain``. Celery's defaults otherwise: acks before
the task runs, no result backend.

    celery -A benchmarks.celery_chain worker -c 4 -P prefork
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, chain
from celery.canvas import Signature

from include.payments import pipeline
from include.payments.deps import default_deps

QUEUE = "perf-celery-chain"

app = Celery("perf-celery-chain", broker=os.environ.get("PERF_CELERY_BROKER", "memory://"))
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="perf.validate")
def validate(data: dict[str, Any]) -> str:
    """Validate and record the order (the card token looked up at the gateway).

    :param data: the order as ``POST /orders`` takes it.
    """
    return pipeline.validate(default_deps(), data)


@app.task(name="perf.charge")
def charge(order_id: str) -> str:
    """Charge the order's card at the gateway.

    :param order_id: the order.
    """
    pipeline.charge(default_deps(), order_id)
    return order_id


@app.task(name="perf.update_inventory")
def update_inventory(order_id: str) -> str:
    """Reserve the order's stock.

    :param order_id: the order.
    """
    pipeline.update_inventory(default_deps(), order_id)
    return order_id


@app.task(name="perf.send_receipt")
def send_receipt(order_id: str) -> str:
    """Send the order's receipt.

    :param order_id: the order.
    """
    pipeline.send_receipt(default_deps(), order_id)
    return order_id


@app.task(name="perf.notify_shipping")
def notify_shipping(order_id: str, submitted_at: float) -> str:
    """Tell shipping (the order completes), then record the order's latency.

    :param order_id: the order.
    :param submitted_at: when the chain was sent (``time.time()`` of the sender).
    """
    pipeline.notify_shipping(default_deps(), order_id)
    line = f"{order_id} {submitted_at:.6f} {time.time():.6f}\n".encode()
    handle = os.open(os.environ["PERF_CELERY_LATENCY_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(handle, line)
    finally:
        os.close(handle)
    return order_id


def order_chain(data: dict[str, Any], submitted_at: float) -> Signature:
    """The five steps of one order as a chain.

    :param data: the order as ``POST /orders`` takes it.
    :param submitted_at: the sender's ``time.time()``, carried to the last step.
    """
    return chain(
        validate.s(data),
        charge.s(),
        update_inventory.s(),
        send_receipt.s(),
        notify_shipping.s(submitted_at),
    )
