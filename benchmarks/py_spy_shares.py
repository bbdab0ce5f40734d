"""Inclusive shares of a py-spy ``--format raw`` profile (collapsed stacks), per function.

Record a running service with the GIL holder only (so waiting threads do not count), then
aggregate:

    .venv/bin/py-spy record --gil --rate 200 -d 20 --format raw -o /tmp/inventory.txt --pid <pid>
    .venv/bin/python benchmarks/py_spy_shares.py /tmp/inventory.txt --top 60

Each line: the share of samples whose stack holds that function (counted once per stack), then
``function file``. The pids come from ``pgrep -f include.services.<name>`` while
``benchmarks/event_path.py --phases stepped`` runs.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    """``function (path/file.py:line)`` -> ``function file.py``."""
    function, _, where = frame.partition(" (")
    return f"{function} {where.split(':')[0].rsplit('/', 1)[-1]}".strip()


def shares(lines: list[str]) -> tuple[int, Counter[str]]:
    """(total samples, samples per function counted once per stack) of collapsed stacks.

    :param lines: ``frame;frame;... count`` lines.
    """
    total = 0
    inclusive: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack:
            continue
        total += int(count)
        for name in {frame_name(frame) for frame in stack.split(";")}:
            inclusive[name] += int(count)
    return total, inclusive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()
    total, inclusive = shares(args.profile.read_text().splitlines())
    print(f"{total} samples")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / max(total, 1):5.1f}% {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
