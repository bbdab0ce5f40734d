"""Report pages a workflow registers (``segue.reports``), rendered by the plugin.

``/reports/<slug>`` renders the page its provider returns; ``/api/reports/<slug>`` is the JSON
twin. Which pages exist is configuration (``SEGUE_REPORT_PAGES``), so the plugin knows no
workflow; ``create_app(report_pages=...)`` takes them directly (tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from segue.airflow.plugin.render import render
from segue.airflow.plugin.security import GetUserDep, actor_name, authenticated
from segue.reports import ReportPage, ReportProvider, check_slugs, load_provider, nav_name

log = logging.getLogger(__name__)

pages_router = APIRouter(dependencies=[Depends(authenticated)])
api_router = APIRouter(dependencies=[Depends(authenticated)])


def configured_pages() -> dict[str, str]:
    """The report pages of ``SEGUE_REPORT_PAGES`` (slug -> ``module:attribute``)."""
    from segue.settings import get_settings

    return check_slugs(get_settings().report_pages)


class ReportPages:
    """The app's report providers by slug, imported on first use (importing the plugin does
    no I/O and imports no workflow code)."""

    def __init__(self, pages: Mapping[str, ReportProvider | str] | None) -> None:
        """The providers of ``pages`` (None: those of ``SEGUE_REPORT_PAGES``, read lazily).

        :param pages: slug -> provider, or slug -> its ``module:attribute``.
        """
        self._given = pages
        self._providers: dict[str, ReportProvider | str] | None = None
        self._lock = threading.Lock()

    def slugs(self) -> list[str]:
        """The pages' slugs, in configuration order."""
        return list(self._all())

    def page(self, slug: str) -> ReportPage:
        """The page ``slug`` now, from its provider.

        :param slug: a configured page.
        :raises HTTPException: 404 for an unknown slug, 500 when the provider fails.
        """
        providers = self._all()
        if slug not in providers:
            raise HTTPException(404, f"no report page {slug!r}")
        provider = providers[slug]
        try:
            if isinstance(provider, str):
                provider = load_provider(provider)
            page = provider()
        except Exception as exc:
            log.exception("report page %s failed", slug)
            raise HTTPException(500, f"report page {slug!r} failed: {exc}") from exc
        if not isinstance(page, ReportPage):
            raise HTTPException(500, f"report page {slug!r} returned {type(page).__name__}")
        return page

    def _all(self) -> dict[str, ReportProvider | str]:
        if self._providers is None:
            with self._lock:
                if self._providers is None:
                    given = self._given if self._given is not None else configured_pages()
                    self._providers = dict(given)
        return self._providers


def _pages(request: Request) -> ReportPages:
    return request.app.state.segue_reports


@pages_router.get("/reports/{slug}", response_class=HTMLResponse)
def report_page(request: Request, slug: str, user: GetUserDep) -> Response:
    """A report page a workflow registered.

    :param request: the current request.
    :param slug: the page's slug.
    :param user: the logged-in Airflow user.
    """
    pages = _pages(request)
    return render(
        request,
        "report.html",
        user=actor_name(user),
        slug=slug,
        page=pages.page(slug),
        reports=[(other, nav_name(other)) for other in pages.slugs()],
    )


@api_router.get("/reports/{slug}")
def report_json(request: Request, slug: str) -> dict[str, Any]:
    """A report page's content as JSON.

    :param request: the current request.
    :param slug: the page's slug.
    """
    return _pages(request).page(slug).model_dump(mode="json")
