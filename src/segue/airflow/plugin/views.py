"""The saga pages: a filterable list, one page per instance, and its two action forms."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from segue.airflow.plugin.access import AccessDep
from segue.airflow.plugin.deps import ServiceDep, base_path
from segue.airflow.plugin.diagram_svg import render_svg
from segue.airflow.plugin.flash import read_flash, redirect_with_flash
from segue.airflow.plugin.present import redact
from segue.airflow.plugin.render import render
from segue.airflow.plugin.security import (
    CSRF_FIELD,
    GetUserDep,
    actor_name,
    authenticated,
    cookie_path,
    csrf_token,
    remember_csrf_token,
    verify_csrf,
)
from segue.airflow.plugin.service import (
    STATUSES,
    SagaDetail,
    can_compensate,
    can_retry,
)
from segue.statemachine.diagram import to_mermaid
from segue.statemachine.store import Instance

router = APIRouter(dependencies=[Depends(authenticated)])
FLASH_COOKIE = "segue_flash"
ACTION_DEPENDENCIES = [Depends(verify_csrf)]


@router.get("/", include_in_schema=False)
def index(request: Request) -> RedirectResponse:
    """Redirect the app's root to the saga list.

    :param request: the current request.
    """
    return RedirectResponse(f"{base_path(request)}/sagas", status_code=303)


@router.get("/sagas", response_class=HTMLResponse)
def saga_list(
    request: Request,
    service: ServiceDep,
    user: GetUserDep,
    access: AccessDep,
    state: str = "",
    status: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The saga list page, with state and status filters: the sagas of DAGs the user may read.

    :param request: the current request.
    :param service: the app's saga service.
    :param user: the logged-in Airflow user.
    :param access: what the user may see (per DAG).
    :param state: only instances in this state.
    :param status: only instances with this status.
    :param limit: at most this many (1 to 1000).
    """
    machines = access.readable(service.machines())
    instances = service.list(
        state=state or None, status=status or None, limit=limit, machines=machines
    )
    return render(
        request,
        "list.html",
        user=actor_name(user),
        instances=instances,
        state=state,
        status=status,
        limit=limit,
        statuses=STATUSES,
        known_states=service.known_states(machines),
    )


@router.get("/sagas/{instance_id}", response_class=HTMLResponse)
def saga_page(
    request: Request, instance_id: str, service: ServiceDep, user: GetUserDep, access: AccessDep
) -> Response:
    """One saga's page: diagram, data, audit trail and the retry/compensate buttons.

    :param request: the current request.
    :param instance_id: the saga instance.
    :param service: the app's saga service.
    :param user: the logged-in Airflow user.
    :param access: what the user may see and do (403 without read access to its DAG).
    """
    access.require(service.load(instance_id).machine)
    detail = service.detail(instance_id)
    instance = detail.instance
    may_act = access.allows(instance.machine, "PUT")
    token = csrf_token(request)
    flash = read_flash(request, FLASH_COOKIE)
    response = render(
        request,
        "instance.html",
        user=actor_name(user),
        instance=instance,
        data=redact(instance.data),
        context=redact(instance.context),
        trail=detail.trail,
        definition=detail.definition,
        machine_error=detail.machine_error,
        visited=detail.visited,
        svg=_svg(detail),
        mermaid=_mermaid(detail),
        may_act=may_act,
        can_retry=can_retry(instance),
        can_compensate=can_compensate(instance),
        csrf_field=CSRF_FIELD,
        csrf_token=token,
        flash=flash,
    )
    remember_csrf_token(request, response, token)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=cookie_path(request))
    return response


@router.post("/sagas/{instance_id}/retry", dependencies=ACTION_DEPENDENCIES)
def retry(
    request: Request, instance_id: str, service: ServiceDep, user: GetUserDep, access: AccessDep
) -> Response:
    """The retry button: resume the saga now, then back to its page.

    :param request: the form's POST.
    :param instance_id: the saga instance.
    :param service: the app's saga service.
    :param user: who pressed it (the audit trail's actor).
    :param access: 403 without edit access to the runs of the saga's DAG.
    """
    access.require(service.load(instance_id).machine, "PUT")
    actor = actor_name(user)
    instance = service.retry(instance_id, actor)
    return _back(request, instance, f"Retried from the current state by {actor}")


@router.post("/sagas/{instance_id}/compensate", dependencies=ACTION_DEPENDENCIES)
def compensate(
    request: Request, instance_id: str, service: ServiceDep, user: GetUserDep, access: AccessDep
) -> Response:
    """The compensate button: abandon the saga and undo its steps, then back to its page.

    :param request: the form's POST.
    :param instance_id: the saga instance.
    :param service: the app's saga service.
    :param user: who pressed it (the audit trail's actor).
    :param access: 403 without edit access to the runs of the saga's DAG.
    """
    access.require(service.load(instance_id).machine, "PUT")
    actor = actor_name(user)
    instance = service.compensate(instance_id, actor)
    return _back(request, instance, f"Compensation requested by {actor}")


def _back(request: Request, instance: Instance, what: str) -> Response:
    """Post/redirect/get: back to the instance page, with the outcome as a one-time flash."""
    text = f"{what}: now {instance.state} ({instance.status})."
    level = "error" if instance.status in ("failed", "compensation_failed") else "ok"
    url = f"{base_path(request)}/sagas/{quote(instance.id, safe='')}"
    return redirect_with_flash(request, url, FLASH_COOKIE, level, text)


def _svg(detail: SagaDetail) -> str | None:
    if detail.definition is None:
        return None
    taken = [(row["from_state"], row["to_state"]) for row in detail.trail]
    return render_svg(
        detail.definition, current=detail.instance.state, visited=detail.visited, taken=taken
    )


def _mermaid(detail: SagaDetail) -> str | None:
    """The Mermaid text of the machine, for docs and mermaid.live (the page draws the SVG)."""
    if detail.definition is None:
        return None
    return to_mermaid(detail.definition, current=detail.instance.state, visited=detail.visited)
