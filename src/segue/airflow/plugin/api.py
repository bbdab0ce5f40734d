"""JSON twins of the saga pages, for scripts (bearer token from Airflow's ``/auth/token``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from segue.airflow.plugin.access import AccessDep
from segue.airflow.plugin.deps import ServiceDep
from segue.airflow.plugin.present import instance_json, trail_json
from segue.airflow.plugin.security import authenticated

router = APIRouter(dependencies=[Depends(authenticated)])


@router.get("/sagas")
def list_sagas(
    service: ServiceDep,
    access: AccessDep,
    state: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Saga instances of DAGs the caller may read, newest first, optionally filtered (JSON).

    :param service: the app's saga service.
    :param access: what the caller may see (per DAG).
    :param state: only instances in this state.
    :param status: only instances with this status.
    :param limit: at most this many (1 to 1000).
    """
    instances = service.list(
        state=state or None,
        status=status or None,
        limit=limit,
        machines=access.readable(service.machines()),
    )
    return {"instances": [instance_json(i) for i in instances], "count": len(instances)}


@router.get("/sagas/{instance_id}")
def get_saga(instance_id: str, service: ServiceDep, access: AccessDep) -> dict[str, Any]:
    """One saga instance with its audit trail and the states it visited (JSON).

    :param instance_id: the saga instance.
    :param service: the app's saga service.
    :param access: 403 without read access to the runs of the saga's DAG.
    """
    access.require(service.load(instance_id).machine)
    detail = service.detail(instance_id)
    return {
        "instance": instance_json(detail.instance),
        "trail": trail_json(detail.trail),
        "visited": detail.visited,
        "machine_error": detail.machine_error,
    }
