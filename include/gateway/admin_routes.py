"""Admin endpoints switching faults at run time and resetting the gateway between tests."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from include.gateway.admin_auth import require_admin
from include.gateway.bodies import read_body
from include.gateway.errors import from_validation_error, invalid_request
from include.gateway.state import GatewayState

logger = logging.getLogger(__name__)


def admin_router(state: GatewayState, admin_token: str) -> APIRouter:
    """``GET/PUT /admin/faults`` and ``POST /admin/reset``, bound to ``state``.

    Every route under ``/admin`` needs ``Authorization: Bearer <admin_token>`` (else 401).
    """
    router = APIRouter(
        prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin(admin_token))]
    )

    @router.get("/faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(state.faults.model_dump())

    @router.put("/faults")
    async def put_faults(request: Request) -> JSONResponse:
        """Merge a partial fault config into the live one; 422 when the result is invalid."""
        body = await read_body(request, state.settings.max_body_bytes)
        try:
            patch = json.loads(body)
        except ValueError as exc:
            raise invalid_request(f"malformed JSON body: {exc}", status=422) from None
        if not isinstance(patch, dict):
            raise invalid_request("the body must be a JSON object", status=422)
        try:
            faults = state.update_faults(patch)
        except ValidationError as exc:
            raise from_validation_error(exc.errors(), status=422) from None
        logger.info("faults now %s", faults.model_dump_json())
        return JSONResponse(faults.model_dump())

    @router.post("/reset")
    async def reset() -> JSONResponse:
        faults = state.reset()
        logger.info("reset: ledger cleared, faults restored to %s", faults.model_dump_json())
        return JSONResponse({"status": "reset", "faults": faults.model_dump()})

    return router
