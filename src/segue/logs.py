"""Logs that carry the order: JSON lines rendered by structlog, and the order's fields bound
for a block of work.

Handlers log through the standard library with ``extra=envelope.log_context()`` (or inside
:func:`order_log_context`); those fields land as top-level keys, so
``grep '"correlation_id": "ord-1"'`` over every service's log follows one order, and
``trace_id`` finds its trace in Jaeger. The same processors run for structlog's own loggers.

Airflow 3's task logs are structlog too, and its chain merges structlog's context variables
(``structlog.contextvars``) but drops a record's ``extra=``; code that also runs in Airflow
tasks binds its fields with :func:`order_log_context` so they reach the task log as fields.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from segue import tracing

NOISY = ("amqp", "kombu", "httpx", "sqlalchemy")


def add_trace_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add ``trace_id`` and ``span_id`` of the span open now, unless the line names its own.

    :param event: the event dict being built.
    """
    if "trace_id" not in event:
        event.update(tracing.log_fields())
    return event


def _service_adder(service: str) -> Processor:
    def add_service(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        return event

    return add_service


def _rename_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["message"] = event.pop("event", "")
    event["level"] = str(event.get("level", "")).upper()
    if "exception" in event:
        event["error"] = event.pop("exception")
    return event


def processors(service: str) -> tuple[list[Processor], list[Processor]]:
    """(chain for every record, final chain) of a service's JSON lines.

    :param service: named on every line.
    """
    pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        add_trace_context,
        _service_adder(service),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        _rename_event,
        structlog.processors.JSONRenderer(default=str),
    ]
    return pre_chain, final


def configure_json_logging(
    service: str, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send this process's logs (stdlib and structlog) to stderr as JSON lines.

    :param service: named on every line.
    :param level: the root logger's level.
    :param stream: where the lines go (default: stderr).
    """
    pre_chain, final = processors(service)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=final)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*pre_chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@contextmanager
def order_log_context(order_id: str, **fields: Any) -> Iterator[None]:
    """Every log line in the block carries ``order_id``, the order's ``trace_id`` and ``fields``,
    in a service's JSON lines and in an Airflow task's log alike.

    :param order_id: the order the work is for.
    :param fields: more fields (``correlation_id``, ``step``, ...).
    """
    trace_id = tracing.order_trace_id(order_id)
    context = {"order_id": order_id, "trace_id": trace_id, **fields}
    current = tracing.current_traceparent(trace_id)  # the step's span, when traced
    if current is not None:
        context["span_id"] = current.split("-")[2]
    with structlog.contextvars.bound_contextvars(**context):
        yield
