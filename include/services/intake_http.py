"""The order intake's HTTP front: ``POST /orders`` records the order's first event in the outbox.

``python -m include.services.intake_http`` serves the API on ``SEGUE_INTAKE_PORT`` and runs the
outbox relay (and the health endpoint) of the ``intake`` source in the same process. The
answer is 202: the order is accepted on its path (``route`` picks it: the event path unless
told otherwise), and its path and progress show in ``GET /orders/{order_id}`` and in
``segue events timeline <order_id>``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from include.payments import steps
from include.payments.database import payments_engine
from include.payments.errors import InvalidOrder
from include.payments.events import PAYMENT_EVENTS
from include.payments.models import Order
from include.payments.routing import EVENTS, OrderPath, UnknownPath, route_of
from include.payments.settings import get_payment_settings
from include.payments.tables import OrderRow
from include.services.intake import SOURCE, path_of, place_order
from segue.bus.handlers import ServiceSpec
from segue.bus.runtime import ServiceRuntime, prepare_process
from segue.settings import SegueSettings, get_settings
from segue.store.engine import session_scope

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
INTAKE = ServiceSpec(name=SOURCE, handlers={}, registry=PAYMENT_EVENTS)

# Picks the path of a new order (the feature flag plugs in here).
Router = Callable[[Order], OrderPath]


def event_path_only(order: Order) -> OrderPath:
    """The default router: every order takes the event path (the behaviour before routing).

    :param order: the order being placed.
    """
    return EVENTS


def create_app(
    engine: Engine, runtime: ServiceRuntime | None = None, route: Router = event_path_only
) -> FastAPI:
    """The API over ``engine``; ``runtime`` (the relay) starts and stops with the app.

    :param engine: the business store.
    :param runtime: the intake's relay, or None (tests that read the outbox).
    :param route: picks each new order's path; an order placed again keeps its first path.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            runtime.start()
        yield
        if runtime is not None:
            runtime.stop()

    app = FastAPI(title="Segue order intake", lifespan=lifespan)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)

    @app.post("/orders", status_code=202)
    def post_order(order: Order) -> dict[str, str]:
        """Accept an order on its path (placing the same order twice is harmless)."""
        try:
            with session_scope(engine) as session:
                envelope = place_order(session, order, route(order))
                path = path_of(session, order.order_id)
        except InvalidOrder as exc:
            raise HTTPException(409, detail=str(exc)) from exc
        except UnknownPath as exc:  # the router's fault, not the client's: nothing was written
            log.error("router: %s", exc, extra={"correlation_id": order.order_id})
            raise HTTPException(500, detail=f"router failed: {exc}") from exc
        if runtime is not None:
            runtime.wake_relay()
        return {
            "order_id": order.order_id,
            "path": path,
            "event_id": envelope.id,
            "correlation_id": envelope.correlationid,
        }

    @app.get("/orders/{order_id}")
    def get_order(order_id: str) -> dict[str, Any]:
        """The order's path and status (``accepted`` until its path's first step records it)."""
        with session_scope(engine) as session:
            row = session.get(OrderRow, order_id)
            route = route_of(session, order_id)
            if row is None and route is None:
                raise HTTPException(404, detail=f"no order {order_id!r} (yet)")
            status = "accepted" if row is None else row.status
            return {
                "order_id": order_id,
                "path": EVENTS if route is None else route.path,
                "dag_id": None if route is None else route.dag_id,
                "dag_run_id": None if route is None else route.dag_run_id,
                "status": status,
                "failure_reason": None if row is None else row.failure_reason,
                "terminal": status in steps.TERMINAL,
            }

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"live": runtime.live() if runtime is not None else True}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = runtime.ready() if runtime is not None else True
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    return app


def build(settings: SegueSettings) -> tuple[FastAPI, ServiceRuntime]:
    engine = payments_engine(settings.database_url)
    runtime = ServiceRuntime(
        INTAKE,
        engine=engine,
        amqp_url=settings.amqp_url,
        peers=all_consumers(),
        backlog_threshold=settings.relay_backlog_threshold,
        health_port=settings.service_health_port,
    )
    return create_app(engine, runtime), runtime


def all_consumers() -> list[ServiceSpec]:
    from include.services import consumer_specs

    return consumer_specs()


def main() -> None:
    port = get_payment_settings().intake_port
    prepare_process(SOURCE)
    app, _ = build(get_settings())
    log.info("order intake on http://127.0.0.1:%d/orders", port)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
