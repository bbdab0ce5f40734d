"""A small client of Airflow 3's public REST API (v2), as a user's script would call it.

It gets a bearer token from ``POST /auth/token`` and triggers and follows DAG runs.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowApiError(RuntimeError):
    """The API answered with an error, or a wait ran out."""


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health``: the status of each component (no login needed)."""
        return self._http.get("/api/v2/monitor/health").raise_for_status().json()

    def token(self) -> str:
        if self._token is None:
            response = self._http.post("/auth/token", json=self._credentials)
            if response.status_code not in (200, 201):
                raise AirflowApiError(f"login failed: HTTP {response.status_code} {response.text}")
            self._token = response.json()["access_token"]
        return self._token

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {self.token()}"}
        return self._http.request(method, f"/api/v2{path}", headers=headers, **kwargs)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.request("GET", path, params=params or None)
        if response.status_code != 200:
            raise AirflowApiError(f"GET {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def trigger_dag_run(self, dag_id: str, conf: dict[str, Any], run_id: str | None = None) -> str:
        """Start a run of ``dag_id`` with ``conf``; returns its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        response = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        if response.status_code not in (200, 201):
            raise AirflowApiError(f"trigger {dag_id}: HTTP {response.status_code} {response.text}")
        return response.json()["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        data = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in data["task_instances"]}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log for one try: its structured events, as JSON text."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        response = self.request("GET", path, params={"full_content": "true"})
        if response.status_code != 200:
            raise AirflowApiError(f"GET {path}: HTTP {response.status_code} {response.text}")
        return response.text

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> str:
        """The logs of every try of the task so far that Airflow still has a record of.

        A try failed by the scheduler's "state mismatch" race (apache/airflow#72716) can be left
        without a task-instance record, so its log answers 404 here; it is skipped, with a line
        saying so. ``AirflowStack.task_log_files`` reads every try's file from disk.
        """
        ti = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        logs = []
        for try_number in range(1, max(1, ti["try_number"]) + 1):
            try:
                logs.append(self.task_log(dag_id, run_id, task_id, try_number))
            except AirflowApiError as error:
                if "HTTP 404" not in str(error) or try_number == ti["try_number"]:
                    raise
                logs.append(f"(try {try_number}: no record left in Airflow: {error})")
        return "\n".join(logs)

    def state_mismatches(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """The scheduler's "state mismatch" audit-log entries for one task of one run.

        Airflow 3.3's scheduler can fail a deferred task whose trigger fired before it drained
        the executor's success from the defer exit (apache/airflow#72716): the try ends with
        this entry and the task is retried. Tests use it to tell that race from a real failure.
        """
        params = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "event": "state mismatch"}
        return self.get("/eventLogs", **params)["event_logs"]

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 180.0, poll: float = 1.0
    ) -> dict[str, Any]:
        """Poll until the run is success or failed; returns the run."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                states = self.task_states(dag_id, run_id)
                raise AirflowApiError(f"{dag_id}/{run_id} still {run['state']}: {states}")
            time.sleep(poll)

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the DAG has been parsed; fails early with the file's import error."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.request("GET", f"/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            errors = self.get("/importErrors").get("import_errors", [])
            if errors:
                raise AirflowApiError(f"DAG import errors: {errors}")
            if time.monotonic() > deadline:
                raise AirflowApiError(f"DAG {dag_id} not loaded after {timeout:.0f}s")
            time.sleep(1.0)
