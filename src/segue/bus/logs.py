"""The services' JSON log lines (structlog): see :mod:`segue.logs`."""

from __future__ import annotations

from segue.logs import configure_json_logging, order_log_context

__all__ = ["configure_json_logging", "order_log_context"]
