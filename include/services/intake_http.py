"""The order intake's HTTP front: ``POST /orders`` records the order's first event in the outbox.

Only API clients get in (a bearer key, see :mod:`include.services.api_clients`): a missing,
unknown or revoked key is 401; a client over its rate is 429 with ``Retry-After``; a body over
``SEGUE_INTAKE_MAX_BODY_BYTES`` is 413 (with or without ``Content-Length``); a body that is not
``application/json`` is 415. Each placement records the client that placed it.

``python -m include.services.intake_http`` serves the API on ``SEGUE_INTAKE_PORT`` and runs the
outbox relay (and the health endpoint) of the ``intake`` source in the same process. The
answer is 202: the order is accepted on its path (the traffic split picks it; with
``SEGUE_INTAKE_ROUTER=events`` every order goes to the event path unrouted), and its path and
progress show in ``GET /orders/{order_id}`` and in ``segue events timeline <order_id>``.

The body names the card by its gateway token (``payment_method``) or by its number
(``card_number``, with ``exp_month``/``exp_year``/``cvc`` if you like). A number is exchanged
for a token at the gateway before anything is stored or logged; the order keeps the token, the
last four digits and the brand. An unreachable gateway answers 503 and nothing is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from include.payments import payment_methods, steps
from include.payments.database import payments_engine
from include.payments.errors import GatewayUnavailable, InvalidOrder
from include.payments.events import PAYMENT_EVENTS
from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.payments.routing import (
    BATCH_DAG_OF_PATH,
    EVENTS,
    BatchOrderRow,
    OrderPath,
    UnknownPath,
    route_of,
)
from include.payments.settings import PaymentSettings, get_payment_settings
from include.payments.tables import OrderPlacementRow, OrderRow
from include.services.api_clients import SHOWN_PREFIX_CHARS, client_of_key
from include.services.front_door import PAYMENT_FLAG, Router, flag_router
from include.services.intake import SOURCE, Mirror, path_of_event, place_order
from include.services.rate_limit import RateLimiter, retry_after_header
from include.services.shadow_mirror import ShadowMirror
from segue.bus.handlers import ServiceSpec
from segue.bus.runtime import ServiceRuntime, prepare_process
from segue.events.envelope import Envelope
from segue.rollout import RolloutError
from segue.settings import SegueSettings, get_settings
from segue.store.engine import session_scope, single_statement

log = logging.getLogger(__name__)

INTAKE = ServiceSpec(name=SOURCE, handlers={}, registry=PAYMENT_EVENTS)
JSON_TYPE = "application/json"

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


def event_path_only(session: Session, order: Order) -> OrderPath:
    """A router that sends every order to the event path without evaluating the flag or
    recording a decision (unit tests of the intake alone; ``SEGUE_INTAKE_ROUTER=events``).

    :param session: the transaction that accepts the order.
    :param order: the order being placed.
    """
    return EVENTS


def router_for(setting: str) -> Router:
    """The intake's router for ``SEGUE_INTAKE_ROUTER``: ``flag`` (the traffic split, each
    decision recorded) or ``events`` (everything to the event path, no flag, no decision row).

    :param setting: ``flag`` or ``events`` (the payment settings' ``intake_router``).
    """
    if setting == "flag":
        return flag_router()
    if setting == EVENTS:
        return event_path_only
    raise ValueError(f"intake_router: {setting!r} is not one of flag, events")


def create_app(
    engine: Engine,
    runtime: ServiceRuntime | None = None,
    *,
    settings: PaymentSettings | None = None,
    route: Router = event_path_only,
    gateway: GatewayClient | None = None,
    mirror: Mirror | None = None,
) -> FastAPI:
    """The API over ``engine``; ``runtime`` (the relay) starts and stops with the app.

    Every ``/orders`` route needs an API key (``Authorization: Bearer sk_...``, see
    :mod:`include.services.api_clients`) and is rate limited per client; ``/healthz`` and
    ``/readyz`` are open.

    :param engine: the business store.
    :param runtime: the intake's service runtime (outbox relay, health), None in unit tests.
    :param settings: limits (rate, burst, body size); default: this process's settings.
    :param route: picks each new order's path; an order placed again keeps its first path.
    :param gateway: the gateway client that tokenizes cards and looks tokens up (default: from
        the payment settings).
    :param mirror: places shadows of new orders (``shadow_mirror``); None: no shadow mode.
    """
    settings = settings or get_payment_settings()
    limiter = RateLimiter(settings.intake_rate_per_second, settings.intake_rate_burst)
    max_body = settings.intake_max_body_bytes
    if gateway is None:
        gateway = GatewayClient(
            settings.gateway_url, timeout_seconds=settings.gateway_timeout_seconds
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            runtime.start()
        yield
        if runtime is not None:
            runtime.stop()

    app = FastAPI(title="Segue order intake", lifespan=lifespan)
    app.state.shadow_mirror = mirror  # its ``placed`` / ``failed`` counts

    app.add_middleware(BodyLimit, max_body=max_body)

    async def admitted(request: Request) -> str:
        """The caller's client name, once its key is good and its bucket has a token."""
        key = bearer_key(request)
        client = await run_in_threadpool(lookup_client, engine, key)
        wait = limiter.acquire(client)
        if wait > 0:
            log.warning("client %s over its rate limit", client, extra={"client": client})
            raise HTTPException(
                429,
                detail=f"client {client!r} is over its rate limit of "
                f"{limiter.rate:g} orders/s (burst {limiter.burst}): retry later",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return client

    @app.post("/orders", status_code=202, response_model=None)
    async def post_order(request: Request) -> dict[str, str] | JSONResponse:
        """Accept an order on its path (placing the same order twice is harmless).

        422 names a bad field (without its value), 503 means the gateway could not be asked
        about the card (nothing was stored), 409 an order id used for another order.
        """
        client = await admitted(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != JSON_TYPE:
            raise HTTPException(
                415, detail=f"content-type must be {JSON_TYPE}, got {media_type or 'none'!r}"
            )
        body = await read_limited(request, max_body)
        if body is None:
            return too_large(max_body)
        try:
            data = json.loads(body)
        except ValueError:
            raise HTTPException(422, detail="the body is not JSON") from None
        if not isinstance(data, dict):
            raise HTTPException(422, detail="the body must be a JSON object (an order)")
        try:  # one trip to the thread pool for the gateway lookup and the transaction
            envelope, path = await run_in_threadpool(
                lambda: place(
                    engine,
                    order_of_request(gateway, data),
                    client,
                    route,
                    mirror,
                    batch=settings.front_door_batch,
                )
            )
        except InvalidOrder as exc:
            raise HTTPException(422, detail=str(exc)) from None
        except GatewayUnavailable:
            log.warning("order refused: the gateway is unreachable; nothing stored")
            raise HTTPException(
                503,
                detail="the payment gateway is unreachable; the order was not accepted, "
                "nothing was stored: try again later",
            ) from None
        if runtime is not None:
            runtime.wake_relay()
        return {
            "order_id": envelope.subject,
            "path": path,
            "event_id": envelope.id,
            "correlation_id": envelope.correlationid,
            "client": client,
        }

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> dict[str, Any]:
        """The path and status of an order the caller placed (``accepted`` until its path's
        first step records it)."""
        client = await admitted(request)
        return await run_in_threadpool(order_status, engine, order_id, client)

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"live": runtime.live() if runtime is not None else True}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = runtime.ready() if runtime is not None else True
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    return app


class BodyLimit:
    """ASGI middleware: 413 for a request whose ``Content-Length`` passes ``max_body`` (a plain
    ASGI wrapper: Starlette's ``@app.middleware("http")`` costs a task and streams per request).
    Bodies without a length are checked as they are read (``read_limited``)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        """:param app: the wrapped application.
        :param max_body: the largest body accepted, in bytes."""
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 before the app when the declared length is too large."""
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self.max_body:
                        await too_large(self.max_body)(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


def too_large(limit: int) -> JSONResponse:
    """The 413 answer for a body over ``limit`` bytes.

    :param limit: the largest body accepted.
    """
    return JSONResponse({"detail": f"body over {limit} bytes"}, status_code=413)


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes (chunked bodies too).

    :param request: the request whose body to read.
    :param limit: the largest body accepted.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def unauthorized(message: str, error: str | None = None) -> HTTPException:
    """A 401 carrying ``WWW-Authenticate: Bearer`` (RFC 6750), with ``error`` when a key came.

    :param message: what is wrong with the credentials, for the reader.
    :param error: RFC 6750 error code (``invalid_token``), None when no key was sent.
    """
    challenge = f'Bearer realm="segue-intake", error="{error}"' if error else "Bearer"
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": challenge})


def bearer_key(request: Request) -> str:
    """The API key of ``Authorization: Bearer <key>``; 401 when absent or malformed.

    :param request: the incoming request.
    """
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized(
            "missing API key: send 'Authorization: Bearer sk_...' "
            "(create one with `segue clients create NAME`)"
        )
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthorized(
            "the Authorization header must be 'Bearer sk_...'", error="invalid_request"
        )
    return key.strip()


def lookup_client(engine: Engine, key: str) -> str:
    """The active client of ``key``; 401 when the key is unknown or revoked.

    :param engine: the business store.
    :param key: the key the caller sent.
    """
    with single_statement(engine) as connection:  # a read: no BEGIN, no COMMIT
        client = client_of_key(connection, key)
    if client is None:
        log.warning("refused an unknown or revoked API key %s...", key[:SHOWN_PREFIX_CHARS])
        raise unauthorized("unknown or revoked API key", error="invalid_token")
    return client


def place(
    engine: Engine,
    order: Order,
    client: str,
    route: Router,
    mirror: Mirror | None = None,
    *,
    batch: bool = False,
) -> tuple[Envelope, str]:
    """Place ``order`` for ``client`` on the path ``route`` picks, in one transaction; the
    first event and the order's path (its first one when placed again). 409 when its id is
    taken; 500 when the router answers a path that does not exist (nothing is written).

    :param engine: the business store.
    :param order: the order.
    :param client: who places it.
    :param route: the router.
    :param mirror: places the order's shadow when shadow mode picks it (None: never).
    :param batch: ``dag``/``saga`` orders wait in the batch queue (``SEGUE_FRONT_DOOR_BATCH``).
    """
    try:
        with session_scope(engine) as session:
            path = route(session, order)
            envelope = place_order(session, order, path, client=client, mirror=mirror, batch=batch)
            return envelope, path_of_event(envelope)  # the kept path, without a SELECT
    except InvalidOrder as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except (UnknownPath, RolloutError) as exc:  # the router's fault, not the client's
        log.error("router: %s", exc, extra={"correlation_id": order.order_id})
        raise HTTPException(500, detail=f"router failed: {exc}") from exc


def order_status(engine: Engine, order_id: str, client: str) -> dict[str, Any]:
    """The status of ``order_id`` when ``client`` placed it; 404 otherwise (or not yet known).

    :param engine: the business store.
    :param order_id: the order.
    :param client: the caller (a client sees only its own orders).
    """
    with session_scope(engine) as session:
        placement = session.get(OrderPlacementRow, order_id)
        if placement is None or placement.client != client:
            raise HTTPException(404, detail=f"no order {order_id!r} (yet)")
        row = session.get(OrderRow, order_id)
        route = route_of(session, order_id)
        status = "accepted" if row is None else row.status
        run_id = None if route is None else route.dag_run_id
        if route is not None and route.dag_id in BATCH_DAG_OF_PATH.values():
            queued = session.get(BatchOrderRow, order_id)  # the latest batch run that took it
            run_id = queued.runs.split()[-1] if queued is not None and queued.runs else None
        return {
            "order_id": order_id,
            "path": EVENTS if route is None else route.path,
            "dag_id": None if route is None else route.dag_id,
            "dag_run_id": run_id,
            "status": status,
            "failure_reason": None if row is None else row.failure_reason,
            "terminal": status in steps.TERMINAL,
        }


def build(settings: SegueSettings) -> tuple[FastAPI, ServiceRuntime]:
    """The intake's app and runtime, routing by ``SEGUE_INTAKE_ROUTER`` (the flag by default).

    :param settings: the library settings of this process (database, broker, health port).
    """
    engine = payments_engine(settings.database_url)
    runtime = ServiceRuntime(
        INTAKE,
        engine=engine,
        amqp_url=settings.amqp_url,
        peers=all_consumers(),
        backlog_threshold=settings.relay_backlog_threshold,
        health_port=settings.service_health_port,
    )
    router = get_payment_settings().intake_router
    # Shadow mode mirrors by the split's bucket: only when the flag routes.
    mirror = ShadowMirror.over(engine, PAYMENT_FLAG.name) if router == "flag" else None
    return create_app(engine, runtime, route=router_for(router), mirror=mirror), runtime


def all_consumers() -> list[ServiceSpec]:
    from include.services import consumer_specs

    return consumer_specs()


def main() -> None:
    settings = get_payment_settings()
    prepare_process(SOURCE)
    app, _ = build(get_settings())
    log.info("order intake on http://%s:%d/orders", settings.intake_host, settings.intake_port)
    uvicorn.run(app, host=settings.intake_host, port=settings.intake_port, log_level="warning")


if __name__ == "__main__":
    main()
