"""JSON log lines for services: one object per line with the event's correlation id.

Handlers log with ``extra=envelope.log_context()``; those fields land as top-level keys, so
``grep '"correlation_id": "ord-1"'`` over every service's log follows one order.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

CONTEXT_FIELDS = ("correlation_id", "causation_id", "event_id", "event_type", "subject", "code")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, with the service and the record's event fields."""

    def __init__(self, service: str) -> None:
        """A formatter for one service's process.

        :param service: named on every line.
        """
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line.

        :param record: the log record (its extras are kept).
        """
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                line[name] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_json_logging(service: str, level: int = logging.INFO) -> None:
    """Send this process's logs to stderr as JSON lines tagged with ``service``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("amqp", "kombu", "httpx", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
