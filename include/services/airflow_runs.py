"""Triggering one DAG run per order through Airflow's REST API v2, telling outages from refusals.

The run is created with the official client (``apache-airflow-client``, whose
``TriggerDAGRunPostBody`` always sends ``logical_date``, null when unset, as Airflow 3 needs).
Only the status is read of the answer (``..._without_preload_content``): the run exists once
Airflow says 2xx or 409, whatever the client's response model thinks of the body;
the bearer token comes from ``POST /auth/token``, which is the auth manager's endpoint and not
in the client, so it is fetched with httpx. Every run id is chosen by the caller, so a second
trigger of the same run is answered 409 Conflict (Airflow 3.3 maps the unique-constraint
violation on ``dag_run (dag_id, run_id)`` to 409): that is success, the run exists.

What the caller gets: a TriggerResult (created now, or found), AirflowUnavailable (a NotYet:
connection refused or timed out, 5xx, 429, a login that fails, 401 twice, a DAG not parsed yet)
or AirflowRefused (an Unprocessable: any other 4xx, e.g. a conf the DAG's form rejects). While
Airflow is unavailable a circuit stays open with a doubling delay (1 s up to 30 s), during which
calls fail at once without touching the network, so a backlog does not hammer a recovering
api-server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import urllib3
from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

from segue.bus.handlers import NotYet, Unprocessable

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
BODY_CHARS = 500
RETRYABLE_STATUSES = frozenset({401, 408, 425, 429})


class AirflowUnavailable(NotYet):
    """Airflow cannot take the run now (down, overloaded, login failing): retry later."""


class AirflowRefused(Unprocessable):
    """Airflow refused the run for good (a 4xx other than 401/404/409/429): park it."""

    def __init__(self, status: int, reason: str) -> None:
        """:param status: the HTTP status Airflow answered.
        :param reason: what it said.
        """
        super().__init__("airflow_refused", reason)
        self.status = status


@dataclass(frozen=True)
class TriggerResult:
    """A DAG run that exists: ``created`` now, or found (409: an earlier try created it)."""

    dag_id: str
    dag_run_id: str
    created: bool


class Circuit:
    """Open after a failure for a doubling delay; closed (and reset) by a success."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """:param clock: monotonic seconds (a test passes its own)."""
        self.clock = clock
        self.delay = FIRST_DELAY_SECONDS
        self.open_until = 0.0
        self.reason = ""

    def check(self) -> None:
        """AirflowUnavailable while open (no call is made then)."""
        remaining = self.open_until - self.clock()
        if remaining > 0:
            raise AirflowUnavailable(f"{self.reason} (next try in {remaining:.1f}s)")

    def failed(self, reason: str) -> AirflowUnavailable:
        """Open for the current delay, double it; the error to raise.

        :param reason: why Airflow is unavailable.
        """
        self.open_until = self.clock() + self.delay
        log.warning("%s; the hand-over waits %.0fs before trying again", reason, self.delay)
        self.delay = min(self.delay * 2, MAX_DELAY_SECONDS)
        self.reason = reason
        return AirflowUnavailable(reason)

    def succeeded(self) -> None:
        """Closed, back to the first delay."""
        if self.reason:
            log.info("Airflow answers again (after: %s)", self.reason)
        self.delay, self.open_until, self.reason = FIRST_DELAY_SECONDS, 0.0, ""


class AirflowRuns:
    """Triggers DAG runs on one Airflow as one user; nothing is contacted before the first call.

    Not thread-safe: one per consuming thread.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """:param base_url: the api-server, e.g. ``http://127.0.0.1:8080``.
        :param username: the Airflow user.
        :param password: its password.
        :param timeout_seconds: per request.
        :param clock: monotonic seconds for the circuit.
        """
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout_seconds = timeout_seconds
        self.circuit = Circuit(clock)
        self._token: str | None = None
        self._client: ApiClient | None = None

    def close(self) -> None:
        """Release the HTTP connections."""
        if self._client is not None:
            self._client.rest_client.pool_manager.clear()  # the client has no close of its own
            self._client = None

    def trigger(
        self, dag_id: str, dag_run_id: str, conf: Mapping[str, Any], *, note: str = ""
    ) -> TriggerResult:
        """Create run ``dag_run_id`` of ``dag_id`` with ``conf`` unless it exists.

        :param dag_id: the DAG.
        :param dag_run_id: the run's id, derived from what it processes.
        :param conf: the run's conf (the DAG's form fields).
        :param note: the run's note in the UI.
        """
        self.circuit.check()
        body = TriggerDAGRunPostBody(
            dag_run_id=dag_run_id, logical_date=None, conf=dict(conf), note=note or None
        )
        for fresh_token in (False, True):
            try:
                response = self._runs(fresh_token).trigger_dag_run_without_preload_content(
                    dag_id, body, _request_timeout=self.timeout_seconds
                )
                status, text = response.status, response.data.decode(errors="replace")
                response.release_conn()
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self.circuit.failed(f"Airflow unreachable: {exc!r}") from exc
            if status in (200, 201) or status == 409:
                self.circuit.succeeded()
                return TriggerResult(dag_id, dag_run_id, created=status != 409)
            if status == 401 and not fresh_token:
                continue  # the token expired or the api-server's secret changed: log in again
            raise self._classify(status, dag_id, text)
        raise AssertionError("unreachable")  # pragma: no cover

    def _classify(self, status: int, dag_id: str, body: str) -> Exception:
        said = f"HTTP {status} from POST /api/v2/dags/{dag_id}/dagRuns: {body[:BODY_CHARS]}"
        if status == 404:  # the DAG is not parsed yet: its turn will come (no circuit)
            return AirflowUnavailable(said)
        if status >= 500 or status in RETRYABLE_STATUSES:
            return self.circuit.failed(said)
        return AirflowRefused(status, said)

    def _runs(self, fresh_token: bool) -> DagRunApi:
        if fresh_token or self._token is None:
            self._token = self._login()
            self.close()
        if self._client is None:
            configuration = Configuration(host=self.base_url, access_token=self._token)
            configuration.retries = 0  # retries are the message's, through the delay queue
            self._client = ApiClient(configuration)
        return DagRunApi(self._client)

    def _login(self) -> str:
        credentials = {"username": self.username, "password": self.password}
        try:
            response = httpx.post(
                f"{self.base_url}/auth/token", json=credentials, timeout=self.timeout_seconds
            )
        except httpx.HTTPError as exc:
            raise self.circuit.failed(f"Airflow unreachable: {exc!r}") from exc
        if response.status_code not in (200, 201):
            said = f"login as {self.username!r} refused: HTTP {response.status_code}"
            if response.status_code in (400, 401, 403):
                said += " (check SEGUE_AIRFLOW_USERNAME and SEGUE_AIRFLOW_PASSWORD)"
            raise self.circuit.failed(f"{said} {response.text[:BODY_CHARS]}")
        return str(response.json()["access_token"])
