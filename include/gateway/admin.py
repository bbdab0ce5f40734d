"""A tiny client of the gateway's admin and stats endpoints, for tests and benchmarks.

The admin routes need the gateway's admin token (``SEGUE_GATEWAY_ADMIN_TOKEN``, or the file a
gateway that generated its own wrote): ``GatewayAdmin(url, token)``, or
``GatewayAdmin.of(process)`` for a gateway ``start_gateway`` started. ``/stats`` is open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx

from include.gateway.admin_auth import read_token_file


class GatewayProcess(Protocol):
    """What ``GatewayAdmin.of`` needs of a started gateway (``tools.gateway.GatewayProcess``)."""

    url: str
    admin_token: str


DEFAULT_TIMEOUT = 5.0


def _jsonable(value: Any) -> Any:
    """Decimals go out as strings (the gateway parses them exactly); the rest as is."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def _call(
    method: str, url: str, path: str, body: Any = None, token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    response = httpx.request(
        method, url.rstrip("/") + path, json=body, headers=headers, timeout=DEFAULT_TIMEOUT
    )
    response.raise_for_status()
    payload: dict[str, Any] = response.json()
    return payload


@dataclass(frozen=True)
class GatewayAdmin:
    """The admin API of one gateway: its URL and admin token.

    :param url: the gateway's base URL.
    :param token: its admin token.
    """

    url: str
    token: str = field(repr=False)

    @classmethod
    def of(cls, process: GatewayProcess) -> GatewayAdmin:
        """The admin API of a gateway started by ``start_gateway`` (which knows its token).

        :param process: the running gateway.
        """
        return cls(process.url, process.admin_token)

    @classmethod
    def from_file(cls, url: str, path: Path) -> GatewayAdmin:
        """The admin API of a gateway that wrote its generated token to ``path``.

        :param url: the gateway's base URL.
        :param path: its ``SEGUE_GATEWAY_ADMIN_TOKEN_FILE``.
        """
        return cls(url, read_token_file(path))

    def get_faults(self) -> dict[str, Any]:
        """The gateway's live fault config (``fail_next`` = failures still to come)."""
        return _call("GET", self.url, "/admin/faults", token=self.token)

    def set_faults(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the live fault config; returns the new config.

        Example: ``set_faults(failure_rate=0.5, seed=7, latency={"distribution": "none"})``.
        Raises ``httpx.HTTPStatusError`` (422) when the result would be invalid.

        :param fields: fault config fields to change.
        """
        return _call("PUT", self.url, "/admin/faults", _jsonable(fields), token=self.token)

    def reset(self) -> dict[str, Any]:
        """Clear charges, refunds, idempotency keys and counters; restore the startup faults."""
        return _call("POST", self.url, "/admin/reset", token=self.token)

    def stats(self) -> dict[str, Any]:
        """The gateway's counters (the open ``/stats`` route)."""
        return stats(self.url)


def stats(url: str) -> dict[str, Any]:
    """The gateway's counters: charges succeeded/declined, refunds, requests, injected faults.

    :param url: the gateway's base URL (``/stats`` needs no token).
    """
    return _call("GET", url, "/stats")
