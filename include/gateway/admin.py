"""A tiny client of the gateway's admin and stats endpoints, for tests and benchmarks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

DEFAULT_TIMEOUT = 5.0


def _jsonable(value: Any) -> Any:
    """Decimals go out as strings (the gateway parses them exactly); the rest as is."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def _call(method: str, url: str, path: str, body: Any = None) -> dict[str, Any]:
    response = httpx.request(method, url.rstrip("/") + path, json=body, timeout=DEFAULT_TIMEOUT)
    response.raise_for_status()
    payload: dict[str, Any] = response.json()
    return payload


def get_faults(url: str) -> dict[str, Any]:
    """The gateway's live fault config (``fail_next`` = failures still to come)."""
    return _call("GET", url, "/admin/faults")


def set_faults(url: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the live fault config; returns the new config.

    Example: ``set_faults(url, failure_rate=0.5, seed=7, latency={"distribution": "none"})``.
    Raises ``httpx.HTTPStatusError`` (422) when the result would be invalid.
    """
    return _call("PUT", url, "/admin/faults", _jsonable(fields))


def reset(url: str) -> dict[str, Any]:
    """Clear charges, refunds, idempotency keys and counters; restore the startup faults."""
    return _call("POST", url, "/admin/reset")


def stats(url: str) -> dict[str, Any]:
    """The gateway's counters: charges succeeded/declined, refunds, requests, injected faults."""
    return _call("GET", url, "/stats")
