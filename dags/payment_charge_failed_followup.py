"""
### payment_charge_failed_followup: a follow-up for every failed charge

Scheduled by the asset `segue://payments/charge-failed`, which an `AssetWatcher` feeds from
RabbitMQ: every `ChargeFailed` event (from the choreography or the hybrid DAG) becomes an asset
event, at least once — the message is acked only after Airflow has stored the asset event, so
a triggerer crash cannot lose it. Several events may arrive in one run.

`record_followups` writes one `payment_followups` row per event (idempotent on the event id):
a declined card → *ask the customer to update their card*; a rejected request or a missing
order → *investigate*.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

from include.payments import followups, retry
from include.payments.events import ChargeFailed
from segue.airflow.triggers.amqp_watcher import AmqpEventTrigger
from segue.settings import get_settings
from segue.store.engine import session_scope

WATCHER = "charge_failed_followup"  # its queue: segue.airflow.charge_failed_followup

charge_failed = Asset(
    name="payments_charge_failed",
    uri="segue://payments/charge-failed",
    watchers=[
        AssetWatcher(
            name=WATCHER,
            trigger=AmqpEventTrigger(name=WATCHER, routing_keys=[ChargeFailed.event_type]),
        )
    ],
)


@dag(
    dag_id="payment_charge_failed_followup",
    schedule=[charge_failed],
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "events", "followup"],
    default_args={"owner": "payments", **retry.FOLLOWUP_TASK_RETRIES},
)
def payment_charge_failed_followup() -> None:
    @task
    def record_followups() -> list[str]:
        events = get_current_context()["triggering_asset_events"][charge_failed]
        envelopes: list[dict[str, Any]] = [
            event.extra["payload"] for event in events if "payload" in (event.extra or {})
        ]
        engine = followups.followups_engine(get_settings().database_url)
        with session_scope(engine) as session:
            return followups.record_followups(session, envelopes)

    record_followups()


payment_charge_failed_followup()
