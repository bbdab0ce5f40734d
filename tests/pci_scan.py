"""A scan for card numbers where none may be: database tables, queued messages, logs, API answers.

Card numbers stay at the gateway (issue 9). ``find_card_numbers`` looks for every test card
number, with or without spaces or dashes between its digits; the ``scan_*`` helpers read
everything a source holds as text and return ``Finding``s naming where a number was seen, and
``assert_no_card_numbers`` fails with those places (never with the surrounding text, so the
failure output does not spread the number either).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kombu import Connection
from sqlalchemy import Engine, MetaData, inspect, select

from include.gateway.cards import DECLINING_CARDS, SUCCESS_CARD

#: Every card number the tests use: the gateway's test cards and the other numbers tests tokenize.
TEST_CARD_NUMBERS: tuple[str, ...] = (
    SUCCESS_CARD,
    *DECLINING_CARDS,
    "5555555555554444",
    "378282246310005",
    "4000056655665556",
)
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})


def _pattern(numbers: Iterable[str]) -> re.Pattern[str]:
    """One regex for all ``numbers``, each digit optionally followed by a space or dash."""
    alternatives = ["[ -]?".join(number) for number in numbers]
    return re.compile(r"(?<!\d)(?:" + "|".join(alternatives) + r")(?!\d)")


CARD_PATTERN = _pattern(TEST_CARD_NUMBERS)


@dataclass(frozen=True)
class Finding:
    """A card number seen in ``where`` (a table and column, a queue, a file, ...)."""

    where: str
    last4: str

    def __str__(self) -> str:
        return f"{self.where}: a test card number ending {self.last4}"


def find_card_numbers(text: str) -> list[str]:
    """The last four digits of every test card number in ``text`` (spaces and dashes allowed)."""
    return [re.sub(r"\D", "", match)[-4:] for match in CARD_PATTERN.findall(text)]


def as_text(value: Any) -> str:
    """A column value or message body as text: bytes byte for byte, JSON as JSON."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def scan_text(where: str, text: str) -> list[Finding]:
    """Findings in one piece of text."""
    return [Finding(where, last4) for last4 in find_card_numbers(text)]


def scan_database(engine: Engine) -> list[Finding]:
    """Every column of every row of every table, in every schema but the system ones."""
    findings: list[Finding] = []
    inspector = inspect(engine)
    schemas = [s for s in inspector.get_schema_names() if s not in SYSTEM_SCHEMAS]
    with engine.connect() as connection:
        for schema in schemas:
            metadata = MetaData(schema=schema)
            metadata.reflect(connection, schema=schema)
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)).mappings():
                    for column, value in row.items():
                        where = f"table {table.fullname}, column {column}"
                        findings += scan_text(where, as_text(value))
    return findings


def scan_queues(amqp_url: str, queues: Iterable[str]) -> list[Finding]:
    """Every message waiting in ``queues``: body and headers. Messages are read and put back
    (not acked), so the queues are left as they were."""
    findings: list[Finding] = []
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        for queue in queues:
            while (message := channel.basic_get(queue, no_ack=False)) is not None:
                text = as_text(message.body) + " " + as_text(dict(message.headers or {}))
                findings += scan_text(f"queue {queue}", text)
        channel.close()  # unacked messages go back to their queues
    return findings


def scan_files(paths: Iterable[Path]) -> list[Finding]:
    """Every file under the given files or directories (task logs, service logs)."""
    findings: list[Finding] = []
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            findings += scan_text(f"file {file}", file.read_bytes().decode("latin-1"))
    return findings


def assert_no_card_numbers(findings: Iterable[Finding], *, scanned: str = "") -> None:
    """Fail naming every place a card number was found."""
    found = sorted({str(finding) for finding in findings})
    assert not found, f"card numbers found{' in ' + scanned if scanned else ''}:\n  " + "\n  ".join(
        found
    )
