"""Sandbox mode, chosen per request: decided exactly as a live request, recorded apart.

A request carrying ``Gateway-Mode: sandbox`` is charged, declined, refunded and faulted by the
same code as a live one (test cards, idempotency, the fault knobs), but against a second ledger
with its own idempotency keys, ids (``ch_sbx_…``, ``re_sbx_…``), counters and fault sequence
(same knobs, its own RNG and ``fail_next`` countdown): it moves no money and never changes what
a live request sees. Reads (``GET /charges``, ``/charges/{id}``, ``/refunds/{id}``, ``/stats``)
answer from the ledger of the header's mode. No header (or ``live``) is the live ledger.
"""

from __future__ import annotations

from fastapi import Request

from include.gateway.errors import invalid_request

MODE_HEADER = "Gateway-Mode"
LIVE = "live"
SANDBOX = "sandbox"
SANDBOX_ID_PREFIX = "sbx_"


def is_sandbox(request: Request) -> bool:
    """True when the request asks for the sandbox; a 400 naming the header for another mode.

    :param request: the incoming request.
    """
    mode = request.headers.get(MODE_HEADER, LIVE).strip().lower()
    if mode not in (LIVE, SANDBOX):
        raise invalid_request(
            f"{MODE_HEADER} must be {LIVE!r} or {SANDBOX!r}, got {mode[:40]!r}", MODE_HEADER
        )
    return mode == SANDBOX
