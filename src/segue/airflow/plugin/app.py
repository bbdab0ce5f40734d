"""The FastAPI app Airflow's api-server mounts at ``/segue``: saga pages, the workflow's report
pages (``reports``), the rollout, one timeline per order (``timeline_views``), and their JSON
twins.

Built at import (Airflow reads ``fastapi_apps`` from the plugin class) but lazy: the store, its
engine and the machine registry are created on the first request, so importing the plugin does
no I/O. Tests pass ``service_factory`` to use their own database.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from segue.airflow.plugin import api, reports, views
from segue.airflow.plugin.bus_views import OverviewReader, default_overview, install_bus_views
from segue.airflow.plugin.render import render
from segue.airflow.plugin.rollout_api import install_rollout
from segue.airflow.plugin.rollout_deps import default_rollout
from segue.airflow.plugin.rollout_service import RolloutService
from segue.airflow.plugin.security import login_url
from segue.airflow.plugin.service import SagaConflict, SagaNotFound, SagaService
from segue.airflow.plugin.timeline_service import TimelineService, default_timeline
from segue.airflow.plugin.timeline_views import install_timeline
from segue.reports import ReportProvider

URL_PREFIX = "/segue"
ServiceFactory = Callable[[], SagaService]


def default_service() -> SagaService:
    """The business store of ``SEGUE_DATABASE_URL`` and the machines of ``SEGUE_SAGA_MODULES``."""
    from segue.settings import get_settings
    from segue.statemachine.registry import dag_ids_for, machine_for
    from segue.statemachine.store import SagaStore
    from segue.store.engine import shared_engine

    store = SagaStore(shared_engine(get_settings().database_url))
    return SagaService(store, machine_for, dag_ids_for)


class LazyService:
    """Builds the service once, on first use, from any thread of the server's pool."""

    def __init__(self, factory: ServiceFactory) -> None:
        """A service built on its first call, once, however many requests race for it.

        :param factory: builds the service (opens the saga store).
        """
        self._factory = factory
        self._service: SagaService | None = None
        self._lock = threading.Lock()

    def __call__(self) -> SagaService:
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = self._factory()
        return self._service


def create_app(
    *,
    service_factory: ServiceFactory | None = None,
    report_pages: Mapping[str, ReportProvider | str] | None = None,
    rollout_factory: Callable[[], RolloutService] | None = None,
    timeline_factory: Callable[[], TimelineService] | None = None,
    bus_overview: OverviewReader | None = None,
) -> FastAPI:
    """The plugin's FastAPI app: HTML pages, the JSON API under /api, and their error pages.

    :param service_factory: builds the saga service (default: from this process's settings).
    :param report_pages: the workflow's report pages, slug -> provider or its
        ``module:attribute`` (default: ``SEGUE_REPORT_PAGES``, read on first use).
    :param rollout_factory: builds the rollout service (default: from this process's settings).
    :param timeline_factory: builds the order timeline service (default: from this process's
        settings, ``SEGUE_TIMELINE_SOURCES``).
    :param bus_overview: reads the Event path page's figures (default: this process's broker,
        business store and ``SEGUE_BUS_SERVICES``).
    """
    # No public /docs or /openapi.json: every route of this app needs a logged-in user
    # (/api/openapi.json serves the JSON API's description to them).
    app = FastAPI(title="Segue sagas", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.segue_service = LazyService(service_factory or default_service)
    app.state.segue_reports = reports.ReportPages(report_pages)
    app.include_router(views.router)
    app.include_router(reports.pages_router)
    app.include_router(api.router, prefix="/api")
    app.include_router(reports.api_router, prefix="/api")
    install_rollout(app, rollout_factory or default_rollout)
    install_timeline(app, timeline_factory or default_timeline)
    install_bus_views(app, bus_overview or default_overview)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SagaNotFound, _not_found)
    app.add_exception_handler(SagaConflict, _conflict)
    return app


def _route_path(request: Request) -> str:
    return request.url.path.removeprefix(request.scope.get("root_path", "").rstrip("/"))


def _wants_json(request: Request) -> bool:
    return _route_path(request).startswith("/api/")


def _instance_id(request: Request) -> str | None:
    """The saga a failed page or action was about (for a link back to it)."""
    match = re.match(r"^/sagas/([^/]+)", _route_path(request))
    return unquote(match.group(1)) if match else None


def error_response(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """JSON ``{"detail": ...}`` under /api, an HTML page elsewhere; same status code.

    :param request: decides JSON or HTML.
    :param status_code: the response's status.
    :param message: what went wrong, for the reader.
    :param headers: extra response headers.
    """
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code, headers=headers)
    return render(
        request,
        "error.html",
        status_code=status_code,
        headers=headers,
        code=status_code,
        message=message,
        instance_id=_instance_id(request),
        login_url=login_url(request) if status_code == 401 else None,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(request, exc.status_code, str(exc.detail), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if _wants_json(request):
        return JSONResponse({"detail": exc.errors()}, 422)
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return error_response(request, 422, f"invalid request: {problems}")


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, str(exc.args[0]) if exc.args else "not found")


async def _conflict(request: Request, exc: Exception) -> Response:
    return error_response(request, 409, str(exc))
