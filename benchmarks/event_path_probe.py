"""Process probes for benchmarks/event_path.py: CPU ticks and memory from /proc, machine info,
RabbitMQ's memory, and a background monitor that prints progress and records the peaks.

Only /proc and ``rabbitmqctl`` are read; nothing here changes a process.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tools.services import ServiceProcess

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (empty when unreadable)."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line.split(":")[0]] = int(line.split()[1])
    return found


def pids_where(match: Callable[[str, str], bool]) -> list[int]:
    """Pids whose (comm, cmdline) satisfy ``match``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if match(comm, cmdline):
                pids.append(int(entry.name))
    return pids


def rabbit_pids() -> list[int]:
    return pids_where(lambda comm, _: comm == "beam.smp")


def postgres_pids(database: str | None = None) -> list[int]:
    """Every postgres process, or only the backends connected to ``database``."""
    if database is None:
        return pids_where(lambda comm, _: comm == "postgres")
    return pids_where(lambda comm, cmd: comm == "postgres" and f" {database} " in cmd)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def rabbitmq_memory() -> dict[str, Any]:
    """Memory of the broker: ``rabbitmqctl status`` total and beam.smp's VmRSS/VmHWM."""
    info: dict[str, Any] = {}
    pids = rabbit_pids()
    if pids:
        info["beam_pid"] = pids[0]
        info.update({f"beam_{k}_kib": v for k, v in memory_kib(pids[0]).items()})
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["rabbitmqctl", "--quiet", "status"], capture_output=True, text=True, timeout=30
        ).stdout
        for line in out.splitlines():
            if line.startswith("Total memory used:"):
                info["rabbitmqctl_total_memory"] = line.split(":", 1)[1].strip()
    return info


def pg_counters(engine: Any, database: str) -> dict[str, int]:
    """Cumulative counters of ``database`` from pg_stat_database (transactions, rows)."""
    from sqlalchemy import text

    query = text(
        "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted,"
        " tup_updated, tup_deleted FROM pg_stat_database WHERE datname = :d"
    )
    with engine.connect() as connection:
        row = connection.execute(query, {"d": database}).mappings().one()
    return {name: int(value) for name, value in row.items()}


def machine_info() -> dict[str, Any]:
    def version(*command: str) -> str:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            return f"unknown ({exc})"
        return out.strip().splitlines()[0] if out.strip() else "unknown"

    import kombu
    import psycopg
    import sqlalchemy

    rabbit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["rabbitmqctl", "--quiet", "status"], capture_output=True, text=True, timeout=30
        ).stdout
        rabbit = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if "RabbitMQ version" in ln),
            "unknown",
        )
    mem_total = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "nproc": os.cpu_count(),
        "memory_kib": int(mem_total),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kombu": kombu.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "rabbitmq": rabbit,
        "postgresql": version("psql", "-V"),
    }


@dataclass
class CpuSnapshot:
    at: float
    per_process: dict[str, float]
    machine_busy: float
    machine_total: float


