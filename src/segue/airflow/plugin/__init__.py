"""Segue's Airflow plugin: saga and rollout pages served inside Airflow's api-server.

``SeguePlugin`` mounts a FastAPI app at ``/segue`` (HTML pages and JSON twins) and adds
"Sagas" and "Rollout" entries to the Airflow UI's navigation that show the pages in its frame.
Registered by ``plugins/segue_plugin.py``; importing it does no I/O.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from segue.airflow.plugin.app import URL_PREFIX, create_app

__all__ = ["SeguePlugin", "create_app"]


class SeguePlugin(AirflowPlugin):
    """Adds the saga and rollout pages and API (one FastAPI app) and Browse menu entries."""

    name = "segue"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Segue sagas"}]
    external_views = [
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
