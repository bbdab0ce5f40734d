"""The kill switch across processes: two separate OS processes evaluating in a loop both switch
to the baseline within a second of ``kill`` committing, without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.rollout import FlagSpec, kill, set_split

SCRIPT = Path(__file__).with_name("evaluator_process.py")


def test_two_processes_switch_to_the_baseline_within_a_second_of_kill(
    engine: Engine, pg_url: str, flag: FlagSpec
) -> None:
    with Session(engine) as session:
        set_split(
            session, flag, {"weights": {"events": 100}, "baseline": "dag"}, "ada", "all events"
        )
        session.commit()
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), pg_url, flag.name, flag.baseline, "20"],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().split() == ["ready", "events"]
        time.sleep(0.6)  # both are past their first version checks
        with Session(engine) as session:
            kill(session, flag, "ada", "incident")
            session.commit()
        killed_at = time.time()
        delays = []
        for process in processes:
            assert process.stdout is not None
            word, path, at = process.stdout.readline().split()
            assert (word, path) == ("switched", "dag")
            delays.append(float(at) - killed_at)
            process.terminate()
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
    print(f"\nkill reached the processes after {', '.join(f'{d * 1000:.0f} ms' for d in delays)}")
    assert all(delay < 1.0 for delay in delays), delays
