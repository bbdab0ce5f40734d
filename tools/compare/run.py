"""One ``segue compare`` run: per path a nominal, a spike and a fault phase, measured.

Results are plain JSON-able dicts (``results.json`` in the report directory) so the report is
written from what was measured and nothing else.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from include.payments.database import payments_engine
from tools.chaos.invariants import settled_violations
from tools.chaos.orders import order_mix, prepare_stock
from tools.chaos.phase import (
    SETTLE_SECONDS,
    fault_phase,
    place_orders,
    routed_by_email,
    wait_terminal,
)
from tools.chaos.stack import Stack
from tools.compare.measure import CpuSampler, cpu_between, on_path, order_times, tracing_module
from tools.compare.observe import timeline_check
from tools.compare.scenario import GATEWAY_FAULTS, Scenario


class Progress:
    """A one-line progress bar on stderr: orders done of all the run will place.

    :param total: orders the whole run places.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def show(self, label: str, extra: int = 0) -> None:
        """Redraw the bar.

        :param label: what runs now.
        :param extra: orders of the current phase already terminal (not yet in ``done``).
        """
        done = min(self.total, self.done + extra)
        filled = int(30 * done / max(1, self.total))
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "." * (30 - filled)
        print(
            f"\r[{bar}] {done}/{self.total} orders {elapsed:5.0f}s  {label:<40}",
            end="",
            file=sys.stderr,
            flush=True,
        )


def machine() -> dict[str, Any]:
    """The machine the run measured: host, CPUs, load average before the run."""
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def run_phase(
    stack: Stack, engine: Engine, path: str, phase: str, orders: int, rate: float,
    timeout: float, progress: Progress, start: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Place one phase's orders, wait until they are terminal; what happened to each.

    :param stack: the stack.
    :param engine: its business store.
    :param path: the path.
    :param phase: ``nominal`` or ``spike``.
    :param orders: how many.
    :param rate: offered orders a second.
    :param timeout: seconds to wait for them.
    :param progress: the bar.
    :param start: the phase's first position in the order mix.
    """
    kinds = order_mix(orders, prefix=f"cmp-{path}-{phase}", start=start)
    progress.show(f"{path}: {phase} phase, placing")
    place_orders(stack, kinds, path, rate)
    label = f"{path}: {phase} phase, waiting"
    waiting = wait_terminal(engine, list(kinds), timeout, lambda n: progress.show(label, n))
    progress.done += len(kinds)
    times = order_times(engine, list(kinds))
    return {
        "phase": phase,
        "offered_rate": rate,
        "kinds": kinds,
        "not_terminal": waiting,
        "orders": {
            oid: {
                "decided": t[0].timestamp(),
                "terminal": t[1].timestamp() if t[1] else None,
                "status": t[2],
            }
            for oid, t in times.items()
        },
    }


def run_path(
    stack: Stack, engine: Engine, path: str, scenario: Scenario, sampler: CpuSampler,
    progress: Progress,
) -> dict[str, Any]:  # fmt: skip
    """The three phases of one path, its CPU, invariants and timelines.

    :param stack: the stack.
    :param engine: its business store.
    :param path: the path.
    :param scenario: the phases' sizes.
    :param sampler: the CPU sampler of the stack's processes.
    :param progress: the bar.
    """
    before, started = sampler.snapshot(), time.time()
    phases = [
        run_phase(stack, engine, path, "nominal", scenario.nominal_orders, scenario.nominal_rate,
                  scenario.timeout, progress),
        run_phase(stack, engine, path, "spike", scenario.spike_orders, scenario.spike_rate,
                  scenario.timeout, progress, start=scenario.nominal_orders),
    ]  # fmt: skip
    cpu_all = cpu_between(before, sampler.snapshot())
    ended = time.time()
    kinds = {oid: kind for phase in phases for oid, kind in phase["kinds"].items()}
    terminal = {
        oid: k for oid, k in kinds.items() if all(oid not in p["not_terminal"] for p in phases)
    }
    progress.show(f"{path}: checking invariants")
    violations = settled_violations(engine, terminal, stack.gateway_url, SETTLE_SECONDS)
    progress.show(f"{path}: fault phase")
    verdict = fault_phase(stack, engine, path, scenario.fault_orders, scenario.nominal_rate,
                          scenario.timeout, start=len(kinds))  # fmt: skip
    progress.done += scenario.fault_orders
    samples = [oid for oid, kind in kinds.items() if kind != "good"][:1]
    samples += [oid for oid, kind in kinds.items() if kind == "good"][
        : scenario.timeline_samples - len(samples)
    ]
    progress.show(f"{path}: reading timelines")
    return {
        "path": path,
        "started": started,
        "ended": ended,
        "phases": phases,
        "cpu_seconds": on_path(cpu_all, path),
        "cpu_seconds_all_processes": cpu_all,
        "invariant_violations": violations,
        "fault": {
            "name": verdict.fault,
            "injected": verdict.injected,
            "applied": verdict.applied,
            "orders": len(verdict.kinds),
            "not_terminal": verdict.not_terminal,
            "violations": verdict.violations,
            "seconds": round(verdict.seconds, 1),
            "holds": verdict.holds,
        },
        "timelines": {oid: timeline_check(stack, engine, oid, path) for oid in samples},
    }


def run_compare(
    stack: Stack, scenario: Scenario, paths: Sequence[str], roots: dict[str, int],
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> dict[str, Any]:  # fmt: skip
    """Run the scenario on each path of ``stack``; the results.

    :param stack: a running stack (checked before).
    :param scenario: the phases' sizes.
    :param paths: the paths to compare, in order.
    :param roots: the processes whose CPU is measured (group -> pid).
    :param log: where to say what happens besides the bar.
    """
    engine = payments_engine(stack.database_url)
    per_path = scenario.nominal_orders + scenario.spike_orders + scenario.fault_orders
    prepare_stock(engine, per_path * len(paths))
    admin = stack.gateway_admin()
    faults_before = admin.get_faults() if admin else None
    if admin:
        admin.set_faults(**GATEWAY_FAULTS)
    else:
        log("no gateway admin token: its faults and latency are left as they are")
    results: dict[str, Any] = {
        "scenario": scenario.describe(),
        "scenario_name": scenario.name,
        "machine": machine(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gateway": GATEWAY_FAULTS if admin else "unchanged (no admin token)",
        "cpu_measured": sorted(roots),
        "tracing_module": tracing_module(),
        "paths": {},
    }
    progress = Progress(per_path * len(paths))
    try:
        with CpuSampler(roots) as sampler, routed_by_email(engine, paths, "segue compare"):
            for path in paths:
                results["paths"][path] = run_path(stack, engine, path, scenario, sampler, progress)
    finally:
        if admin and faults_before is not None:
            admin.set_faults(**faults_before)
        print(file=sys.stderr)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return results
