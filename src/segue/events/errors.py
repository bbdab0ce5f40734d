"""Why a message could not be turned into an event: a code for machines, a detail for people."""

from __future__ import annotations

REASON_CODES = (
    "oversized_body",
    "wrong_content_type",
    "bad_json",
    "missing_attribute",
    "invalid_attribute",
    "unknown_type",
    "unsupported_version",
    "unsupported_specversion",
    "invalid_payload",
)


class InvalidEvent(Exception):
    """A message that is not a valid event; it is parked with ``code`` and ``detail``."""

    def __init__(self, code: str, detail: str) -> None:
        if code not in REASON_CODES:
            raise ValueError(f"unknown reason code {code!r}")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
