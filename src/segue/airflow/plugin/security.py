"""Who may use the saga pages, and how the two action forms are kept safe from CSRF.

Authentication is Airflow's own FastAPI dependency, so the pages accept exactly what Airflow's
REST API accepts: a bearer token from ``POST /auth/token`` or the ``_token`` cookie the UI's
login sets (``get_user`` reads both). Authorization is per DAG (``access``): reading a saga
needs read access to its DAG's runs, retrying or compensating needs edit access. Tests
override ``get_user`` and ``access.dag_authorizer``.

CSRF: the actions are POST-only; Airflow's ``_token`` cookie is ``SameSite=Lax`` (browsers do
not send it on cross-site POSTs); and a cookie-authenticated POST must also carry a
double-submit token (a random ``segue_csrf`` cookie, ``SameSite=Strict``, echoed in a hidden
form field) and, when the browser sends one, an ``Origin`` of this host. Requests that carry a
bearer token are not driven by ambient cookies and skip the token check.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    get_user,
    requires_authenticated,
)
from fastapi import HTTPException, Request, Response, status

from segue.airflow.plugin.access import may_edit_every_dag_run

__all__ = [
    "CSRF_FIELD",
    "GetUserDep",
    "actor_name",
    "authenticated",
    "csrf_token",
    "get_user",
    "login_url",
    "may_edit_dag_runs",
    "remember_csrf_token",
    "verify_csrf",
]

authenticated = requires_authenticated()
"""Any logged-in Airflow user; 401 without credentials, 403 with an invalid token."""

may_edit_dag_runs = may_edit_every_dag_run
"""Permission to edit the runs of every DAG (``access.may_edit_every_dag_run``): changing the
traffic split moves orders between the DAGs' paths. The Sagas actions check one DAG instead
(``access.saga_access``)."""

CSRF_COOKIE = "segue_csrf"
CSRF_FIELD = "csrf_token"


def login_url(request: Request) -> str | None:
    """Airflow's login page, coming back to this request's page (None outside Airflow).

    :param request: the page to come back to.
    """
    try:
        url = get_auth_manager().get_url_login(next_url=str(request.url))
    except RuntimeError:  # no auth manager: served alone (tests)
        return None
    return url if url.startswith(("http:", "https:")) else _airflow_root(request) + url


def _airflow_root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/").rsplit("/", 1)[0]


def actor_name(user: BaseUser) -> str:
    """The name recorded in the audit trail for an action taken by ``user``."""
    return user.get_name() or user.get_id()


def cookie_path(request: Request) -> str:
    """Where this app is mounted (``/segue`` inside Airflow), so cookies stay ours.

    :param request: the current request.
    """
    return request.scope.get("root_path", "").rstrip("/") or "/"


def csrf_token(request: Request) -> str:
    """The browser's current CSRF token, or a new one (set it with remember_csrf_token).

    :param request: the current request.
    """
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def remember_csrf_token(request: Request, response: Response, token: str) -> None:
    """Set the CSRF cookie on ``response`` unless the browser already holds this token.

    :param request: the current request (its cookies and scheme).
    :param response: the response that sets the cookie.
    :param token: the token the page's form carries.
    """
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


async def verify_csrf(request: Request) -> None:
    """Reject a cookie-authenticated POST that did not come from our own form.

    :param request: the POST; bearer-token requests pass, others need same origin and the token.
    """
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.cookies.get(CSRF_COOKIE)
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "missing or stale form token: reload the page and retry"
        )
