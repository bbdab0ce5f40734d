"""A service's health endpoint: liveness, readiness and its queue's backlog, over plain HTTP.

``/healthz`` is 200 while the worker threads live; ``/readyz`` is 200 once the consumer is
subscribed and the relay connected (both name the answering process's ``pid``); ``/metrics``
returns the counters and backlogs as JSON: ``counts`` holds ``handled``, ``duplicates`` (the
same event id and content again, absorbed), ``conflicting_duplicates`` (a handled id with other
content, parked), ``parked``, ``retried``, ``not_yet``, ``batches_redone`` and ``published``.
A scraper that asks for text (Prometheus sends ``Accept: text/plain``), or ``?format=prometheus``,
gets the same figures in Prometheus' exposition format (``segue.bus.prometheus``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from segue.bus.prometheus import CONTENT_TYPE, prometheus_text, wants_prometheus


class HealthServer:
    """Serves ``probes`` (name -> callable returning (ok, details)) on 127.0.0.1:``port``."""

    def __init__(
        self,
        port: int,
        *,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        metrics: Callable[[], dict[str, Any]],
        host: str = "127.0.0.1",
    ) -> None:
        pid = os.getpid()  # says which process answers (a supervisor checks it is its child)
        routes = {
            "/healthz": lambda: (live(), {"live": live(), "pid": pid}),
            "/readyz": lambda: (ready(), {"ready": ready(), "pid": pid}),
            "/metrics": lambda: (True, metrics()),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == "/metrics" and wants_prometheus(self.headers.get("Accept", ""), query):
                    self._send_bytes(200, prometheus_text(metrics), CONTENT_TYPE)
                    return
                route = routes.get(path)
                if route is None:
                    self._send(404, {"error": f"no route {self.path}"})
                    return
                ok, body = route()
                self._send(200 if ok else 503, body)

            def _send(self, status: int, body: dict[str, Any]) -> None:
                self._send_bytes(status, json.dumps(body, default=str).encode(), "application/json")

            def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # quiet: probes are frequent
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        """Serve the health endpoints on a daemon thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
