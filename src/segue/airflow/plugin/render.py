"""Server-rendered HTML: Jinja2 templates (autoescaped) with the app's paths and filters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from segue.airflow.plugin.deps import base_path
from segue.airflow.plugin.present import timestamp

TEMPLATES = Path(__file__).with_name("templates")

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["ts"] = timestamp
environment.filters["qid"] = lambda value: quote(str(value), safe="")
environment.filters["pretty"] = lambda value: json.dumps(
    value, indent=2, sort_keys=True, default=str, ensure_ascii=False
)


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """An HTML page from a template, with the mount path and the user's context filled in.

    :param request: the current request (gives the mount path).
    :param template: the template's file name.
    :param status_code: the response's status.
    :param headers: extra response headers.
    :param context: the template's variables.
    """
    base = base_path(request)
    page = environment.get_template(template).render(
        base=base, airflow_root=base.rsplit("/", 1)[0] or "/", **context
    )
    return HTMLResponse(page, status_code=status_code, headers=headers)
