"""The per-client token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest

from include.services.rate_limit import RateLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0  # buckets are per key


def test_a_quiet_spell_refills_no_more_than_the_burst():
    clock = Clock()
    limiter = RateLimiter(rate=10.0, burst=2, clock=clock)
    limiter.acquire("a")
    clock.now += 3600
    assert [limiter.acquire("a") == 0.0 for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(("rate", "burst", "field"), [(0, 1, "rate"), (1, 0, "burst")])
def test_bad_limits_are_refused_naming_the_field(rate, burst, field):
    with pytest.raises(ValueError, match=field):
        RateLimiter(rate=rate, burst=burst)


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"
