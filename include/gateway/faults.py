"""Fault configuration and the per-request fault decision of the gateway simulator.

``decide`` is pure given a ``random.Random``: unit tests seed it and check the outcomes.
``FaultInjector`` holds the live configuration, the RNG and the ``fail_next`` countdown.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Distribution = Literal["none", "fixed", "uniform", "lognormal"]
FailureCause = Literal["fail_next", "failure_rate"]


class LatencyConfig(BaseModel):
    """Added processing time of every charge/refund: ``mean_ms`` shaped by ``distribution``.

    ``uniform`` draws from mean ± ``jitter_ms``; ``lognormal`` has mean ``mean_ms`` and shape
    ``sigma`` (a long right tail, like real networks); every draw is capped at ``max_ms``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    distribution: Distribution = "none"
    mean_ms: float = Field(default=0.0, ge=0, le=60_000)
    jitter_ms: float = Field(default=0.0, ge=0, le=60_000)
    sigma: float = Field(default=0.5, ge=0, le=5)
    max_ms: float = Field(default=30_000.0, ge=0, le=600_000)


class FaultConfig(BaseModel):
    """The fault knobs, switchable at run time through ``PUT /admin/faults``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_rate: float = Field(default=0.02, ge=0, le=1)
    fail_next: int = Field(default=0, ge=0, le=1_000_000)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_delay_seconds: float = Field(default=10.0, ge=0, le=600)
    latency: LatencyConfig = LatencyConfig()
    seed: int | None = None

    def merged(self, patch: dict[str, Any]) -> FaultConfig:
        """A new, validated config: ``patch`` over this one (``latency`` merged key by key)."""
        data = self.model_dump()
        latency_patch = patch.get("latency")
        data.update(patch)
        if isinstance(latency_patch, dict):
            data["latency"] = {**self.latency.model_dump(), **latency_patch}
        return FaultConfig.model_validate(data)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What the gateway does to one request: wait, then fail (503) or process and maybe stall."""

    latency_seconds: float = 0.0
    failure: FailureCause | None = None
    timeout_seconds: float = 0.0


NO_FAULT = FaultDecision()


def sample_latency_ms(latency: LatencyConfig, rng: random.Random) -> float:
    """One latency draw in milliseconds (never negative, never above ``max_ms``)."""
    mean = latency.mean_ms
    if latency.distribution == "none" or mean <= 0:
        return 0.0
    if latency.distribution == "fixed":
        value = mean
    elif latency.distribution == "uniform":
        value = rng.uniform(max(0.0, mean - latency.jitter_ms), mean + latency.jitter_ms)
    else:  # lognormal, parametrised so that its mean is ``mean_ms``
        sigma = latency.sigma
        value = rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)
    return min(value, latency.max_ms)


def decide(config: FaultConfig, rng: random.Random, pending_failures: int) -> FaultDecision:
    """The fault decision for one request; ``pending_failures`` is what is left of fail_next."""
    latency_seconds = sample_latency_ms(config.latency, rng) / 1000.0
    if pending_failures > 0:
        return FaultDecision(latency_seconds, "fail_next")
    if config.failure_rate > 0 and rng.random() < config.failure_rate:
        return FaultDecision(latency_seconds, "failure_rate")
    if config.timeout_rate > 0 and rng.random() < config.timeout_rate:
        return FaultDecision(latency_seconds, None, config.timeout_delay_seconds)
    if latency_seconds == 0.0:
        return NO_FAULT
    return FaultDecision(latency_seconds)


class FaultInjector:
    """The live fault state; not thread-safe on its own (the gateway calls it under its lock)."""

    def __init__(self, config: FaultConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._pending_failures = config.fail_next

    @property
    def config(self) -> FaultConfig:
        """The current config, ``fail_next`` being the failures still to come."""
        return self._config.model_copy(update={"fail_next": self._pending_failures})

    def replace(self, config: FaultConfig, *, reseed: bool = True) -> None:
        """Switch to ``config``; re-seed the RNG (from ``config.seed``) unless told not to."""
        self._config = config
        self._pending_failures = config.fail_next
        if reseed:
            self._rng = random.Random(config.seed)

    def decide(self) -> FaultDecision:
        """The decision for the next request, consuming one ``fail_next`` failure if any."""
        decision = decide(self._config, self._rng, self._pending_failures)
        if decision.failure == "fail_next":
            self._pending_failures -= 1
        return decision
