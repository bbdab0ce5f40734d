"""Run readers for the Airflow part of a timeline: REST API v2 (outside Airflow) and the
metadata database (inside Airflow's api-server, the plugin).

A ``DagRunRef`` with a run id reads that run; one with only ``conf`` finds the DAG's runs whose
conf holds those items (the metadata reader asks the database; the REST reader looks through
the DAG's latest ``CONF_SEARCH_LIMIT`` runs, which the API cannot filter by conf).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from segue.airflow.timeline import RunFacts, RunReader, TaskTry, add_try
from segue.timeline.workflow import DagRunRef

GetJson = Callable[[str], dict[str, Any] | None]
"""``path under /api/v2 (with its query) -> JSON``, None for 404; raises when Airflow cannot
answer."""

CONF_SEARCH_LIMIT = 100


def _holds(conf: Any, wanted: dict[str, str]) -> bool:
    return isinstance(conf, dict) and all(str(conf.get(k)) == v for k, v in wanted.items())


def rest_run_reader(get_json: GetJson) -> RunReader:
    """Reads runs through Airflow's REST API v2: the run, its task instances, and the earlier
    tries of tasks tried more than once.

    :param get_json: GETs a path under ``/api/v2`` (None on 404).
    """

    def one(dag_id: str, run: dict[str, Any]) -> RunFacts:
        base = f"/dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}"
        listing = get_json(f"{base}/taskInstances") or {"task_instances": []}
        tries: dict[tuple[str, int, int], TaskTry] = {}
        for ti in listing["task_instances"]:
            if ti.get("try_number", 0) > 1:
                earlier = get_json(f"{base}/taskInstances/{ti['task_id']}/tries") or {}
                for old in earlier.get("task_instances", []):
                    if old.get("map_index", -1) == ti.get("map_index", -1):
                        add_try(tries, old)
            add_try(tries, ti)
        return RunFacts(
            dag_id=dag_id,
            run_id=run["dag_run_id"],
            state=run.get("state"),
            queued_at=run.get("queued_at"),
            start_date=run.get("start_date"),
            end_date=run.get("end_date"),
            tries=tuple(tries.values()),
        )

    def read(ref: DagRunRef) -> Sequence[RunFacts]:
        if ref.run_id is not None:
            run = get_json(f"/dags/{ref.dag_id}/dagRuns/{quote(ref.run_id, safe='')}")
            return [] if run is None else [one(ref.dag_id, run)]
        query = f"?order_by=-run_after&limit={CONF_SEARCH_LIMIT}"
        listing = get_json(f"/dags/{ref.dag_id}/dagRuns{query}") or {"dag_runs": []}
        return [one(ref.dag_id, r) for r in listing["dag_runs"] if _holds(r.get("conf"), ref.conf)]

    return read


def metadata_run_reader() -> RunReader:
    """Reads runs from Airflow's metadata database (inside an Airflow process: the plugin).

    Current tries come from ``task_instance``, earlier ones from ``task_instance_history``.
    """

    def read(ref: DagRunRef) -> Sequence[RunFacts]:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(DagRun).where(DagRun.dag_id == ref.dag_id)
        if ref.run_id is not None:
            query = query.where(DagRun.run_id == ref.run_id)
        else:
            for key, value in ref.conf.items():
                query = query.where(DagRun.conf[key].as_string() == value)
            query = query.order_by(DagRun.id.desc()).limit(CONF_SEARCH_LIMIT)
        found: list[RunFacts] = []
        with create_session() as session:
            for run in session.scalars(query):
                tries: dict[tuple[str, int, int], TaskTry] = {}
                for model in (TaskInstanceHistory, TaskInstance):
                    rows = session.scalars(
                        select(model).where(model.dag_id == run.dag_id, model.run_id == run.run_id)
                    )
                    for ti in rows:
                        add_try(tries, _columns(ti))
                found.append(
                    RunFacts(
                        dag_id=run.dag_id,
                        run_id=run.run_id,
                        state=_state(run.state),
                        queued_at=run.queued_at,
                        start_date=run.start_date,
                        end_date=run.end_date,
                        tries=tuple(tries.values()),
                    )
                )
        return found

    return read


def _columns(ti: Any) -> dict[str, Any]:
    return {
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "state": _state(ti.state),
        "start_date": ti.start_date,
        "end_date": ti.end_date,
        "map_index": ti.map_index,
    }


def _state(value: Any) -> str | None:
    """An Airflow state enum (or plain string) as its value."""
    if value is None:
        return None
    return str(getattr(value, "value", value))
