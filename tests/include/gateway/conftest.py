"""Fixtures of the gateway tests; the gateway process itself comes from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def client(gateway_url: str) -> Iterator[httpx.Client]:
    """An HTTP client of a freshly reset gateway."""
    with httpx.Client(base_url=gateway_url, timeout=5.0) as http:
        yield http
