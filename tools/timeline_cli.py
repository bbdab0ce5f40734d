"""``segue orders timeline ORDER_ID``: one order's timeline, whatever path it took.

The workflow's sources (``include.payments.timeline``) read the business store; the Airflow
part (the DAG run and its task tries) is read through Airflow's REST API v2 as the payment
settings' ``SEGUE_AIRFLOW_*`` user (for ``segue up``'s Airflow, the admin's generated password
is read from ``.airflow`` when none is set). When Airflow cannot be reached the timeline still
prints, with a line saying that part is missing. Exit codes: 0 shown, 1 no such order.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from segue.cli import CliContext


def add_timeline_command(order_commands: Any) -> None:
    """Register ``orders timeline`` on the ``orders`` command's subparsers.

    :param order_commands: the subparsers of ``segue orders``.
    """
    timeline = order_commands.add_parser(
        "timeline", help="one order's routing, runs, saga, events, payments and outcome"
    )
    timeline.add_argument("order_id", help="the order")
    timeline.add_argument("--json", action="store_true", help="print JSON instead of text")
    timeline.add_argument("--url", help="database URL (default: the one `segue up` uses)")
    timeline.add_argument(
        "--airflow-url", help="Airflow's api-server (default: SEGUE_AIRFLOW_API_URL)"
    )
    timeline.add_argument("--no-airflow", action="store_true", help="leave the Airflow part out")
    timeline.add_argument(
        "--gateway", action="store_true", help="also list the gateway's ledger of charge attempts"
    )
    timeline.add_argument("--gateway-url", help="the gateway (default: SEGUE_GATEWAY_URL)")
    timeline.set_defaults(run=order_timeline)


def order_timeline(args: argparse.Namespace, context: CliContext) -> int:
    """Print ``args.order_id``'s timeline; 0 when some source knows the order, else 1.

    :param args: ``order_id``, ``json``, and optionally ``url``, ``airflow_url``, ``no_airflow``,
        ``gateway`` and ``gateway_url``.
    :param context: gives the default database URL.
    """
    from include.payments.database import payments_engine
    from include.payments.timeline import timeline_sources
    from segue.airflow.timeline import airflow_source
    from segue.airflow.timeline_readers import rest_run_reader
    from segue.timeline.merge import build_timeline
    from segue.timeline.render import render_text, timeline_json

    gateway = _gateway(args.gateway_url) if args.gateway or args.gateway_url else None
    workflow = timeline_sources(payments_engine(args.url or context.database_url()), gateway)
    sources = list(workflow.sources)
    client = None if args.no_airflow else AirflowReader.from_settings(args.airflow_url)
    try:
        if client is not None:
            sources.append(airflow_source(workflow.dag_runs, rest_run_reader(client.get_json)))
        timeline = build_timeline(args.order_id, sources)
    finally:
        if client is not None:
            client.close()
        if gateway is not None:
            gateway.close()
    if not timeline.found:
        missing = f" (could not read: {', '.join(timeline.missing)})" if timeline.missing else ""
        print(f"segue orders timeline: no such order: {args.order_id}{missing}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(timeline_json(timeline), indent=2))
    else:
        print(render_text(timeline))
    return 0


class AirflowReader:
    """GETs under ``/api/v2`` with a bearer token; None on 404, an error on anything else."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float) -> None:
        """A client of the api-server at ``base_url``, logging in on first use.

        :param base_url: e.g. ``http://127.0.0.1:8080``.
        :param username: the Airflow user.
        :param password: its password.
        :param timeout: seconds per request.
        """
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    @classmethod
    def from_settings(cls, base_url: str | None = None) -> AirflowReader:
        """From the payment settings (``SEGUE_AIRFLOW_*``), or ``segue up``'s generated password.

        :param base_url: overrides ``SEGUE_AIRFLOW_API_URL``.
        """
        from include.payments.settings import get_payment_settings

        settings = get_payment_settings()
        password = settings.airflow_password or _local_password(settings.airflow_username)
        return cls(
            base_url or settings.airflow_api_url,
            settings.airflow_username,
            password,
            settings.airflow_timeout_seconds,
        )

    def get_json(self, path: str) -> dict[str, Any] | None:
        """The JSON at ``/api/v2<path>``; None when Airflow answers 404.

        :param path: e.g. ``/dags/payment_pipeline/dagRuns/order__o-1``.
        """
        if self._token is None:
            login = self._http.post("/auth/token", json=self._credentials)
            if login.status_code not in (200, 201):
                raise RuntimeError(f"Airflow login failed: HTTP {login.status_code}")
            self._token = login.json()["access_token"]
        response = self._http.get(
            f"/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"}
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()


def _gateway(url: str | None) -> Any:
    """A gateway client for the ledger, at ``url`` or ``SEGUE_GATEWAY_URL``."""
    from include.payments.gateway_client import GatewayClient
    from include.payments.settings import get_payment_settings

    settings = get_payment_settings()
    return GatewayClient(
        url or settings.gateway_url, timeout_seconds=settings.gateway_timeout_seconds
    )


def _local_password(username: str) -> str:
    """The password ``segue up``'s Airflow generated for ``username`` ("" when there is none)."""
    from tools.airflow_stack import AirflowStack
    from tools.up import LOCAL_HOME

    try:
        return AirflowStack(home=LOCAL_HOME, metadata_url="").password_of(username)
    except (OSError, KeyError, ValueError):
        return ""
