"""The guarded rollout's REST API (``/segue/api/rollout/guarded...``), JSON.

Authenticated and protected like the split's API (:mod:`segue.airflow.plugin.rollout_api`):
reading needs a logged-in user, changes need permission to edit DAG runs and same-site JSON
when sent with the cookie; a refusal answers 422 naming the field and writes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from segue.airflow.plugin.rollout_api import CHANGE_DEPENDENCIES
from segue.airflow.plugin.rollout_deps import RolloutDep
from segue.airflow.plugin.security import GetUserDep, actor_name, authenticated
from segue.rollout.guard_model import RolloutState

router = APIRouter(
    prefix="/rollout/guarded", tags=["guarded rollout"], dependencies=[Depends(authenticated)]
)


class StartRequest(BaseModel):
    """Start a guarded rollout: a stored plan by name, a plan as JSON, or YAML/JSON text.

    :param plan_name: a stored plan (its newest version).
    :param plan: a plan (``name``, ``flag``, ``baseline``, ``candidate``, ``steps``, ``checks``).
    :param plan_text: a plan file's text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan_name: str | None = None
    plan: dict[str, Any] | None = None
    plan_text: str | None = None


class AbortRequest(BaseModel):
    """Abort a rollout through the kill switch.

    :param reason: why (required, recorded).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = ""


@router.get("")
def guarded_status(service: RolloutDep) -> dict[str, Any]:
    """The stored plans, the latest rollouts (newest first) and the newest one's measurements.

    :param service: the app's rollout service.
    """
    found = service.guard().status()
    return {
        "flag": service.flag().name,
        "plans": [plan.model_dump(mode="json") for plan in found.plans],
        "rollouts": [rollout_json(state) for state in found.rollouts],
        "evaluations": [e.model_dump(mode="json") for e in found.evaluations],
    }


@router.post("", dependencies=CHANGE_DEPENDENCIES, status_code=201)
def start_rollout(body: StartRequest, service: RolloutDep, user: GetUserDep) -> dict[str, Any]:
    """Start a guarded rollout as the Airflow user.

    :param body: which plan.
    :param service: the app's rollout service.
    :param user: who (recorded).
    """
    state = service.guard().start(
        actor_name(user), plan_name=body.plan_name, plan=body.plan, plan_text=body.plan_text
    )
    return rollout_json(state)


@router.post("/{rollout_id}/abort", dependencies=CHANGE_DEPENDENCIES)
def abort_rollout(
    rollout_id: int, body: AbortRequest, service: RolloutDep, user: GetUserDep
) -> dict[str, Any]:
    """Abort a rollout (kill switch) as the Airflow user.

    :param rollout_id: the rollout.
    :param body: the reason.
    :param service: the app's rollout service.
    :param user: who (recorded).
    """
    return {"rollout_id": rollout_id, "done": service.guard().abort(rollout_id,
            actor_name(user), body.reason)}  # fmt: skip


@router.post("/{rollout_id}/resume", dependencies=CHANGE_DEPENDENCIES)
def resume_rollout(rollout_id: int, service: RolloutDep, user: GetUserDep) -> dict[str, Any]:
    """Resume a held rollout as the Airflow user.

    :param rollout_id: the rollout.
    :param service: the app's rollout service.
    :param user: who (recorded).
    """
    return {"rollout_id": rollout_id, "done": service.guard().resume(rollout_id, actor_name(user))}


def rollout_json(state: RolloutState) -> dict[str, Any]:
    """A rollout as JSON.

    :param state: the rollout.
    """
    return state.model_dump(mode="json")
