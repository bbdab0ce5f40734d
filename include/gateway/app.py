"""The gateway's FastAPI app: charges, refunds, lookups, stats and health.

Handlers are async and never block: latency and timeouts are ``asyncio.sleep``; ledger updates
run under a lock without awaiting, so idempotency holds under concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from include.gateway import tracing
from include.gateway.admin_auth import resolve_admin_token
from include.gateway.admin_routes import admin_router
from include.gateway.bodies import IDEMPOTENCY_HEADER, idempotency_key, parse_body, read_body
from include.gateway.errors import GatewayError, install_error_handlers, invalid_request
from include.gateway.ledger import MAX_PAGE, ChargeQuery, Outcome
from include.gateway.sandbox import is_sandbox
from include.gateway.schemas import (
    ChargeRequest,
    PaymentMethodRequest,
    RefundRequest,
    error_body,
)
from include.gateway.settings import GatewaySettings
from include.gateway.state import GatewayState

logger = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
HAS_MORE_HEADER = "Has-More"
NEXT_HEADER = "Next-Starting-After"


def _openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body we parse by hand (to control the error shape and the size cap)."""
    return {
        "parameters": [
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
    }


def _respond(outcome: Outcome) -> JSONResponse:
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


def payments_router(state: GatewayState) -> APIRouter:
    """``POST /charges``, ``POST /refunds`` and the read endpoints, bound to ``state``."""
    router = APIRouter()
    limit = state.settings.max_body_bytes

    async def faulted(operation: Callable[[], Outcome], sandbox: bool) -> JSONResponse:
        """Apply the injected latency/failure/timeout around one ledger operation."""
        decision = state.admit(sandbox)
        if decision.latency_seconds > 0:
            await asyncio.sleep(decision.latency_seconds)
        if decision.failure is not None:
            message = f"the gateway is temporarily unavailable (injected: {decision.failure})"
            return JSONResponse(error_body("gateway_unavailable", message), status_code=503)
        outcome = operation()
        if decision.timeout_seconds > 0:
            logger.info("injected timeout: answering in %.1fs", decision.timeout_seconds)
            await asyncio.sleep(decision.timeout_seconds)
        return _respond(outcome)

    async def accept(request: Request) -> tuple[str, bytes]:
        state.ledger_of(is_sandbox(request)).count("requests")
        key = idempotency_key(request)
        return key, await read_body(request, limit)

    @router.post("/charges", status_code=201, openapi_extra=_openapi_body(ChargeRequest))
    async def create_charge(request: Request) -> JSONResponse:
        key, body = await accept(request)
        charge = parse_body(ChargeRequest, body)
        method = state.tokenizer.resolve(charge.payment_method)
        if method is None:
            raise GatewayError(
                400,
                "payment_method_not_found",
                f"no such payment method: {charge.payment_method[:60]!r}",
                field="payment_method",
            )
        ledger = state.ledger_of(is_sandbox(request))
        return await faulted(lambda: ledger.charge(key, charge, method), ledger is not state.ledger)

    @router.post(
        "/payment_methods", status_code=201, openapi_extra=_openapi_body(PaymentMethodRequest)
    )
    async def create_payment_method(request: Request) -> JSONResponse:
        """Tokenize a card: the answer names the token, its last four digits and its brand."""
        state.ledger.count("requests")
        card = parse_body(PaymentMethodRequest, await read_body(request, limit))
        state.ledger.count("payment_methods")
        return JSONResponse(state.tokenizer.tokenize(card.card_number).to_json(), status_code=201)

    @router.get("/payment_methods/{payment_method_id}")
    async def get_payment_method(payment_method_id: str) -> JSONResponse:
        method = state.tokenizer.resolve(payment_method_id)
        if method is None:
            raise GatewayError(
                404, "payment_method_not_found", f"no such id: {payment_method_id[:60]!r}"
            )
        return JSONResponse(method.to_json())

    @router.post("/refunds", status_code=201, openapi_extra=_openapi_body(RefundRequest))
    async def create_refund(request: Request) -> JSONResponse:
        key, body = await accept(request)
        refund = parse_body(RefundRequest, body)
        ledger = state.ledger_of(is_sandbox(request))
        return await faulted(lambda: ledger.refund(key, refund), ledger is not state.ledger)

    @router.get("/charges/{charge_id}")
    async def get_charge(request: Request, charge_id: str) -> JSONResponse:
        ledger = state.ledger_of(is_sandbox(request))
        return _found(ledger.get_charge(charge_id), "charge_not_found", charge_id)

    @router.get("/charges")
    async def list_charges(
        request: Request,
        reference: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        starting_after: str | None = None,
        limit: int = Query(default=MAX_PAGE, ge=1, le=MAX_PAGE),
    ) -> JSONResponse:
        """Charges in creation order; ``Has-More``/``Next-Starting-After`` headers page on."""
        query = ChargeQuery(
            reference=reference,
            created_after=_aware(created_after, "created_after"),
            created_before=_aware(created_before, "created_before"),
            starting_after=starting_after,
            limit=limit,
        )
        try:
            page = state.ledger_of(is_sandbox(request)).list_charges_page(query)
        except KeyError:
            raise invalid_request(
                f"starting_after names no charge: {starting_after!r}", "starting_after"
            ) from None
        headers = {HAS_MORE_HEADER: "true" if page.has_more else "false"}
        if page.has_more:
            headers[NEXT_HEADER] = page.charges[-1]["id"]
        return JSONResponse(page.charges, headers=headers)

    @router.get("/refunds/{refund_id}")
    async def get_refund(request: Request, refund_id: str) -> JSONResponse:
        ledger = state.ledger_of(is_sandbox(request))
        return _found(ledger.get_refund(refund_id), "refund_not_found", refund_id)

    @router.get("/stats")
    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(state.ledger_of(is_sandbox(request)).stats())

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    return router


def _aware(moment: datetime | None, field: str) -> datetime | None:
    """``moment`` if it carries a timezone (charges are stamped in UTC); a 400 otherwise."""
    if moment is not None and moment.utcoffset() is None:
        raise invalid_request(f"{field} needs a timezone, e.g. 2026-12-01T10:00:00Z", field)
    return moment


def _found(resource: dict[str, Any] | None, code: str, resource_id: str) -> JSONResponse:
    if resource is None:
        raise GatewayError(404, code, f"no such id: {resource_id!r}")
    return JSONResponse(resource)


def create_app(
    settings: GatewaySettings | None = None, *, admin_token: str | None = None
) -> FastAPI:
    """A gateway app with its own in-memory state (one per process; tests may make several).

    :param settings: the gateway's settings (default: from the environment).
    :param admin_token: the token of ``/admin/*`` (default: ``settings.admin_token``, else a
        random one, kept in ``app.state.admin_token``).
    """
    settings = settings or GatewaySettings()
    if admin_token is None:
        admin_token = resolve_admin_token(settings, write_file=False)
    state = GatewayState(settings)
    app = FastAPI(
        title="Segue payment gateway simulator",
        description="A card processor look-alike with switchable faults. See README.md.",
        version="1.0",
    )
    app.state.gateway = state
    app.state.admin_token = admin_token
    install_error_handlers(app)
    if tracing.enabled():  # no middleware, no cost, while tracing is off
        app.middleware("http")(tracing.traced_request)
    app.include_router(payments_router(state))
    app.include_router(admin_router(state, admin_token))
    return app
