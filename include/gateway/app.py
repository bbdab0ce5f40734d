"""The gateway's FastAPI app: charges, refunds, lookups, stats and health.

Handlers are async and never block: latency and timeouts are ``asyncio.sleep``; ledger updates
run under a lock without awaiting, so idempotency holds under concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from include.gateway.admin_routes import admin_router
from include.gateway.bodies import IDEMPOTENCY_HEADER, idempotency_key, parse_body, read_body
from include.gateway.errors import GatewayError, install_error_handlers
from include.gateway.ledger import Outcome
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

    async def faulted(operation: Callable[[], Outcome]) -> JSONResponse:
        """Apply the injected latency/failure/timeout around one ledger operation."""
        decision = state.admit()
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
        state.ledger.count("requests")
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
        return await faulted(lambda: state.ledger.charge(key, charge, method))

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
        return await faulted(lambda: state.ledger.refund(key, refund))

    @router.get("/charges/{charge_id}")
    async def get_charge(charge_id: str) -> JSONResponse:
        return _found(state.ledger.get_charge(charge_id), "charge_not_found", charge_id)

    @router.get("/charges")
    async def list_charges(reference: str | None = None) -> JSONResponse:
        return JSONResponse(state.ledger.list_charges(reference))

    @router.get("/refunds/{refund_id}")
    async def get_refund(refund_id: str) -> JSONResponse:
        return _found(state.ledger.get_refund(refund_id), "refund_not_found", refund_id)

    @router.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(state.ledger.stats())

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    return router


def _found(resource: dict[str, Any] | None, code: str, resource_id: str) -> JSONResponse:
    if resource is None:
        raise GatewayError(404, code, f"no such id: {resource_id!r}")
    return JSONResponse(resource)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """A gateway app with its own in-memory state (one per process; tests may make several)."""
    settings = settings or GatewaySettings()
    state = GatewayState(settings)
    app = FastAPI(
        title="Segue payment gateway simulator",
        description="A card processor look-alike with switchable faults. See README.md.",
        version="1.0",
    )
    app.state.gateway = state
    install_error_handlers(app)
    app.include_router(payments_router(state))
    app.include_router(admin_router(state))
    return app
