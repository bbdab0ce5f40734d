"""Settings of the payment workflow, read once from the environment (prefix ``SEGUE_``).

The library's :class:`segue.settings.SegueSettings` keeps what the library uses (database,
broker, event registry, ...); what only the payment workflow reads lives here. The prefix is the
same, so every ``SEGUE_*`` variable keeps its name. Each process calls
:func:`get_payment_settings` instead of reading ``os.environ`` itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PaymentSettings(BaseSettings):
    """Configuration of the payment workflow: the gateway, step retries and reply timeouts."""

    model_config = SettingsConfigDict(env_prefix="SEGUE_", frozen=True, extra="ignore")

    gateway_url: str = Field(
        default="http://127.0.0.1:8099", description="Base URL of the payment gateway."
    )
    gateway_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Per-request timeout when calling the gateway."
    )
    intake_host: str = Field(
        default="127.0.0.1",
        description="Address the order intake's HTTP API listens on (0.0.0.0 in a container).",
    )
    intake_port: int = Field(
        default=8097, ge=0, description="Port of the order intake's HTTP API (POST /orders)."
    )
    intake_rate_per_second: float = Field(
        default=200.0,
        gt=0,
        description="Orders a second one API client may send the intake, sustained (else 429).",
    )
    intake_rate_burst: int = Field(
        default=400, ge=1, description="Orders one API client may send at once after a pause."
    )
    intake_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest order body the intake reads (else 413)."
    )
    intake_router: Literal["flag", "events"] = Field(
        default="flag",
        description="How the intake picks a new order's path: ``flag`` evaluates the traffic "
        "split and records a route decision; ``events`` sends every order to the event path "
        "without either (the event-path benchmark's baseline without routing).",
    )
    retries: int = Field(default=3, ge=0, description="Retries per pipeline step.")
    retry_delay_seconds: float = Field(
        default=10.0, gt=0, description="First retry delay; doubles on each retry."
    )
    max_retry_delay_seconds: float = Field(
        default=300.0, gt=0, description="Upper bound on the retry delay."
    )
    charge_reply_timeout_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How long payment_hybrid waits for the charge service's reply before it "
        "fails the order (and refunds a charge that comes later).",
    )
    reconciliation_grace_seconds: float = Field(
        default=1800.0,
        ge=0,
        description="payment_reconciliation leaves a charge this recent on an open or unknown "
        "order for its next run (a path may still record it).",
    )

    # The hand-over of DAG-bound orders to Airflow (include/services/airflow_handover.py).
    airflow_api_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL of Airflow's api-server (REST API v2 and /auth/token).",
    )
    airflow_username: str = Field(
        default="admin", description="The Airflow user the hand-over logs in as."
    )
    airflow_password: str = Field(
        default="",
        repr=False,
        description="That user's password (for `airflow standalone`: its generated one).",
    )
    airflow_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Per-request timeout when calling Airflow's API."
    )
    airflow_handover_max_attempts: int = Field(
        default=3600,
        ge=1,
        description="Delayed retries (about one a second, more while Airflow is down) of an "
        "order whose DAG run could not be triggered before its message is parked.",
    )

    # Batched runs of front-door orders (include/payments/batch_queue.py, dags/*_batch.py).
    front_door_batch: bool = Field(
        default=True,
        description="Orders the front door routes to ``dag`` or ``saga`` wait in the batch "
        "queue for payment_pipeline_batch / payment_state_machine_batch (false: one run per "
        "order through the airflow-handover service, as before).",
    )
    batch_max_orders: int = Field(
        default=200, ge=1, description="Most orders one batched DAG run takes (N)."
    )
    batch_max_wait_seconds: float = Field(
        default=2.0,
        gt=0,
        description="A batch run starts once N orders are ready or the oldest waited this long.",
    )
    batch_claim_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="How long a batch may wait for the run it was announced to before its "
        "queue's watcher announces it again (a lost event; a worker slow to start the run).",
    )
    batch_lease_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A batch run's claim on its orders; after it, a later run takes them over.",
    )
    batch_step_threads: int = Field(
        default=8, ge=1, description="Orders of a batch one step task works on at once."
    )
    batch_max_active_runs: int = Field(
        default=3, ge=1, description="Batched runs of one DAG running at once."
    )


@lru_cache(maxsize=1)
def get_payment_settings() -> PaymentSettings:
    """The payment settings of this process (read from the environment on first use)."""
    return PaymentSettings()
