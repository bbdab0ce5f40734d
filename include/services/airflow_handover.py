"""The hand-over of DAG-bound orders to Airflow: OrderRouted in, one DAG run per order out.

``python -m include.services.airflow_handover`` consumes OrderRouted from its durable quorum
queue (``segue.airflow-handover``) and triggers the order's run through Airflow's REST API v2,
with the run id the intake derived from the order id (``routing.dag_run_id_for``) and the
order as the run's conf (``order_form.conf_for``, exactly the DAG's form). It then announces
DagRunTriggered with the run id, so the run shows in the order's timeline.

At least once, one run per order: the message is acked only after the trigger and the
DagRunTriggered row commit. A crash between the trigger and the ack redelivers the message;
triggering again is answered 409 (the run exists), which counts as handed over. Airflow down
(refused, 5xx, login failing) raises AirflowUnavailable, a NotYet: the message goes through the
delay queue, up to ``SEGUE_AIRFLOW_HANDOVER_MAX_ATTEMPTS`` times, and only then is parked. A
run Airflow refuses for good (a 4xx such as a conf its form rejects) is parked at once with the
answer as its reason (``segue events parked``).
"""

from __future__ import annotations

import logging
from functools import partial

from include.payments.events import PAYMENT_EVENTS, DagRunTriggered, OrderRouted
from include.payments.order_form import conf_for
from include.payments.settings import PaymentSettings, get_payment_settings
from include.services.airflow_runs import AirflowRuns
from segue.bus.handlers import HandlerContext, ServiceSpec

NAME = "airflow-handover"
logger = logging.getLogger(__name__)


def on_order_routed(runs: AirflowRuns, ctx: HandlerContext, event: OrderRouted) -> None:
    """Trigger the order's DAG run (or find it triggered) and announce it."""
    order_id = event.order.order_id
    context = {**ctx.envelope.log_context(), "dag_id": event.dag_id, "dag_run_id": event.dag_run_id}
    note = f"order {order_id} handed over by {NAME} (correlation_id {ctx.envelope.correlationid})"
    result = runs.trigger(event.dag_id, event.dag_run_id, conf_for(event.order), note=note)
    run_id = result.dag_run_id
    if result.created:
        logger.info("order %s handed over: run %s", order_id, run_id, extra=context)
    else:
        logger.info(
            "order %s already handed over: run %s exists",
            order_id,
            result.dag_run_id,
            extra=context,
        )
    ctx.emit(
        DagRunTriggered(
            order_id=order_id,
            path=event.path,
            dag_id=result.dag_id,
            dag_run_id=result.dag_run_id,
            already_existed=not result.created,
        )
    )


def airflow_runs(settings: PaymentSettings) -> AirflowRuns:
    """The Airflow client of ``settings`` (nothing is contacted until the first trigger).

    :param settings: the payment settings (``SEGUE_AIRFLOW_*``).
    """
    return AirflowRuns(
        settings.airflow_api_url,
        username=settings.airflow_username,
        password=settings.airflow_password,
        timeout_seconds=settings.airflow_timeout_seconds,
    )


def airflow_handover_service(runs: AirflowRuns, *, max_attempts: int | None = None) -> ServiceSpec:
    """The hand-over service's spec over ``runs``.

    :param runs: the Airflow client.
    :param max_attempts: delayed retries while Airflow is unavailable before parking (None:
        ``SEGUE_AIRFLOW_HANDOVER_MAX_ATTEMPTS``).
    """
    if max_attempts is None:
        max_attempts = get_payment_settings().airflow_handover_max_attempts
    return ServiceSpec(
        name=NAME,
        handlers={OrderRouted.event_type: partial(on_order_routed, runs)},
        registry=PAYMENT_EVENTS,
        not_yet_limit=max_attempts,
    )


def main() -> None:
    from include.services import run  # declares every consumer's queue

    settings = get_payment_settings()
    if not settings.airflow_password:
        logger.warning("SEGUE_AIRFLOW_PASSWORD is empty: logging in to Airflow will likely fail")
    runs = airflow_runs(settings)
    try:
        run(airflow_handover_service(runs))
    finally:
        runs.close()


if __name__ == "__main__":
    main()
