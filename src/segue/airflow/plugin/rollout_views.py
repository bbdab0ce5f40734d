"""The Rollout page: the split in force, its history, live figures per path, and two forms.

Reading needs a logged-in Airflow user; the forms (a new split, the kill switch) need permission
to edit DAG runs and the Sagas pages' CSRF protection, and record the Airflow user as the actor.
A refused change shows the page again with the RolloutError naming the field (422, or 409 when
someone else changed the flag first) and the form as it was sent; nothing is written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from segue.airflow.plugin.deps import base_path
from segue.airflow.plugin.flash import read_flash, redirect_with_flash
from segue.airflow.plugin.render import render
from segue.airflow.plugin.rollout_chart import chart_svg
from segue.airflow.plugin.rollout_deps import RolloutDep
from segue.airflow.plugin.rollout_guard_service import GuardedStatus
from segue.airflow.plugin.rollout_service import RolloutService
from segue.airflow.plugin.rollout_shadow import shadow_view
from segue.airflow.plugin.security import (
    CSRF_FIELD,
    GetUserDep,
    actor_name,
    authenticated,
    cookie_path,
    csrf_token,
    may_edit_dag_runs,
    remember_csrf_token,
    verify_csrf,
)
from segue.rollout.definition import ConcurrentChange, RolloutError
from segue.rollout.figures import DEFAULT_WINDOW, WINDOWS, window_of

router = APIRouter(dependencies=[Depends(authenticated)])
FLASH_COOKIE = "segue_rollout_flash"
CHANGE_DEPENDENCIES = [Depends(may_edit_dag_runs), Depends(verify_csrf)]


@router.get("/rollout", response_class=HTMLResponse)
def rollout_page(
    request: Request, service: RolloutDep, user: GetUserDep, window: str = DEFAULT_WINDOW
) -> Response:
    """The Rollout page for the last ``window`` (``15m``, ``1h`` or ``24h``).

    :param request: the current request.
    :param service: the app's rollout service.
    :param user: the logged-in Airflow user.
    :param window: how far back the figures look.
    """
    try:
        window_of(window)
    except RolloutError as error:
        return _page(request, service, user, DEFAULT_WINDOW, error=error, status_code=422)
    flash = read_flash(request, FLASH_COOKIE)
    response = _page(request, service, user, window, flash=flash)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=cookie_path(request))
    return response


@router.post("/rollout/split", dependencies=CHANGE_DEPENDENCIES)
async def change_split(request: Request, service: RolloutDep, user: GetUserDep) -> Response:
    """The split form: a weight per path, the sticky key and a reason; a new version.

    :param request: the form's POST.
    :param service: the app's rollout service.
    :param user: who sent it (recorded as the actor).
    """
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    actor = actor_name(user)
    try:
        flag = service.flag()
        changes: dict[str, Any] = {"weights": _weights(form, flag.paths)}
        if form.get("sticky_key", "").strip():
            changes["sticky_key"] = form["sticky_key"].strip()
        version = service.set_split(
            changes,
            actor,
            form.get("reason", ""),
            expected_version=_expected_version(form),
        )
    except RolloutError as error:
        return _refused(request, service, user, error, form)
    shares = ", ".join(f"{p}={version.definition.share(p)}%" for p in flag.paths)
    return _back(request, f"Version {version.version} by {actor}: {shares}.")


@router.post("/rollout/kill", dependencies=CHANGE_DEPENDENCIES)
async def kill_switch(request: Request, service: RolloutDep, user: GetUserDep) -> Response:
    """The kill switch: every new decision to the baseline, with a reason.

    :param request: the form's POST.
    :param service: the app's rollout service.
    :param user: who pressed it (recorded as the actor).
    """
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    actor = actor_name(user)
    try:
        version = service.kill(
            actor, form.get("kill_reason", ""), expected_version=_expected_version(form)
        )
    except RolloutError as error:
        if error.field == "reason":
            error = RolloutError("kill_reason", error.message)
        return _refused(request, service, user, error, form)
    baseline = version.definition.baseline
    return _back(
        request, f"Killed by {actor} (version {version.version}): new orders go to {baseline}."
    )


def _weights(form: dict[str, str], paths: tuple[str, ...]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for path in paths:
        raw = form.get(f"weight_{path}", "").strip()
        if not raw:
            continue
        if not raw.isdigit():
            raise RolloutError(f"weights.{path}", f"{raw!r} is not a whole percent (0 to 100)")
        if int(raw):
            weights[path] = int(raw)
    return weights


def _expected_version(form: dict[str, str]) -> int | None:
    raw = form.get("expected_version", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise RolloutError("expected_version", f"{raw!r} is not a version number")
    return int(raw)


def _refused(
    request: Request,
    service: RolloutService,
    user: Any,
    error: RolloutError,
    form: dict[str, str],
) -> Response:
    status_code = 409 if isinstance(error, ConcurrentChange) else 422
    return _page(
        request, service, user, DEFAULT_WINDOW, error=error, form=form, status_code=status_code
    )


def _page(
    request: Request,
    service: RolloutService,
    user: Any,
    window: str,
    *,
    error: RolloutError | None = None,
    form: dict[str, str] | None = None,
    flash: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    try:
        status = service.status(window)
        history = service.history()
        guarded = service.guard().status()
    except RolloutError as problem:  # the flag itself is misconfigured
        return render(
            request,
            "error.html",
            status_code=503,
            code=503,
            message=f"the rollout is not configured: {problem}",
            instance_id=None,
            login_url=None,
        )
    token = csrf_token(request)
    response = render(
        request,
        "rollout.html",
        status_code=status_code,
        user=actor_name(user),
        status=status,
        definition=status.version.definition,
        history=history,
        guarded=guarded,
        charts=guard_charts(guarded),
        shadow=shadow_view(service),
        windows=list(WINDOWS),
        error=error,
        form=form or {},
        flash=flash,
        csrf_field=CSRF_FIELD,
        csrf_token=token,
    )
    remember_csrf_token(request, response, token)
    return response


def guard_charts(guarded: GuardedStatus) -> dict[str, str]:
    """One inline SVG chart per check of the newest rollout, by check name (shown with
    ``|safe``: every text in it is escaped by :mod:`segue.airflow.plugin.rollout_chart`).

    :param guarded: the guarded rollouts as the service read them.
    """
    latest = guarded.latest
    if latest is None:
        return {}
    return {
        check.name: chart_svg(check, [e for e in guarded.evaluations if e.check == check.name])
        for check in latest.plan.checks
    }


def _back(request: Request, text: str) -> Response:
    """Post/redirect/get: back to the page, with the outcome as a one-time flash."""
    return redirect_with_flash(request, f"{base_path(request)}/rollout", FLASH_COOKIE, "ok", text)
