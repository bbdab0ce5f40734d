"""The Event path page: each service's queue lag, retries, parked messages and outbox backlog.

``/event-path`` shows :func:`segue.bus.overview.read_overview` as a table that refreshes itself;
``/api/event-path`` answers the same as JSON. The services are those of ``SEGUE_BUS_SERVICES``;
the broker and database those of ``SEGUE_AMQP_URL`` and ``SEGUE_DATABASE_URL``. Reading needs a
logged-in user allowed to read DAG runs, like the order timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from segue.airflow.plugin.access import may_read_every_dag_run
from segue.airflow.plugin.render import render
from segue.airflow.plugin.security import GetUserDep, actor_name, authenticated
from segue.bus.overview import BusOverview, read_overview

OverviewReader = Callable[[], BusOverview]
# Seconds between the page's own refreshes.
REFRESH_SECONDS = 5

READ = [Depends(authenticated), Depends(may_read_every_dag_run)]
pages_router = APIRouter(dependencies=READ)
api_router = APIRouter(dependencies=READ)


def default_overview() -> BusOverview:
    """The overview of this process's configured services, broker and business store."""
    from segue.settings import get_settings
    from segue.store.engine import shared_engine

    settings = get_settings()
    return read_overview(
        amqp_url=settings.amqp_url,
        engine=shared_engine(settings.database_url),
        services=settings.bus_services,
    )


def install_bus_views(app: FastAPI, reader: OverviewReader) -> None:
    """Add the Event path page and its JSON twin to ``app``.

    :param app: the plugin's FastAPI app.
    :param reader: reads the overview at each request.
    """
    app.state.segue_bus_overview = reader
    app.include_router(pages_router)
    app.include_router(api_router, prefix="/api")


def _read(request: Request) -> BusOverview:
    reader: OverviewReader = request.app.state.segue_bus_overview
    return reader()


@pages_router.get("/event-path", response_class=HTMLResponse)
def event_path_page(request: Request, user: GetUserDep) -> Response:
    """Every service's lag, retries, parked messages and outbox backlog, refreshed every few s.

    :param request: the current request.
    :param user: the logged-in Airflow user.
    """
    return render(
        request,
        "event_path.html",
        user=actor_name(user),
        overview=_read(request),
        refresh_seconds=REFRESH_SECONDS,
    )


@api_router.get("/event-path")
def event_path_json(request: Request) -> dict[str, Any]:
    """The overview as JSON: ``services`` (one object each), ``missing`` and ``read_at``.

    :param request: the current request.
    """
    return _read(request).model_dump(mode="json")
