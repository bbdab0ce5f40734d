"""A separate process evaluating a flag in a loop through OpenFeature, for the kill-switch test.

``python tests/segue/rollout/evaluator_process.py URL FLAG BASELINE SECONDS`` prints ``ready
<path>`` after its first evaluation, then ``switched <path> <wall time>`` when the path it gets
changes, and ``evaluations <n>`` at the end.
"""

from __future__ import annotations

import sys
import time

from openfeature.evaluation_context import EvaluationContext

from segue.rollout import rollout_client
from segue.store.engine import build_engine


def main(url: str, flag: str, baseline: str, seconds: float) -> int:
    client = rollout_client(build_engine(url))
    context = EvaluationContext(targeting_key="ord-1", attributes={"order_id": "ord-probe"})
    path = client.get_string_value(flag, baseline, context)
    print(f"ready {path}", flush=True)
    deadline, count = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        now = client.get_string_value(flag, baseline, context)
        count += 1
        if now != path:
            print(f"switched {now} {time.time():.6f}", flush=True)
            path = now
        time.sleep(0.001)
    print(f"evaluations {count}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
