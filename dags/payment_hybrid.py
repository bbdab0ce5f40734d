"""
### payment_hybrid: the linear path with the charge delegated to the charge service

One run per order: **validate → request_charge → await_charge → settle_charge →
update_inventory → send_receipt → notify_shipping**, with the same form as `payment_pipeline`.

`request_charge` publishes a `ChargeRequested` command on RabbitMQ (its reply queue is declared
first, its event id is the same on every retry). `await_charge` is a deferrable sensor: it
waits in the triggerer, not on a worker, for `ChargeCompleted` or `ChargeFailed`.
`settle_charge` fails the order on `ChargeFailed` (dead-lettered like the pipeline does, no
retry) and otherwise lets the remaining steps run.

No reply within `SEGUE_CHARGE_REPLY_TIMEOUT_SECONDS` (900 s by default) fails `await_charge`;
its failure callback dead-letters the charge step and fails the order. The command may still
be in the charge service's queue: the service then answers `ChargeFailed` (`order_failed`)
without charging, and a charge it made just before is refunded by the callback.

Needs the Airflow connection `segue_amqp` (e.g. `AIRFLOW_CONN_SEGUE_AMQP`) and the charge
service (`python -m include.services.charge`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from include.payment_dags import (
    dead_letter_failed_task,
    notify_shipping,
    order_params,
    payment_default_args,
    run_payment_step,
    send_receipt,
    update_inventory,
    validate,
)
from include.payments import followups
from include.payments.events import ChargeCompleted, ChargeFailed, ChargeRequested
from include.payments.settings import get_payment_settings
from segue.airflow.hooks.amqp import AmqpHook
from segue.airflow.operators.amqp import PublishEventOperator
from segue.airflow.sensors.amqp import EventSensor

settings = get_payment_settings()
REPLIES = [ChargeCompleted.event_type, ChargeFailed.event_type]


@dag(
    dag_id="payment_hybrid",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "hybrid", "events"],
    params=order_params(),
    on_failure_callback=dead_letter_failed_task,  # the failed task: also when it was SIGKILLed
    default_args=payment_default_args(),
)
def payment_hybrid() -> None:
    order_id = validate()
    request_charge = PublishEventOperator(
        task_id="request_charge",
        event_type=ChargeRequested.event_type,
        data={"order_id": order_id},
        subject=order_id,
        correlation_id=order_id,
        await_reply_types=REPLIES,
    )
    await_charge = EventSensor(
        task_id="await_charge",
        correlation_id=order_id,
        event_types=REPLIES,
        caused_by=request_charge.output,
        timeout=settings.charge_reply_timeout_seconds,
    )

    @task
    def settle_charge(order_id: str, reply: dict[str, Any]) -> dict[str, Any]:
        try:
            return run_payment_step(
                "charge", order_id, lambda _: followups.settle_charge_reply(reply)
            )
        finally:
            with AmqpHook() as hook:  # the reply is kept in XCom: its queue can go
                hook.delete_reply_queue(order_id, REPLIES)

    settled = settle_charge(order_id, await_charge.output)
    request_charge >> await_charge
    settled >> update_inventory(order_id) >> send_receipt(order_id) >> notify_shipping(order_id)


payment_hybrid()
