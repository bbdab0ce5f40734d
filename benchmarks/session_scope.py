"""CPU per transaction of ``segue.store.engine.session_scope`` against the form it replaced (a
``sessionmaker`` built per call), measured in the same run on the same database.

Each round runs ``--transactions`` transactions of one ``SELECT 1`` per form, interleaved, and
reports process CPU time per transaction; the best of ``--rounds`` is kept, and the ratio is
printed. A ``sessionmaker`` makes a new ``Session`` subclass, and SQLAlchemy builds that class's
event dispatcher on its first transaction, which is the cost being compared.

    .venv/bin/python benchmarks/session_scope.py --transactions 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from segue.store.engine import build_engine, session_scope
from tools.sandbox import POSTGRES, fresh_database

RESULTS = Path(__file__).parent / "results" / "session_scope.json"
SELECT_ONE = text("SELECT 1")


@contextmanager
def sessionmaker_per_call(engine: Engine):  # the form session_scope had before
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def cpu_us_per_transaction(scope: Callable, engine: Engine, transactions: int) -> float:
    """Process CPU µs per transaction of ``scope`` running one ``SELECT 1``."""
    started = time.process_time()
    for _ in range(transactions):
        with scope(engine) as session:
            session.execute(SELECT_ONE)
    return (time.process_time() - started) / transactions * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    forms = {"session_scope": session_scope, "sessionmaker_per_call": sessionmaker_per_call}
    best = {name: float("inf") for name in forms}
    with fresh_database("segue_bench_session_scope") as url:
        engine = build_engine(url)
        for scope in forms.values():  # warm up: connections, statement caches
            cpu_us_per_transaction(scope, engine, 200)
        for round_ in range(1, args.rounds + 1):
            for name, scope in forms.items():
                best[name] = min(
                    best[name], cpu_us_per_transaction(scope, engine, args.transactions)
                )
            print(
                f"round {round_}/{args.rounds}: "
                + ", ".join(f"{n} {v:.0f} µs" for n, v in best.items()),
                flush=True,
            )
        engine.dispose()
    ratio = best["sessionmaker_per_call"] / best["session_scope"]
    result = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "postgres": POSTGRES,
        "transactions_per_round": args.transactions,
        "rounds": args.rounds,
        "cpu_us_per_transaction_best": {n: round(v, 1) for n, v in best.items()},
        "sessionmaker_per_call_over_session_scope": round(ratio, 2),
    }
    print(json.dumps(result, indent=2))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
