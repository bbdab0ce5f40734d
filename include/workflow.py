"""How the payment workflow plugs into the ``segue`` library: the settings that name it.

The library imports nothing from ``include``; every process that runs our workflow (Airflow's
components and tasks, the services, the CLI, the tests) gets these variables, which name the
payment events, saga machines and report pages by import path.
"""

from __future__ import annotations

import json
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EVENT_REGISTRY = "include.payments.events:PAYMENT_EVENTS"
SAGA_MODULES = ("include.payments.saga", "include.payments.saga_bridged")
# The traffic split's flag: the execution paths an order may take, in the order new buckets
# are handed out, and the baseline (before any flag version, and what the kill switch picks).
ROLLOUT_FLAG = "route"
ROLLOUT_PATHS = ("dag", "saga", "hybrid", "events")
ROLLOUT_BASELINE = "dag"
REPORT_PAGES = {"operations": "include.payments.operations_page:operations_page"}
# What the Rollout page shows per path (orders accepted, completed, failed, latency).
ROLLOUT_FIGURES = "include.payments.rollout_figures:path_figures"
# The sources of one order's timeline (`segue orders timeline`, the plugin's order page).
TIMELINE_SOURCES = "include.payments.timeline:timeline_sources"
# Shadow mode: each mirrored order and its shadow, observed for the comparator.
SHADOW_PAIRS = "include.payments.shadow_pairs:shadow_pairs"
# The consumers whose queues and outbox the plugin's Event path page shows (include.services).
BUS_SERVICES = (
    "validation",
    "inventory",
    "charge",
    "receipt",
    "shipping",
    "event-log",
    "saga-replies",
    "airflow-handover",
)


def workflow_env() -> dict[str, str]:
    """``SEGUE_*`` variables that point the library at the payment workflow."""
    return {
        "SEGUE_EVENT_REGISTRY": EVENT_REGISTRY,
        "SEGUE_SAGA_MODULES": json.dumps(list(SAGA_MODULES)),
        "SEGUE_REPORT_PAGES": json.dumps(REPORT_PAGES),
        "SEGUE_SCHEMAS_ROOT": str(PROJECT_ROOT),
        "SEGUE_ROLLOUT_FLAG": ROLLOUT_FLAG,
        "SEGUE_ROLLOUT_PATHS": json.dumps(list(ROLLOUT_PATHS)),
        "SEGUE_ROLLOUT_BASELINE": ROLLOUT_BASELINE,
        "SEGUE_ROLLOUT_FIGURES": ROLLOUT_FIGURES,
        "SEGUE_TIMELINE_SOURCES": TIMELINE_SOURCES,
        "SEGUE_SHADOW_PAIRS": SHADOW_PAIRS,
        "SEGUE_BUS_SERVICES": json.dumps(list(BUS_SERVICES)),
    }
