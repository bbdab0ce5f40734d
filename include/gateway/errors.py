"""The one error shape of the gateway, ``{"error": {"code", "message", ...}}``, and its handlers.

FastAPI's own 422 and HTTPException bodies are replaced so every client sees the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.gateway.schemas import error_body

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "invalid_request"}


class GatewayError(Exception):
    """An error answer: raise it anywhere in a handler to return ``status`` with the shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid_request(message: str, field: str | None = None, status: int = 400) -> GatewayError:
    """The error of a malformed request; ``field`` names the culprit when there is one."""
    return GatewayError(status, "invalid_request", message, field=field)


def from_validation_error(
    errors: list[Any], status: int = 400, prefix: tuple[str, ...] = ()
) -> GatewayError:
    """Turn pydantic's error list into one ``invalid_request`` naming the first bad field."""
    if not errors:
        return invalid_request("invalid request", status=status)
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if str(part) not in prefix]
    if first.get("type") == "json_invalid":
        return invalid_request(f"malformed JSON body: {first.get('msg', '')}", status=status)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    field = ".".join(loc) or None
    if first.get("type") == "missing":
        message = f"{field} is required"
    return invalid_request(message, field, status=status)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the gateway's shape."""

    async def on_gateway_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return exc.response()

    async def on_request_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        return from_validation_error(errors, prefix=("body", "query", "path")).response()

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return GatewayError(500, "internal_error", type(exc).__name__).response()

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        error = GatewayError(exc.status_code, code, str(exc.detail))
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(StarletteHTTPException, on_http)
