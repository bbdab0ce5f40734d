"""Observability, measured: does an order have one timeline that shows its whole path?

An order's timeline is built as ``segue orders timeline`` builds it (the business store's
sources and Airflow's REST API). It counts as complete when every source could be read and it
holds the route decision, the outcome and the entries of the order's own path: the DAG run and
its task tries (``dag``, ``hybrid``), the saga's transitions and its DAG run (``saga``), the
events (``events``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from tools.chaos.stack import Stack

REQUIRED_SOURCES: dict[str, set[str]] = {
    "dag": {"route", "orders", "airflow"},
    "saga": {"route", "orders", "saga", "airflow"},
    "hybrid": {"route", "orders", "airflow"},
    "events": {"route", "orders", "event"},
}


def timeline_check(stack: Stack, engine: Engine, order_id: str, path: str) -> dict[str, Any]:
    """Build ``order_id``'s timeline and say whether it is complete for ``path``.

    :param stack: where Airflow answers (its REST API is read for the DAG runs).
    :param engine: the business store.
    :param order_id: the order.
    :param path: the path it took.
    """
    from include.payments.timeline import timeline_sources
    from segue.airflow.timeline import airflow_source
    from segue.airflow.timeline_readers import rest_run_reader
    from segue.timeline.merge import build_timeline
    from tools.timeline_cli import AirflowReader

    workflow = timeline_sources(engine)
    sources = list(workflow.sources)
    reader = None
    if stack.airflow_url and stack.airflow_password:
        reader = AirflowReader(stack.airflow_url, stack.airflow_user, stack.airflow_password, 30.0)
        sources.append(airflow_source(workflow.dag_runs, rest_run_reader(reader.get_json)))
    try:
        timeline = build_timeline(order_id, sources)
    finally:
        if reader is not None:
            reader.close()
    seen = {timed.entry.source for timed in timeline.entries if not timed.entry.missing}
    lacking = sorted(REQUIRED_SOURCES[path] - seen)
    return {
        "entries": len(timeline.entries),
        "sources": sorted(seen),
        "missing": list(timeline.missing),
        "lacking": lacking,
        "complete": timeline.found and not timeline.missing and not lacking,
    }
