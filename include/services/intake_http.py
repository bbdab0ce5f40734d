"""The order intake's HTTP front: ``POST /orders`` records OrderPlaced in the outbox.

``python -m include.services.intake_http`` serves the API on ``SEGUE_INTAKE_PORT`` and runs the
outbox relay (and the health endpoint) of the ``intake`` source in the same process. The
answer is 202: the order is accepted, and its progress shows in ``GET /orders/{order_id}`` and
in ``segue events timeline <order_id>``.

The body names the card by its gateway token (``payment_method``) or by its number
(``card_number``, with ``exp_month``/``exp_year``/``cvc`` if you like). A number is exchanged
for a token at the gateway before anything is stored or logged; the order keeps the token, the
last four digits and the brand. An unreachable gateway answers 503 and nothing is stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from include.payments import payment_methods, steps
from include.payments.database import payments_engine
from include.payments.errors import GatewayUnavailable, InvalidOrder
from include.payments.events import PAYMENT_EVENTS
from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.payments.settings import get_payment_settings
from include.payments.tables import OrderRow
from include.services.intake import SOURCE, place_order
from segue.bus.handlers import ServiceSpec
from segue.bus.runtime import ServiceRuntime, prepare_process
from segue.settings import SegueSettings, get_settings
from segue.store.engine import session_scope

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
INTAKE = ServiceSpec(name=SOURCE, handlers={}, registry=PAYMENT_EVENTS)


CARD_FIELDS = ("card_number", "exp_month", "exp_year", "cvc")


def order_of_request(gateway: GatewayClient, body: dict[str, Any]) -> Order:
    """The Order of a ``POST /orders`` body: a card number is tokenized at the gateway first.

    Raises InvalidOrder naming the field (never repeating a card number) or GatewayUnavailable.

    :param gateway: the gateway client
    :param body: the JSON body, the card as ``payment_method`` or as ``card_number`` (+ expiry, cvc)
    """
    card = {name: body[name] for name in CARD_FIELDS if name in body}
    rest = {name: value for name, value in body.items() if name not in CARD_FIELDS}
    if "card_number" in card:
        if "payment_method" in rest:
            raise InvalidOrder("payment_method", "send a payment_method or a card_number, not both")
        number = card.pop("card_number")
        if not isinstance(number, str):
            raise InvalidOrder("card_number", "must be a string of digits")
        method = payment_methods.tokenize(gateway, number, **card)
        order = payment_methods.parse_input({**rest, "payment_method": method.id})
        return payment_methods.with_method(order, method)
    if card:
        raise InvalidOrder(next(iter(card)), "only with a card_number")
    return payment_methods.order_from_input(gateway, rest)


def create_app(
    engine: Engine, runtime: ServiceRuntime | None = None, gateway: GatewayClient | None = None
) -> FastAPI:
    """The API over ``engine``; ``runtime`` (the relay) starts and stops with the app.

    :param engine: the business store
    :param runtime: the intake's relay, or None (tests)
    :param gateway: the gateway client that tokenizes cards and looks tokens up (default: from
        the payment settings)
    """
    if gateway is None:
        settings = get_payment_settings()
        timeout = settings.gateway_timeout_seconds
        gateway = GatewayClient(settings.gateway_url, timeout_seconds=timeout)

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
    def post_order(body: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
        """Accept an order for the event path (placing the same order twice is harmless).

        422 names a bad field (without its value), 503 means the gateway could not be asked
        about the card (nothing was stored), 409 an order id used for another order.
        """
        try:
            order = order_of_request(gateway, body)
        except InvalidOrder as exc:
            raise HTTPException(422, detail=str(exc)) from None
        except GatewayUnavailable:
            log.warning("order refused: the gateway is unreachable; nothing stored")
            raise HTTPException(
                503,
                detail="the payment gateway is unreachable; the order was not accepted, "
                "nothing was stored: try again later",
            ) from None
        try:
            with session_scope(engine) as session:
                envelope = place_order(session, order)
        except InvalidOrder as exc:
            raise HTTPException(409, detail=str(exc)) from exc
        if runtime is not None:
            runtime.wake_relay()
        return {
            "order_id": order.order_id,
            "event_id": envelope.id,
            "correlation_id": envelope.correlationid,
        }

    @app.get("/orders/{order_id}")
    def get_order(order_id: str) -> dict[str, Any]:
        """The order's status in the business store (absent until validation has run)."""
        with session_scope(engine) as session:
            row = session.get(OrderRow, order_id)
            if row is None:
                raise HTTPException(404, detail=f"no order {order_id!r} (yet)")
            return {
                "order_id": order_id,
                "status": row.status,
                "failure_reason": row.failure_reason,
                "terminal": row.status in steps.TERMINAL,
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
