"""The Rollout page's guarded-rollout forms: start a stored plan (or one pasted as YAML or
JSON), abort a rollout, resume a held one.

Like the split's forms they need permission to edit DAG runs and the CSRF token, record the
Airflow user as the actor, and show a refusal on the page naming the field; nothing is written.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from segue.airflow.plugin.rollout_deps import RolloutDep
from segue.airflow.plugin.rollout_views import CHANGE_DEPENDENCIES, _back, _refused
from segue.airflow.plugin.security import GetUserDep, actor_name, authenticated
from segue.rollout.definition import RolloutError

router = APIRouter(dependencies=[Depends(authenticated)])


async def _form(request: Request) -> dict[str, str]:
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


@router.post("/rollout/guarded/start", dependencies=CHANGE_DEPENDENCIES)
async def start_rollout(request: Request, service: RolloutDep, user: GetUserDep) -> Response:
    """Start a guarded rollout of a stored plan (``plan_name``) or of ``plan_text``.

    :param request: the form's POST.
    :param service: the app's rollout service.
    :param user: who (recorded as the actor).
    """
    form = await _form(request)
    actor = actor_name(user)
    try:
        state = service.guard().start(
            actor, plan_name=form.get("plan_name", "").strip(), plan_text=form.get("plan_text")
        )
    except RolloutError as error:
        return _refused(request, service, user, error, form)
    return _back(
        request,
        f"Rollout {state.id} of {state.plan_name} started by {actor}: "
        f"{state.plan.candidate} at {state.weight}%.",
    )


@router.post("/rollout/guarded/{rollout_id}/abort", dependencies=CHANGE_DEPENDENCIES)
async def abort_rollout(
    rollout_id: int, request: Request, service: RolloutDep, user: GetUserDep
) -> Response:
    """Abort a rollout: the kill switch, with a reason.

    :param rollout_id: the rollout.
    :param request: the form's POST.
    :param service: the app's rollout service.
    :param user: who (recorded as the actor).
    """
    form = await _form(request)
    try:
        said = service.guard().abort(rollout_id, actor_name(user), form.get("abort_reason", ""))
    except RolloutError as error:
        if error.field == "reason":
            error = RolloutError("abort_reason", error.message)
        return _refused(request, service, user, error, form)
    return _back(request, f"Rollout {rollout_id}: {said}")


@router.post("/rollout/guarded/{rollout_id}/resume", dependencies=CHANGE_DEPENDENCIES)
async def resume_rollout(
    rollout_id: int, request: Request, service: RolloutDep, user: GetUserDep
) -> Response:
    """Resume a held rollout.

    :param rollout_id: the rollout.
    :param request: the form's POST.
    :param service: the app's rollout service.
    :param user: who (recorded as the actor).
    """
    form = await _form(request)
    try:
        said = service.guard().resume(rollout_id, actor_name(user))
    except RolloutError as error:
        return _refused(request, service, user, error, form)
    return _back(request, f"Rollout {rollout_id}: {said}")
