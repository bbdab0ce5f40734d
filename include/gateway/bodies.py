"""Reading request bodies with a size cap and validating them into the gateway's error shape."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from include.gateway.errors import from_validation_error, invalid_request

ModelT = TypeVar("ModelT", bound=BaseModel)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def idempotency_key(request: Request) -> str:
    """The request's ``Idempotency-Key`` (1..255 characters), required on every POST."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        raise invalid_request(f"the {IDEMPOTENCY_HEADER} header is required", IDEMPOTENCY_HEADER)
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        message = f"{IDEMPOTENCY_HEADER} must be 1..{MAX_KEY_LENGTH} characters long"
        raise invalid_request(message, IDEMPOTENCY_HEADER)
    return key


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (declared or streamed)."""
    too_large = invalid_request(f"request body is larger than {limit} bytes", status=413)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(model: type[ModelT], body: bytes, status: int = 400) -> ModelT:
    """Validate a JSON body into ``model``; any problem becomes one ``invalid_request``."""
    if not body.strip():
        raise invalid_request("the request body is empty; send a JSON object", status=status)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc.errors(), status=status) from None
