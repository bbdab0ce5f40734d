"""The ids of an order's trace, derived from the order id, and W3C ``traceparent`` strings.

Any process that knows an order id can name the order's trace and its root span without being
told (:func:`order_context`); :mod:`segue.tracing` opens the spans.
"""

from __future__ import annotations

import hashlib

from opentelemetry.trace import SpanContext, TraceFlags


def _digest(order_id: str) -> bytes:
    return hashlib.sha256(f"segue.order:{order_id}".encode()).digest()


def order_trace_id(order_id: str) -> str:
    """The order's trace id (32 hex digits), derived from its id: the same in every process.

    :param order_id: the order (or any correlation id).
    """
    return _digest(order_id)[:16].hex()


def order_context(order_id: str) -> SpanContext:
    """The span context of the order's root span (trace and span id derived from the id).

    :param order_id: the order.
    """
    digest = _digest(order_id)
    return SpanContext(
        int.from_bytes(digest[:16], "big") or 1,
        int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def traceparent_of(span_context: SpanContext) -> str:
    """The W3C ``traceparent`` naming ``span_context``.

    :param span_context: a valid span context.
    """
    flags = int(span_context.trace_flags)
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def remote_context(traceparent: str) -> SpanContext | None:
    """The span context a W3C ``traceparent`` names (None if it is not one); cheaper than the
    propagator's regex, since every handled message pays it.

    :param traceparent: ``00-<trace>-<span>-<flags>``.
    """
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        ids = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    context = SpanContext(ids[0], ids[1], is_remote=True, trace_flags=TraceFlags(ids[2] & 1))
    return context if context.is_valid else None
