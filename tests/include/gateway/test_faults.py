"""Unit tests of the pure fault logic, with seeded random generators."""

from __future__ import annotations

import random
import statistics

import pytest
from pydantic import ValidationError

from include.gateway.faults import (
    NO_FAULT,
    FaultConfig,
    FaultInjector,
    LatencyConfig,
    decide,
    sample_latency_ms,
)

QUIET = FaultConfig(failure_rate=0)


def test_no_faults_configured_means_no_fault() -> None:
    rng = random.Random(1)
    assert all(decide(QUIET, rng, 0) == NO_FAULT for _ in range(1000))


def test_failure_rate_is_honoured_statistically() -> None:
    rng = random.Random(42)
    config = FaultConfig(failure_rate=0.3)
    failures = sum(decide(config, rng, 0).failure == "failure_rate" for _ in range(10_000))
    assert 2_800 <= failures <= 3_200


def test_same_seed_same_sequence_other_seed_other_sequence() -> None:
    config = FaultConfig(failure_rate=0.5)

    def run(seed: int) -> list[bool]:
        rng = random.Random(seed)
        return [decide(config, rng, 0).failure is not None for _ in range(200)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_fail_next_fails_exactly_n_requests_then_stops() -> None:
    injector = FaultInjector(FaultConfig(failure_rate=0, fail_next=2))
    assert injector.config.fail_next == 2
    outcomes = [injector.decide().failure for _ in range(4)]
    assert outcomes == ["fail_next", "fail_next", None, None]
    assert injector.config.fail_next == 0


def test_timeout_rate_delays_without_failing() -> None:
    config = FaultConfig(failure_rate=0, timeout_rate=1, timeout_delay_seconds=2.5)
    decision = decide(config, random.Random(3), 0)
    assert decision.failure is None
    assert decision.timeout_seconds == 2.5


def test_failure_wins_over_timeout() -> None:
    config = FaultConfig(failure_rate=1, timeout_rate=1)
    decision = decide(config, random.Random(3), 0)
    assert decision.failure == "failure_rate"
    assert decision.timeout_seconds == 0


def test_fixed_and_none_latency() -> None:
    rng = random.Random(0)
    assert sample_latency_ms(LatencyConfig(distribution="fixed", mean_ms=200), rng) == 200
    assert sample_latency_ms(LatencyConfig(distribution="none", mean_ms=200), rng) == 0
    fixed = FaultConfig(failure_rate=0, latency=LatencyConfig(distribution="fixed", mean_ms=80))
    assert decide(fixed, rng, 0).latency_seconds == pytest.approx(0.08)


def test_uniform_latency_stays_within_jitter() -> None:
    rng = random.Random(5)
    latency = LatencyConfig(distribution="uniform", mean_ms=100, jitter_ms=20)
    draws = [sample_latency_ms(latency, rng) for _ in range(5_000)]
    assert min(draws) >= 80 and max(draws) <= 120
    assert statistics.fmean(draws) == pytest.approx(100, rel=0.02)


def test_uniform_latency_never_negative() -> None:
    rng = random.Random(5)
    latency = LatencyConfig(distribution="uniform", mean_ms=5, jitter_ms=50)
    assert min(sample_latency_ms(latency, rng) for _ in range(2_000)) >= 0


def test_lognormal_latency_has_the_configured_mean_and_a_cap() -> None:
    rng = random.Random(11)
    latency = LatencyConfig(distribution="lognormal", mean_ms=80, sigma=0.5)
    draws = [sample_latency_ms(latency, rng) for _ in range(40_000)]
    assert statistics.fmean(draws) == pytest.approx(80, rel=0.03)
    assert statistics.median(draws) < 80  # right-skewed, like real latency
    capped = latency.model_copy(update={"max_ms": 90})
    assert max(sample_latency_ms(capped, rng) for _ in range(2_000)) == 90


def test_merge_is_partial_and_merges_latency_key_by_key() -> None:
    base = FaultConfig(failure_rate=0.1, latency=LatencyConfig(distribution="fixed", mean_ms=50))
    merged = base.merged({"timeout_rate": 0.2, "latency": {"mean_ms": 70}})
    assert merged.failure_rate == 0.1
    assert merged.timeout_rate == 0.2
    assert merged.latency == LatencyConfig(distribution="fixed", mean_ms=70)


@pytest.mark.parametrize(
    "patch",
    [
        {"failure_rate": 1.5},
        {"timeout_rate": -0.1},
        {"fail_next": -1},
        {"latency": {"distribution": "gaussian"}},
        {"latency": {"mean_ms": -5}},
        {"failure_rate_typo": 0.1},
    ],
)
def test_merge_rejects_invalid_configs(patch: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultConfig().merged(patch)


def test_replace_reseeds_only_when_asked() -> None:
    injector = FaultInjector(FaultConfig(failure_rate=0.5, seed=9))
    first = [injector.decide().failure for _ in range(50)]
    injector.replace(FaultConfig(failure_rate=0.5, seed=9))
    assert [injector.decide().failure for _ in range(50)] == first
    injector.replace(FaultConfig(failure_rate=0.5, seed=9))
    injector.decide()
    injector.replace(FaultConfig(failure_rate=0.5, seed=9), reseed=False)
    assert [injector.decide().failure for _ in range(50)] != first
