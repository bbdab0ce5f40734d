"""The figures of a ``segue compare`` run, computed from its results and nothing else."""

from __future__ import annotations

from typing import Any

from segue.rollout.figures import percentile

ARTICLE_TABLE = {  # the article's rows: (linear DAG, state machine, choreography)
    "Latency per order": (
        "Sum of all steps",
        "Sum of sequential branches",
        "Max of parallel steps + overhead",
    ),
    "Fault tolerance": (
        "Retry or full failure",
        "Stateful recovery, compensation",
        "Isolated failures, eventual consistency",
    ),
    "Observability": ("High (central log)", "High (state store)", "Low (requires tracing)"),
    "Scalability bottleneck": ("Coordinator", "State store", "Event bus"),
}
ARTICLE_COLUMN = {"dag": 0, "saga": 1, "hybrid": 0, "events": 2}
PATH_TITLE = {
    "dag": "Linear DAG (`payment_pipeline`)",
    "saga": "State machine (`payment_state_machine`)",
    "hybrid": "Hybrid DAG + charge service (`payment_hybrid`)",
    "events": "Choreography (event path)",
}


def orders_of(path_result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every order of the nominal and spike phases: decided, terminal, status."""
    return {oid: o for phase in path_result["phases"] for oid, o in phase["orders"].items()}


def latencies(path_result: dict[str, Any], phase: str | None = None) -> list[float]:
    """Seconds from route decision to terminal status, ascending (terminal orders only).

    :param path_result: one path's results.
    :param phase: only this phase (default: nominal and spike).
    """
    phases = [p for p in path_result["phases"] if phase in (None, p["phase"])]
    values = [
        o["terminal"] - o["decided"]
        for p in phases
        for o in p["orders"].values()
        if o["terminal"] is not None
    ]
    return sorted(values)


def latency_text(values: list[float]) -> str:
    """``p50 / p95 / p99`` in seconds, or ``none terminal``."""
    if not values:
        return "none terminal"
    return " / ".join(f"{percentile(values, q):.2f}" for q in (0.5, 0.95, 0.99)) + " s"


def throughput_text(path_result: dict[str, Any]) -> str:
    """The spike phase's finishing rate, the rate offered and how many orders finished."""
    spike = next(p for p in path_result["phases"] if p["phase"] == "spike")
    done, offered = spike_throughput(path_result)
    finished = len(spike["orders"]) - len(spike["not_terminal"])
    return (
        f"{done:.2f} orders/s at {offered:.2f}/s offered "
        f"({finished}/{len(spike['kinds'])} spike orders terminal within the wait)"
    )


def spike_throughput(path_result: dict[str, Any]) -> tuple[float, float]:
    """Orders a second the path finished in the spike phase (first decision to last terminal
    status), and the rate offered."""
    spike = next(p for p in path_result["phases"] if p["phase"] == "spike")
    orders = list(spike["orders"].values())
    ends = [o["terminal"] for o in orders if o["terminal"] is not None]
    if not ends:
        return 0.0, spike["offered_rate"]
    span = max(ends) - min(o["decided"] for o in orders)
    return len(ends) / max(span, 1e-6), spike["offered_rate"]


def outcomes(path_result: dict[str, Any]) -> dict[str, int]:
    """How many orders of the nominal and spike phases ended in each status."""
    counts: dict[str, int] = {}
    for order in orders_of(path_result).values():
        status = order["status"] if order["terminal"] is not None else "not terminal"
        counts[status] = counts.get(status, 0) + 1
    return counts


def cpu_per_order(path_result: dict[str, Any]) -> float:
    """CPU seconds of the stack's processes per order of the nominal and spike phases."""
    orders = len(orders_of(path_result))
    return sum(path_result["cpu_seconds"].values()) / max(1, orders)


def bottleneck(path_result: dict[str, Any]) -> str:
    """The busiest process group and whether the spike was kept up with."""
    cpu = path_result["cpu_seconds"]
    total = sum(cpu.values()) or 1.0
    group, seconds = max(cpu.items(), key=lambda item: item[1], default=("none", 0.0))
    done, offered = spike_throughput(path_result)
    pace = (
        "kept up with the spike"
        if done >= 0.9 * offered
        else f"fell behind the spike ({done:.2f}/s < {offered:.2f}/s offered)"
    )
    return f"{group}: {seconds / total:.0%} of the stack's CPU; {pace}"


def fault_text(path_result: dict[str, Any]) -> str:
    """The fault phase's verdict in a cell."""
    fault = path_result["fault"]
    if not fault["applied"]:
        return f"{fault['name']} {fault['injected']}"
    terminal = fault["orders"] - len(fault["not_terminal"])
    took = f"{fault['seconds']:.0f} s"
    if fault["not_terminal"]:
        return (
            f"{fault['name']}: only {terminal}/{fault['orders']} orders terminal within the "
            f"phase's wait ({took}); {len(fault['violations'])} violations among the terminal ones"
        )
    verdict = "invariants hold" if fault["holds"] else f"{len(fault['violations'])} violations"
    return f"{fault['name']}: {terminal}/{fault['orders']} orders terminal, {verdict} ({took})"


def observability_text(path_result: dict[str, Any], tracing: str | None) -> str:
    """Timelines complete out of sampled, and the trace check."""
    checks = path_result["timelines"].values()
    complete = sum(1 for c in checks if c["complete"])
    # The run does not collect spans, so it cannot say whether each order was one trace; the
    # tests do (tests/faults/test_traces.py, tests/e2e/test_traces.py, an OTLP receiver).
    trace = (
        f"one trace: not measured by this run ({tracing} exports each order's trace over OTLP "
        "when OTEL_EXPORTER_OTLP_ENDPOINT is set)"
        if tracing
        else "one trace: not measured (no segue.tracing module in this code base)"
    )
    return f"one timeline: {complete}/{len(checks)} sampled orders complete; {trace}"


def invariants_hold(results: dict[str, Any]) -> bool:
    """Every order of every phase terminal and every invariant held, on every path."""
    for path_result in results["paths"].values():
        if path_result["invariant_violations"] or not path_result["fault"]["holds"]:
            return False
        if any(p["not_terminal"] for p in path_result["phases"]):
            return False
    return True
