"""A stand-in for Airflow's api-server (``/auth/token`` and ``POST /api/v2/dags/{id}/dagRuns``),
served over real HTTP in a thread so the hand-over's real client talks to it.

It answers as Airflow 3.3 does where the hand-over depends on it: 409 for a run id that exists,
422 when ``logical_date`` is missing, 401 for a bad or revoked token. ``fail_next`` queues
statuses to answer instead (an outage, a refusal). The e2e tests use the real Airflow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request

from tools.ports import unused_port

PASSWORD = "secret"


@dataclass
class FakeAirflow:
    url: str = ""
    runs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    posts: int = 0
    logins: int = 0
    tokens: set[str] = field(default_factory=set)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/auth/token", status_code=201)
        def token(body: dict[str, str]) -> dict[str, str]:
            self.logins += 1
            if body != {"username": "admin", "password": PASSWORD}:
                raise HTTPException(401, "Invalid credentials")
            value = f"token-{self.logins}"
            self.tokens.add(value)
            return {"access_token": value}

        @app.post("/api/v2/dags/{dag_id}/dagRuns")
        async def trigger(
            dag_id: str, request: Request, authorization: str = Header("")
        ) -> dict[str, Any]:
            self.posts += 1
            if self.fail_next:
                raise HTTPException(self.fail_next.pop(0), "injected")
            if authorization.removeprefix("Bearer ") not in self.tokens:
                raise HTTPException(401, "Not authenticated")
            body = await request.json()
            if "logical_date" not in body:
                raise HTTPException(422, "logical_date: Field required")
            key = (dag_id, body["dag_run_id"])
            if key in self.runs:
                raise HTTPException(409, "Unique constraint violation")
            self.runs[key] = body
            return {"dag_id": dag_id, "dag_run_id": body["dag_run_id"], "state": "queued"}

        return app


@contextmanager
def fake_airflow() -> Iterator[FakeAirflow]:
    fake = FakeAirflow()
    port = unused_port()
    fake.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake Airflow did not start")
        time.sleep(0.02)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(5)
