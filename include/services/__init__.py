"""The choreographed payment services, one module each (``python -m include.services.<name>``).

Each module holds plain handlers over typed events (no Kombu) and a factory of its
``ServiceSpec``; ``segue.bus.runtime`` is the shell that consumes, dispatches and commits.
``include.services.intake`` is not a consumer: it records OrderPlaced for the HTTP front.
``include.services.airflow_handover`` consumes OrderRouted and triggers DAG runs in Airflow: it
runs next to Airflow (``AIRFLOW_PROCESSES``), started once Airflow is up.
"""

from __future__ import annotations

from collections.abc import Callable

from include.payments.gateway_client import GatewayClient
from segue.bus.handlers import ServiceSpec

# Every consuming service by name (its queue is ``segue.<name>``) and the module that runs it.
SERVICE_MODULES = {
    "validation": "include.services.validation",
    "inventory": "include.services.inventory",
    "charge": "include.services.charge",
    "receipt": "include.services.receipt",
    "shipping": "include.services.shipping",
}

# Every process of the event path: the consumers above, the event log, the order intake and
# saga-replies (hands charge replies to bridged sagas and relays their commands).
EVENT_PATH_PROCESSES = {
    **SERVICE_MODULES,
    "event-log": "segue.eventlog.service",
    "intake": "include.services.intake_http",
    "saga-replies": "include.services.saga_replies",
}

# The processes that hand orders to Airflow (they need its API URL and a login).
AIRFLOW_PROCESSES = {"airflow-handover": "include.services.airflow_handover"}


def payment_services(gateway: GatewayClient) -> list[ServiceSpec]:
    """The specs of every payment service, in flow order (charge calls ``gateway``)."""
    # Imported here so ``python -m include.services.<name>`` does not import itself twice.
    from include.services.charge import charge_service
    from include.services.inventory import inventory_service
    from include.services.receipt import receipt_service
    from include.services.shipping import shipping_service
    from include.services.validation import validation_service

    return [
        validation_service(),
        inventory_service(),
        charge_service(gateway),
        receipt_service(),
        shipping_service(),
    ]


def consumer_specs() -> list[ServiceSpec]:
    """Every consumer of payment events (the services and the event log), for the topology.

    Each service process declares all their queues, so an event published while its consumer
    is down waits in that consumer's queue instead of being unroutable.
    """
    from include.payments.events import PAYMENT_EVENTS
    from include.payments.settings import get_payment_settings
    from include.services.airflow_handover import airflow_handover_service, airflow_runs
    from include.services.saga_replies import saga_replies_service
    from segue.eventlog.service import event_log_service

    # Only the routing keys are used here, never the gateway or Airflow themselves.
    settings = get_payment_settings()
    gateway = GatewayClient(settings.gateway_url)
    return [
        *payment_services(gateway),
        event_log_service(PAYMENT_EVENTS),
        saga_replies_service(),
        airflow_handover_service(airflow_runs(settings)),
    ]


def run(spec: ServiceSpec) -> None:
    """The ``main`` of a payment service process: runs ``spec`` until SIGTERM."""
    from include.payments.database import COMPONENTS
    from segue.bus.runtime import run_service

    run_service(spec, peers=consumer_specs(), components=COMPONENTS)


def run_with_gateway(make_spec: Callable[[GatewayClient], ServiceSpec]) -> None:
    """``run`` for a service that calls the gateway, with a client from this process's settings."""
    from include.payments.settings import get_payment_settings

    settings = get_payment_settings()
    gateway = GatewayClient(settings.gateway_url, timeout_seconds=settings.gateway_timeout_seconds)
    try:
        run(make_spec(gateway))
    finally:
        gateway.close()
