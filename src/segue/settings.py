"""Process-wide settings of the Segue library, read once from the environment (prefix ``SEGUE_``).

Every process (Airflow task, service, CLI, benchmark) calls :func:`get_settings` instead of
reading ``os.environ`` itself, so configuration has one documented place. Only what the library
reads is here; a workflow keeps its own settings next to its code and names itself to the
library through ``event_registry``, ``saga_modules``, ``report_pages``, ``schemas_root`` and
``timeline_sources``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path.home() / ".segue" / "segue.db"


class SegueSettings(BaseSettings):
    """Configuration the library reads in every Segue process."""

    model_config = SettingsConfigDict(env_prefix="SEGUE_", frozen=True, extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        description="SQLAlchemy URL of the business store (the workflow's tables, outbox, "
        "inbox, saga state, dead letters).",
    )
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672//",
        description="RabbitMQ URL of the event path (choreographed services).",
    )
    amqp_prefetch: int = Field(
        default=100, ge=1, le=10_000, description="Unacked messages a service consumer may hold."
    )
    event_max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Larger event bodies are parked, not processed."
    )
    relay_backlog_threshold: int = Field(
        default=5_000,
        ge=1,
        description="The outbox relay pauses while a destination queue holds more messages.",
    )
    service_health_port: int = Field(
        default=0, ge=0, description="Port of a service's /healthz and /readyz (0: any free port)."
    )
    saga_modules: tuple[str, ...] = Field(
        default=(),
        description="Modules that register saga machines (for the plugin and operators).",
    )
    event_registry: str | None = Field(
        default=None,
        description="'module:attribute' of the workflow's EventRegistry, for the event log "
        "service, the `segue events` commands and Airflow operators not given one.",
    )
    report_pages: dict[str, str] = Field(
        default_factory=dict,
        description="Report pages of the Airflow plugin: slug -> 'module:attribute' of a "
        "function returning a segue.reports.ReportPage (JSON in SEGUE_REPORT_PAGES).",
    )
    schemas_root: Path | None = Field(
        default=None,
        description="Folder the committed event schemas' paths (schema_id) are relative to.",
    )
    rollout_flag: str = Field(
        default="route",
        min_length=1,
        description="Name of the flag that routes each subject to an execution path.",
    )
    rollout_paths: tuple[str, ...] = Field(
        default=(),
        description="The execution paths the workflow's flag may route to (JSON list), in the "
        "order new buckets are handed out; the rollout commands need them.",
    )
    rollout_baseline: str | None = Field(
        default=None,
        description="The path everything goes to before any flag version and when killed.",
    )
    rollout_figures: str | None = Field(
        default=None,
        description="'module:attribute' of the workflow's figures provider for the Rollout "
        "page (see segue.rollout.figures); unset: the page shows no figures.",
    )
    timeline_sources: str | None = Field(
        default=None,
        description="'module:attribute' of the workflow's timeline factory (engine -> "
        "segue.timeline.workflow.WorkflowTimeline) for `/segue/orders/<id>` and the CLI's "
        "order timeline; unset: those answer that no sources are configured.",
    )
    shadow_pairs: str | None = Field(
        default=None,
        description="'module:attribute' of the workflow's shadow observations (real subject and "
        "its shadow, see segue.rollout.shadow.compare) for `segue rollout shadow-report` and "
        "the Rollout page; unset: no comparison is shown.",
    )
    bus_services: tuple[str, ...] = Field(
        default=(),
        description="The consuming services of the event path (JSON list), whose queue lag, "
        "retries, parked messages and outbox backlog the Event path page shows.",
    )
    rollout_stuck_after_seconds: int = Field(
        default=300,
        ge=1,
        description="A subject not terminal this long after its route decision counts as "
        "stuck (a technical failure) on the Rollout page.",
    )


@lru_cache(maxsize=1)
def get_settings() -> SegueSettings:
    """The settings of this process (read from the environment on first use)."""
    return SegueSettings()
