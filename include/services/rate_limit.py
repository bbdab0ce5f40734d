"""Token buckets per client, in process: the intake's answer to a client sending too fast.

Each client has a bucket of ``burst`` tokens refilled at ``rate`` tokens a second; a request
takes one. An empty bucket answers with how long until the next token, which the intake sends
as ``Retry-After``. One process, one set of buckets: with several intake processes each
enforces its own limit (enough to stop one runaway client; not a global quota).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key; thread-safe (the intake's handlers run in a thread pool)."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Buckets of ``burst`` tokens refilled at ``rate`` per second.

        :param rate: tokens added per second (the sustained requests per second allowed).
        :param burst: the bucket's size (requests allowed at once after a quiet spell).
        :param clock: monotonic seconds (tests pass their own).
        """
        if rate <= 0:
            raise ValueError(f"rate: must be above 0, got {rate}")
        if burst < 1:
            raise ValueError(f"burst: must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take a token from ``key``'s bucket: 0.0 when taken, else seconds until one is free.

        :param key: whose bucket (the client's name).
        """
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate
            )
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after_header(wait_seconds: float) -> str:
    """``Retry-After`` in whole seconds (rounded up, at least 1), as HTTP wants it.

    :param wait_seconds: how long until the next token.
    """
    return str(max(1, math.ceil(wait_seconds)))
