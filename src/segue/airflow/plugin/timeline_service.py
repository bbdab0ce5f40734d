"""The order timeline behind ``/segue/orders/<id>``: the workflow's sources plus Airflow's part.

The workflow's sources come from the factory ``SEGUE_TIMELINE_SOURCES`` names, over the
business store of ``SEGUE_DATABASE_URL``; the Airflow part is read from Airflow's metadata
database (the plugin runs inside the api-server). Built lazily on the first request, so
importing the plugin does no I/O and imports no workflow code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from segue.airflow.timeline import RunReader, airflow_source
from segue.timeline.merge import build_timeline, require_found
from segue.timeline.model import Timeline
from segue.timeline.workflow import WorkflowTimeline


class TimelineService:
    """Builds one order's timeline from a workflow's sources and, when given, Airflow's runs."""

    def __init__(self, workflow: WorkflowTimeline, read_run: RunReader | None) -> None:
        """The service over ``workflow``'s sources.

        :param workflow: the workflow's sources and ``dag_runs``.
        :param read_run: reads a DAG run from Airflow (None: no Airflow part).
        """
        self._workflow = workflow
        self._read_run = read_run

    def timeline(self, order_id: str) -> Timeline:
        """The order's timeline; UnknownSubject when no source knows it.

        :param order_id: the order.
        """
        sources = list(self._workflow.sources)
        if self._read_run is not None:
            sources.append(airflow_source(self._workflow.dag_runs, self._read_run))
        return require_found(build_timeline(order_id, sources))


def default_timeline() -> TimelineService:
    """The workflow of ``SEGUE_TIMELINE_SOURCES`` over ``SEGUE_DATABASE_URL``, with Airflow's
    metadata as the Airflow part."""
    from segue.airflow.timeline_readers import metadata_run_reader
    from segue.settings import get_settings
    from segue.store.engine import shared_engine
    from segue.timeline.workflow import load_timeline_factory

    settings = get_settings()
    factory = load_timeline_factory(settings.timeline_sources)
    return TimelineService(factory(shared_engine(settings.database_url)), metadata_run_reader())


class LazyTimeline:
    """Builds the timeline service once, on first use, from any thread of the server's pool."""

    def __init__(self, factory: Callable[[], TimelineService]) -> None:
        """A service built on its first call, once, however many requests race for it.

        :param factory: builds the service (loads the workflow's sources).
        """
        self._factory = factory
        self._service: TimelineService | None = None
        self._lock = threading.Lock()

    def __call__(self) -> TimelineService:
        if self._service is None:
            with self._lock:
                if self._service is None:
                    try:
                        self._service = self._factory()
                    except (ValueError, TypeError, ImportError) as exc:
                        raise HTTPException(
                            status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"order timelines are not configured: {exc}",
                        ) from exc
        return self._service


def timeline_service(request: Request) -> TimelineService:
    """The app's timeline service (built on first use; see ``create_app``).

    :param request: the current request.
    """
    return request.app.state.segue_timeline()


TimelineDep = Annotated[TimelineService, Depends(timeline_service)]
