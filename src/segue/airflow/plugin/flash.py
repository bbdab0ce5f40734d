"""One-time flash messages of the plugin's forms: post, redirect, get, then show the outcome once.

The message rides in a short-lived, HttpOnly, ``SameSite=Strict`` cookie set on the redirect and
deleted by the page that shows it.
"""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from segue.airflow.plugin.security import cookie_path

FLASH_MAX_AGE_SECONDS = 120


def redirect_with_flash(request: Request, url: str, cookie: str, level: str, text: str) -> Response:
    """A 303 to ``url`` carrying ``text`` as the page's one-time flash.

    :param request: the form's request (for the cookie's path and scheme).
    :param url: where to go back to.
    :param cookie: the flash cookie's name (one per page).
    :param level: ``ok`` or ``error``.
    :param text: what to show.
    """
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        cookie,
        quote(json.dumps({"level": level, "text": text})),
        path=cookie_path(request),
        max_age=FLASH_MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def read_flash(request: Request, cookie: str) -> dict[str, str] | None:
    """The flash the last redirect left (None when there is none or it is malformed).

    :param request: the page's request.
    :param cookie: the flash cookie's name.
    """
    raw = request.cookies.get(cookie)
    if not raw:
        return None
    try:
        flash = json.loads(unquote(raw))
    except ValueError:
        return None
    if not isinstance(flash, dict):
        return None
    return {"level": str(flash.get("level", "ok")), "text": str(flash.get("text", ""))}
