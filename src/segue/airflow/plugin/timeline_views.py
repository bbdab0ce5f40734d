"""The order timeline: a search page, one page per order, and its JSON twin.

``/orders`` asks for an order id; ``/orders/<id>`` shows every entry of the order's timeline
(routing, DAG run and task tries, saga transitions, events, payments, dead letters, outcome),
oldest first with the time since the previous and the first entry; a part that could not be
read is shown as missing. ``/api/orders/<id>/timeline`` answers the same as JSON. Reading needs
a logged-in user allowed to read DAG runs; an unknown order answers 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from segue.airflow.plugin.access import may_read_every_dag_run
from segue.airflow.plugin.deps import base_path
from segue.airflow.plugin.render import render
from segue.airflow.plugin.security import GetUserDep, actor_name, authenticated
from segue.airflow.plugin.timeline_service import LazyTimeline, TimelineDep, TimelineService
from segue.timeline.model import Timeline, UnknownSubject
from segue.timeline.render import describe, seconds, timeline_json
from segue.timeline.steps import path_steps

log = logging.getLogger(__name__)


READ = [Depends(authenticated), Depends(may_read_every_dag_run)]
pages_router = APIRouter(dependencies=READ)
api_router = APIRouter(dependencies=READ)


def install_timeline(app: FastAPI, factory: Callable[[], TimelineService]) -> None:
    """Add the timeline's pages and API to ``app``, with the service ``factory`` builds.

    :param app: the plugin's FastAPI app.
    :param factory: builds the :class:`TimelineService` on first use.
    """
    app.state.segue_timeline = LazyTimeline(factory)
    app.include_router(pages_router)
    app.include_router(api_router, prefix="/api")


def _timeline(service: TimelineService, order_id: str) -> Timeline:
    try:
        return service.timeline(order_id)
    except UnknownSubject as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@pages_router.get("/orders", response_class=HTMLResponse)
def search(request: Request, user: GetUserDep, order_id: str = "") -> Response:
    """The search box; with ``order_id`` set, on to that order's page.

    :param request: the current request.
    :param user: the logged-in Airflow user.
    :param order_id: the order to show (the form's field).
    """
    wanted = order_id.strip()
    if wanted:
        url = f"{base_path(request)}/orders/{quote(wanted, safe='')}"
        return RedirectResponse(url, status_code=303)
    return render(request, "order.html", user=actor_name(user), order_id="", rows=None)


@pages_router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, order_id: str, user: GetUserDep, service: TimelineDep) -> Response:
    """One order's timeline, whatever path it took.

    :param request: the current request.
    :param order_id: the order.
    :param user: the logged-in Airflow user.
    :param service: the app's timeline service.
    """
    timeline = _timeline(service, order_id)
    has_saga = any(t.entry.source == "saga" and not t.entry.missing for t in timeline.entries)
    rows = [
        {
            "entry": timed.entry,
            "since_first": seconds(timed.since_first_seconds),
            "since_previous": seconds(timed.since_previous_seconds),
            "text": describe(timed),
        }
        for timed in timeline.entries
    ]
    return render(
        request,
        "order.html",
        user=actor_name(user),
        order_id=order_id,
        rows=rows,
        missing=timeline.missing,
        steps=path_steps(timeline),
        saga_svg=_saga_svg(request, order_id) if has_saga else None,
    )


def _saga_svg(request: Request, order_id: str) -> str | None:
    """The Sagas page's diagram of the order's saga, current state marked; None if unavailable."""
    from segue.airflow.plugin.diagram_svg import render_svg

    try:
        detail = request.app.state.segue_service().detail(order_id)
    except Exception:  # the diagram is an extra: the timeline shows without it
        log.warning("no saga diagram for order %s", order_id, exc_info=True)
        return None
    if detail.definition is None:
        return None
    taken = [(row["from_state"], row["to_state"]) for row in detail.trail]
    return render_svg(
        detail.definition, current=detail.instance.state, visited=detail.visited, taken=taken
    )


@api_router.get("/orders/{order_id}/timeline")
def order_timeline(order_id: str, service: TimelineDep) -> dict[str, Any]:
    """One order's timeline as JSON: ``order_id``, ``missing`` parts and ``entries``.

    :param order_id: the order.
    :param service: the app's timeline service.
    """
    return timeline_json(_timeline(service, order_id))
