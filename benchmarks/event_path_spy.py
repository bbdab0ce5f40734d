"""Where an order's CPU-milliseconds go, part by part: ``event_path.py --spy`` records every Python
process of the fleet with py-spy during each step of the stepped phase, and this module turns
the samples into CPU-ms per order per part of the code.

Each process's samples (py-spy ``--format raw``, ``--gil``: only the thread holding the GIL, so
a thread waiting for PostgreSQL's answer or for a CPU does not count; ``--nonblocking``) are
sorted into parts by the frames on their stack (:data:`ROLES`), and each part's share of the
process's samples is multiplied by the CPU-ms per order the step's meter measured for that
process. PostgreSQL and RabbitMQ are not Python: they appear as a whole. The profilers run
beside the fleet on the same cores, so a step run with ``--spy`` is for the shares, not for
the figures of the clean runs.

Offline, on files recorded by hand (``py-spy record --format raw -o FILE --pid PID``)::

    .venv/bin/python benchmarks/event_path_spy.py inventory=/tmp/inventory.txt \\
        --cpu-ms inventory=6.7
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from py_spy_shares import frame_name

PY_SPY = Path(sys.executable).with_name("py-spy")
SAMPLES_PER_SECOND = 100

# Each role is recognised by a frame on the stack (a frame reads "function file.py"); within
# a role, the first part with one of its frames on the stack takes the sample, and a part without
# frames takes the rest. Specific before general: a relay's publish before its drain, a
# handler's inbox claim before its transaction.
ROLES: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    (
        "relay",
        "_relay runtime.py",
        (
            ("publish + confirms", ("publish_many publisher.py",)),
            ("breaker's backlog reads", ("blocked_by relay.py",)),
            ("drain: DELETE .. RETURNING, commit", ("drain_once relay.py",)),
            ("outbox count for /metrics", ("pending relay.py",)),
            ("idle loop: wait, heartbeats", ()),
        ),
    ),
    (
        "consumer",
        "_consume runtime.py",
        (
            ("retry or park", ("_later consumer.py", "_park consumer.py")),
            ("wait + read frames", ("_fill runtime.py",)),
            ("decode, validate, content hash", ("_decode consumer.py", "digest batch.py")),
            ("inbox claim", ("_claim_together consumer.py", "claim inbox.py")),
            ("outbox insert", ("add_many_to_outbox outbox.py", "add_to_outbox outbox.py")),
            ("handler: domain SQL + logic", ("_run_handler consumer.py",)),
            ("event log's batch insert", ("record_batch service.py",)),
            ("transaction begin + commit", ("session_scope engine.py",)),
            ("ack", ("ack_together batch.py", "ack message.py")),
            ("queue depths for /metrics", ("_record_backlogs runtime.py",)),
            ("other", ()),
        ),
    ),
    (
        "intake",
        "intake_http.py",
        (
            ("API key lookup", ("lookup_client intake_http.py",)),
            ("card token lookup at the gateway", ("order_from_input payment_methods.py",)),
            ("placement transaction (route, placement, outbox)", ("place intake_http.py",)),
            ("HTTP stack and request handling", ()),
        ),
    ),
    ("health endpoint", "health.py", (("", ()),)),
)
OTHER = "other (interpreter, thread switches, unattributed)"


def part_of(stack: str) -> str:
    """The part of the code a sampled stack belongs to (:data:`ROLES`, else :data:`OTHER`).

    :param stack: ``frame;frame;...`` as py-spy's raw format writes it (outermost first).
    """
    frames = [frame_name(frame) for frame in stack.split(";")]

    def on_stack(markers: tuple[str, ...]) -> bool:
        return any(marker in frame for frame in frames for marker in markers)

    for role, marker, parts in ROLES:
        if on_stack((marker,)):
            for part, markers in parts:
                if not markers or on_stack(markers):
                    return f"{role}: {part}" if part else role
    return OTHER


def part_samples(lines: list[str]) -> Counter[str]:
    """Samples per part of one process's raw py-spy profile.

    :param lines: ``frame;frame;... count`` lines.
    """
    parts: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            parts[part_of(stack)] += int(count)
    return parts


def breakdown(
    profiles: Mapping[str, Path],
    cpu_ms_per_order: Mapping[str, float],
    counted_in_others: tuple[str, ...] = (),
) -> dict[str, Any]:
    """CPU-ms per order per part, per process and summed over processes.

    :param profiles: process name -> its raw py-spy file.
    :param cpu_ms_per_order: process name -> CPU-ms per order measured in the same step (the
        processes without a profile, e.g. PostgreSQL, are listed as a whole).
    :param counted_in_others: names in ``cpu_ms_per_order`` that are part of another (not
        added twice).
    """
    per_process: dict[str, dict[str, float]] = {}
    total: Counter[str] = Counter()
    for name, path in profiles.items():
        samples = part_samples(path.read_text().splitlines()) if path.exists() else Counter()
        count = sum(samples.values())
        cpu = cpu_ms_per_order.get(name, 0.0)
        if not count:
            per_process[name] = {"(no samples)": round(cpu, 2)}
            total[f"{name} (no samples)"] += cpu
            continue
        shares = {part: cpu * n / count for part, n in samples.most_common()}
        per_process[name] = {part: round(ms, 2) for part, ms in shares.items()}
        for part, ms in shares.items():
            total[part] += ms
    for name, cpu in cpu_ms_per_order.items():
        if name not in profiles and name not in counted_in_others:
            total[f"{name} (whole process)"] += cpu
    return {
        "cpu_ms_per_order_by_part": {part: round(ms, 2) for part, ms in total.most_common()},
        "cpu_ms_per_order_by_process_and_part": per_process,
    }


@contextmanager
def spying(pids: Mapping[str, int], seconds: float, out_dir: Path, label: str) -> Iterator[dict]:
    """py-spy records each of ``pids`` for ``seconds`` while the block runs; yields name -> file.

    :param pids: process name -> pid (Python processes only).
    :param seconds: how long to record (the step's arrivals).
    :param out_dir: where the raw files go.
    :param label: a prefix of the files (the step).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / f"spy-{label}-{name}.txt" for name in pids}
    spies = [
        subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--nonblocking",
                "--gil",
                "--rate",
                str(SAMPLES_PER_SECOND),
                "--duration",
                str(max(1, round(seconds))),
                "--format",
                "raw",
                "--output",
                str(files[name]),
                "--pid",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield files
    finally:
        for spy in spies:
            try:
                spy.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()


def print_breakdown(what: str, parts: Mapping[str, Any], top: int = 25) -> None:
    """The step's CPU-ms per order by part, largest first.

    :param what: what was profiled (e.g. "10 orders/s").
    :param parts: ``breakdown``'s result.
    :param top: how many parts to print.
    """
    by_part = parts["cpu_ms_per_order_by_part"]
    print(f"\nwhere an order's CPU goes, {what} (py-spy, CPU-ms per order):")
    for part, ms in list(by_part.items())[:top]:
        print(f"  {ms:7.2f}  {part}")
    print(f"  {sum(by_part.values()):7.2f}  all")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", help="NAME=FILE, raw py-spy output per process")
    parser.add_argument(
        "--cpu-ms", nargs="*", default=[], help="NAME=MS, CPU-ms per order of that process"
    )
    args = parser.parse_args()
    profiles = {name: Path(path) for name, _, path in (p.partition("=") for p in args.profiles)}
    cpu = {name: float(ms) for name, _, ms in (c.partition("=") for c in args.cpu_ms)}
    for name in profiles:
        cpu.setdefault(name, 1.0)  # without a figure: shares of one
    print_breakdown("offline", breakdown(profiles, cpu))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
