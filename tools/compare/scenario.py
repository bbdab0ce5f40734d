"""The article's scenario scaled to this machine: the order mix, the gateway, the phases.

The article: 10,000 orders/hour (2.8/s) with spikes to 50,000 (13.9/s, 5x), 2% payment gateway
failures. One DAG run per order tops out near 0.5-0.9 runs/s on a 2-core machine (README,
*Benchmarks*), so every path gets the same load scaled down by ``scale``: the nominal phase
offers ``scale`` x 2.8 orders/s, the spike phase 5x that, as the article's spike does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ARTICLE_RATE = 10_000 / 3600
SPIKE_FACTOR = 5
# A realistic card gateway: 2% transient failures (503, retried) and a long-tailed latency
# (lognormal, mean 150 ms, capped at 3 s).
GATEWAY_FAULTS: dict[str, Any] = {
    "failure_rate": 0.02,
    "latency": {"distribution": "lognormal", "mean_ms": 150.0, "sigma": 0.6, "max_ms": 3000.0},
}


@dataclass(frozen=True)
class Scenario:
    """How many orders each phase places and how fast.

    :param name: ``quick`` or ``full``.
    :param scale: the share of the article's rate offered in the nominal phase.
    :param nominal_orders: orders of the nominal phase.
    :param spike_orders: orders of the spike phase (offered at 5x the nominal rate).
    :param fault_orders: orders of the fault phase (offered at the nominal rate).
    :param timeout: seconds a phase may wait for its orders to be terminal.
    :param timeline_samples: orders per path whose timeline is checked.
    """

    name: str
    scale: float
    nominal_orders: int
    spike_orders: int
    fault_orders: int
    timeout: float
    timeline_samples: int = 3

    @property
    def nominal_rate(self) -> float:
        """Orders a second offered in the nominal and fault phases."""
        return ARTICLE_RATE * self.scale

    @property
    def spike_rate(self) -> float:
        """Orders a second offered in the spike phase."""
        return self.nominal_rate * SPIKE_FACTOR

    def describe(self) -> str:
        """The scaling, in a sentence for the report."""
        return (
            f"{self.name}: the article's rates x {self.scale:g}: nominal {self.nominal_orders} "
            f"orders at {self.nominal_rate:.2f}/s (article 2.78/s), spike {self.spike_orders} "
            f"orders at {self.spike_rate:.2f}/s ({SPIKE_FACTOR}x, article 13.9/s), fault phase "
            f"{self.fault_orders} orders at {self.nominal_rate:.2f}/s; 1 in 10 orders declined, "
            "1 in 10 out of stock; gateway: 2% transient failures, lognormal latency mean 150 ms "
            "(sigma 0.6, capped at 3 s)"
        )


# quick: 8 orders a path, one declined (spike phase) and one out of stock (fault phase)
QUICK = Scenario("quick", 0.2, nominal_orders=2, spike_orders=3, fault_orders=3, timeout=420.0)
# full: what a shared 2-core machine finishes in about half an hour on the three DAG paths
FULL = Scenario("full", 0.2, nominal_orders=10, spike_orders=20, fault_orders=8, timeout=900.0)
