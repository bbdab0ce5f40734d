"""FastAPI dependencies shared by the pages and the JSON routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from segue.airflow.plugin.service import SagaService


def saga_service(request: Request) -> SagaService:
    """The app's service (built on first use; see ``create_app``).

    :param request: the current request.
    """
    return request.app.state.segue_service()


ServiceDep = Annotated[SagaService, Depends(saga_service)]


def base_path(request: Request) -> str:
    """Where this app is mounted (``/segue`` inside Airflow, ``""`` when served alone).

    :param request: the current request.
    """
    return request.scope.get("root_path", "").rstrip("/")