class CpuMeter:
    """CPU seconds of each named process (and PostgreSQL, RabbitMQ, this process) between two
    snapshots: ``start()`` then ``stop()`` returns the deltas."""

    def __init__(
        self,
        processes: Mapping[str, int],
        database: str,
        db_counters: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.processes = dict(processes)
        self.database = database
        self.db_counters = db_counters or dict
        self._start: CpuSnapshot | None = None
        self._db_start: dict[str, int] = {}

    def snapshot(self) -> CpuSnapshot:
        values = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        values["rabbitmq (beam.smp)"] = sum(cpu_seconds(pid) for pid in rabbit_pids())
        values["postgres (our db backends)"] = sum(
            cpu_seconds(pid) for pid in postgres_pids(self.database)
        )
        values["postgres (all processes)"] = sum(cpu_seconds(pid) for pid in postgres_pids())
        times = os.times()
        values["benchmark (load generator)"] = times.user + times.system
        busy, total = machine_cpu()
        return CpuSnapshot(time.monotonic(), values, busy, total)

    def start(self) -> None:
        self._db_start = self.db_counters()
        self._start = self.snapshot()

    def stop(self, orders: int) -> dict[str, Any]:
        assert self._start is not None, "start() first"
        end, begin = self.snapshot(), self._start
        time.sleep(1.0)  # PostgreSQL flushes its statistics about once a second
        db_end = self.db_counters()
        db_per_order = {
            name: round((value - self._db_start.get(name, 0)) / max(orders, 1), 1)
            for name, value in db_end.items()
        }
        wall = end.at - begin.at
        deltas = {
            name: end.per_process[name] - begin.per_process.get(name, 0.0)
            for name in end.per_process
        }
        return {
            "wall_seconds": round(wall, 2),
            "machine_busy_percent_of_all_cpus": round(
                100
                * (end.machine_busy - begin.machine_busy)
                / max(end.machine_total - begin.machine_total, 1e-9),
                1,
            ),
            "cpu_seconds": {name: round(value, 2) for name, value in deltas.items()},
            "cpu_percent_of_one_core": {
                name: round(100 * value / max(wall, 1e-9), 1) for name, value in deltas.items()
            },
            "cpu_seconds_per_1000_orders": {
                name: round(1000 * value / max(orders, 1), 2) for name, value in deltas.items()
            },
            "postgres_per_order": db_per_order,
        }


@dataclass
class Peaks:
    """What the monitor saw: maxima over the samples."""

    max_backlog: dict[str, int] = field(default_factory=dict)  # queue or outbox -> max depth
    max_total_backlog: int = 0
    circuit_opened: dict[str, int] = field(default_factory=dict)
    circuit_open_samples: int = 0
    rabbit_max_rss_kib: int = 0
    metric_errors: int = 0


class Monitor:
    """A thread that every ``every`` seconds reads each service's /metrics, prints a progress
    line (placed, completed, backlog) and keeps the peaks."""

    def __init__(
        self,
        services: Mapping[str, ServiceProcess],
        progress: Callable[[], tuple[int, int]],
        *,
        every: float = 3.0,
        label: str = "",
    ) -> None:
        self.services = services
        self.progress = progress
        self.every = every
        self.label = label
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def sample(self) -> dict[str, int]:
        """One sample: backlog per queue/outbox (also folded into the peaks)."""
        backlogs: dict[str, int] = {}
        open_now = False
        for name, service in self.services.items():
            try:
                metrics = service.metrics()
            except (httpx.HTTPError, ValueError):
                self.peaks.metric_errors += 1
                continue
            for key in ("backlog", "outbox_pending"):
                if isinstance(metrics.get(key), int):
                    backlogs[f"{name}.{key}"] = metrics[key]
            opened = int(metrics.get("circuit_opened") or 0)
            self.peaks.circuit_opened[name] = max(self.peaks.circuit_opened.get(name, 0), opened)
            open_now = open_now or bool(metrics.get("circuit_open"))
        for key, depth in backlogs.items():
            self.peaks.max_backlog[key] = max(self.peaks.max_backlog.get(key, 0), depth)
        self.peaks.max_total_backlog = max(self.peaks.max_total_backlog, sum(backlogs.values()))
        self.peaks.circuit_open_samples += open_now
        for pid in rabbit_pids()[:1]:
            rss = memory_kib(pid).get("VmRSS", 0)
            self.peaks.rabbit_max_rss_kib = max(self.peaks.rabbit_max_rss_kib, rss)
        return backlogs

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            backlogs = self.sample()
            placed, completed = self.progress()
            queues = sum(v for k, v in backlogs.items() if k.endswith(".backlog"))
            outboxes = sum(v for k, v in backlogs.items() if k.endswith(".outbox_pending"))
            opened = sum(self.peaks.circuit_opened.values())
            print(
                f"  [{self.label} {time.monotonic() - self._started:6.1f}s] placed {placed:6d}"
                f"  completed {completed:6d}  queued {queues:6d}  outbox {outboxes:6d}"
                f"  circuit opened {opened}",
                flush=True,
            )


def peak_rss(services: Mapping[str, ServiceProcess]) -> dict[str, int]:
    """VmHWM (KiB) of each running service."""
    result = {}
    for name, service in services.items():
        with contextlib.suppress(OSError, AssertionError):
            result[name] = service.peak_rss_kib()
    return result
