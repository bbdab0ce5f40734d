"""Segue's Airflow plugin: saga, rollout and a workflow's report pages inside Airflow's api-server.

``SeguePlugin`` mounts a FastAPI app at ``/segue`` (HTML pages and JSON twins) and adds
"Sagas" and "Rollout" entries to the Airflow UI's navigation that show the pages in its frame,
plus one entry per report page named in ``SEGUE_REPORT_PAGES`` (e.g. "Operations").
Registered by ``plugins/segue_plugin.py``; importing it does no I/O (it reads the environment).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from segue.airflow.plugin.app import URL_PREFIX, create_app
from segue.airflow.plugin.reports import configured_pages
from segue.reports import nav_name

__all__ = ["SeguePlugin", "create_app", "nav_views"]


def nav_views(report_slugs: list[str]) -> list[dict[str, Any]]:
    """The navigation entries: Sagas, Rollout, then one per report page.

    :param report_slugs: the configured report pages' slugs.
    """
    views = [
        {
            "name": "Sagas",
            "href": f"{URL_PREFIX}/sagas",
            "destination": "nav",
            "url_route": "sagas",
            "category": "browse",
        },
        {
            "name": "Rollout",
            "href": f"{URL_PREFIX}/rollout",
            "destination": "nav",
            "url_route": "rollout",
            "category": "browse",
        },
    ]
    for slug in report_slugs:
        views.append(
            {
                "name": nav_name(slug),
                "href": f"{URL_PREFIX}/reports/{slug}",
                "destination": "nav",
                "url_route": f"segue-{slug}",
                "category": "browse",
            }
        )
    return views


class SeguePlugin(AirflowPlugin):
    """Adds the saga, rollout and report pages and API (one FastAPI app) and Browse menu entries."""

    name = "segue"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Segue sagas"}]
    external_views = nav_views(list(configured_pages()))
