"""The rollout's REST API under the plugin (``/segue/api/rollout...``), JSON, and its OpenAPI.

Authenticated like Airflow's own API (a bearer token from ``POST /auth/token`` or the UI's
cookie, through the same dependencies); changes need permission to edit DAG runs. A refused
change answers 422 naming the field (``{"detail", "field", "message"}``), a change based on a
version no longer in force 409; nothing is written either way. A cookie-authenticated change
must be ``application/json`` (which a cross-site page cannot send without a CORS preflight)
and, when the browser sends one, from this host's ``Origin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from segue.airflow.plugin.deps import base_path
from segue.airflow.plugin.rollout_deps import LazyRollout, RolloutDep
from segue.airflow.plugin.rollout_service import RolloutService, RolloutStatus
from segue.airflow.plugin.security import (
    GetUserDep,
    actor_name,
    authenticated,
    may_edit_dag_runs,
)
from segue.rollout.definition import ConcurrentChange, RolloutError
from segue.rollout.figures import DEFAULT_WINDOW
from segue.rollout.store import Change, FlagVersion


async def json_from_this_site(request: Request) -> None:
    """Refuse a cookie-authenticated change that is not same-origin JSON (CSRF).

    :param request: the PUT or POST; bearer-token requests pass.
    """
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the change as application/json"
        )


router = APIRouter(prefix="/rollout", tags=["rollout"], dependencies=[Depends(authenticated)])
CHANGE_DEPENDENCIES = [Depends(may_edit_dag_runs), Depends(json_from_this_site)]


class SplitChange(BaseModel):
    """A new split: fields left out (or null) keep their value in force; turns the kill off.

    :param weights: percent per path, whole numbers summing to 100 (paths left out get 0).
    :param baseline: the kill switch's path.
    :param sticky_key: the evaluation-context attribute to bucket by.
    :param rules: targeting rules (``attribute``, ``operator``, ``value``, ``path``).
    :param reason: why (required, recorded).
    :param expected_version: refuse with 409 unless this version is in force.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[str, int]
    baseline: str | None = None
    sticky_key: str | None = None
    rules: list[dict[str, Any]] | None = None
    reason: str = ""
    expected_version: int | None = Field(default=None, ge=0)


class KillRequest(BaseModel):
    """The kill switch.

    :param reason: why (required, recorded).
    :param expected_version: refuse with 409 unless this version is in force.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = ""
    expected_version: int | None = Field(default=None, ge=0)


@router.get("")
def rollout_status(service: RolloutDep, window: str = DEFAULT_WINDOW) -> dict[str, Any]:
    """The split in force and the figures per path of the last ``window`` (15m, 1h, 24h).

    :param service: the app's rollout service.
    :param window: how far back the figures look.
    """
    return status_json(service.status(window))


@router.get("/history")
def rollout_history(service: RolloutDep) -> dict[str, Any]:
    """Every change of the flag, newest first: who, when, old, new, what changed, why.

    :param service: the app's rollout service.
    """
    changes = service.history()
    return {"flag": service.flag().name, "changes": [change_json(c) for c in changes]}


@router.put("/split", dependencies=CHANGE_DEPENDENCIES)
def put_split(body: SplitChange, service: RolloutDep, user: GetUserDep) -> dict[str, Any]:
    """Write a new version of the split, with the Airflow user as the actor.

    :param body: the change.
    :param service: the app's rollout service.
    :param user: who (recorded).
    """
    changes = body.model_dump(include={"weights", "baseline", "sticky_key", "rules"})
    version = service.set_split(
        changes, actor_name(user), body.reason, expected_version=body.expected_version
    )
    return version_json(version)


@router.post("/kill", dependencies=CHANGE_DEPENDENCIES)
def post_kill(body: KillRequest, service: RolloutDep, user: GetUserDep) -> dict[str, Any]:
    """Turn the kill switch on: every new decision to the baseline.

    :param body: the reason and the version it is based on.
    :param service: the app's rollout service.
    :param user: who (recorded).
    """
    version = service.kill(actor_name(user), body.reason, expected_version=body.expected_version)
    return version_json(version)


openapi_router = APIRouter(dependencies=[Depends(authenticated)])


@openapi_router.get("/openapi.json", include_in_schema=False)
def plugin_openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document of the plugin's JSON API (``/api/...``), for logged-in users.

    :param request: the current request (its app's routes and mount path).
    """
    routes = [r for r in request.app.routes if getattr(r, "path", "").startswith("/api/")]
    return get_openapi(
        title="Segue plugin API",
        version="1",
        description="Sagas and the rollout of the traffic split, inside Airflow's api-server.",
        routes=routes,
        servers=[{"url": base_path(request) or "/"}],
    )


def version_json(version: FlagVersion) -> dict[str, Any]:
    """A flag version as JSON (its bucket layout left out).

    :param version: the version.
    """
    return version.model_dump(mode="json", exclude={"layout"})


def change_json(change: Change) -> dict[str, Any]:
    """One history entry as JSON.

    :param change: the entry.
    """
    return change.model_dump(mode="json")


def status_json(found: RolloutStatus) -> dict[str, Any]:
    """The status as JSON: flag, version in force, window, figures per path (or null).

    :param found: what the service returned.
    """
    return {
        "flag": found.flag.model_dump(mode="json"),
        "version": version_json(found.version),
        "window": found.window,
        "since": found.since.isoformat(),
        "until": found.until.isoformat(),
        "figures_configured": found.figures is not None or found.figures_error is not None,
        "figures": None
        if found.figures is None
        else {f.path: f.model_dump(mode="json") for f in found.figures},
        "figures_error": found.figures_error,
    }


def install_rollout(app: FastAPI, factory: Callable[[], RolloutService]) -> None:
    """Add the Rollout page, its API and their error answers to the plugin's ``app``.

    :param app: the plugin's FastAPI app.
    :param factory: builds the rollout service on first use.
    """
    from segue.airflow.plugin import rollout_guard_api, rollout_guard_views, rollout_views

    app.state.segue_rollout = LazyRollout(factory)
    app.include_router(rollout_views.router)
    app.include_router(rollout_guard_views.router)
    app.include_router(router, prefix="/api")
    app.include_router(rollout_guard_api.router, prefix="/api")
    app.include_router(openapi_router, prefix="/api")
    app.add_exception_handler(RolloutError, _refused)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RolloutError)
    code = 409 if isinstance(exc, ConcurrentChange) else 422
    mount = request.scope.get("root_path", "").rstrip("/")
    if request.url.path.removeprefix(mount).startswith("/api/"):
        body = {"detail": str(exc), "field": exc.field, "message": exc.message}
        return JSONResponse(body, code)
    from segue.airflow.plugin.app import error_response

    return error_response(request, code, f"refused, nothing changed: {exc}")
