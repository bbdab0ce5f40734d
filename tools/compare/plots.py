"""The report's plots (matplotlib, Agg): each returns PNG bytes, saved and embedded as base64."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tools.compare.figures import cpu_per_order, latencies, orders_of, outcomes

STATUSES = ("completed", "failed", "not terminal")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def latency_cdf(paths: dict[str, Any]) -> bytes:
    """Share of orders finished within x seconds of their route decision, one line per path.

    :param paths: the run's per-path results.
    """
    figure, axes = plt.subplots(figsize=(7, 4))
    for path, result in paths.items():
        values, total = latencies(result), len(orders_of(result))
        label = f"{path} ({len(values)}/{total} terminal)"
        if values:  # the share is of all orders: a path that did not finish them stays below 1
            shares = [(i + 1) / total for i in range(len(values))]
            axes.step(values, shares, where="post", label=label)
        else:
            axes.plot([], [], label=label)
    axes.set_xscale("log")
    axes.set_xlabel("seconds from route decision to terminal status (log)")
    axes.set_ylabel("share of orders")
    axes.set_title("Latency per order, nominal + spike phases")
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def throughput(paths: dict[str, Any], bin_seconds: float) -> bytes:
    """Orders reaching a terminal status per second over time, since each path's start.

    :param paths: the run's per-path results.
    :param bin_seconds: width of a bin.
    """
    figure, axes = plt.subplots(figsize=(7, 4))
    for path, result in paths.items():
        ends = sorted(
            o["terminal"] - result["started"] for o in orders_of(result).values() if o["terminal"]
        )
        if not ends:
            continue
        bins = int(ends[-1] // bin_seconds) + 1
        counts = [0] * bins
        for end in ends:
            counts[int(end // bin_seconds)] += 1
        axes.plot(
            [i * bin_seconds for i in range(bins)], [c / bin_seconds for c in counts], label=path
        )
    axes.set_xlabel("seconds since the path's nominal phase started")
    axes.set_ylabel(f"orders finished per second ({bin_seconds:g} s bins)")
    axes.set_title("Throughput over time, nominal then spike")
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def outcome_bars(paths: dict[str, Any]) -> bytes:
    """Completed, failed and not-terminal orders per path (stacked).

    :param paths: the run's per-path results.
    """
    figure, axes = plt.subplots(figsize=(7, 4))
    names = list(paths)
    bottom = [0] * len(names)
    for status in STATUSES:
        heights = [outcomes(paths[name]).get(status, 0) for name in names]
        axes.bar(names, heights, bottom=bottom, label=status)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("orders (nominal + spike)")
    axes.set_title("Outcomes per path (1 in 10 declined, 1 in 10 out of stock by design)")
    axes.legend()
    return _png(figure)


def cpu_bars(paths: dict[str, Any]) -> bytes:
    """CPU seconds of the stack's processes per order, per path.

    :param paths: the run's per-path results.
    """
    figure, axes = plt.subplots(figsize=(7, 4))
    names = list(paths)
    axes.bar(names, [cpu_per_order(paths[name]) for name in names], color="tab:purple")
    axes.set_ylabel("CPU seconds per order")
    axes.set_title("CPU per order (stack processes on this host, sampled 0.5 s)")
    return _png(figure)
