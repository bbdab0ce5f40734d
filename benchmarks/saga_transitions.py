"""Benchmark: durable saga transitions per second from one process on PostgreSQL, against the
raw cost of the minimal SQL one transition needs (one UPDATE of the instance row plus one INSERT
into the audit trail, committed), measured in the same run on the same database.

    .venv/bin/python benchmarks/saga_transitions.py --instances 300

Writes benchmarks/results/saga_transitions.json. Target: >= 2,000 transitions/s with the engine
at most 2x the raw SQL cost (AWS Step Functions Standard refills 1,500 transitions/s per account
in its largest regions).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime
from pathlib import Path

import psycopg
from sqlalchemy import func, select

from segue.local.sandbox import fresh_database
from segue.statemachine.definition import State, StateMachineDefinition, Transition
from segue.statemachine.engine import SagaEngine
from segue.statemachine.machine import Machine
from segue.statemachine.store import TRANSITIONS, SagaStore
from segue.store.engine import shared_engine

RESULTS = Path(__file__).parent / "results" / "saga_transitions.json"
STEPS = 10


def chain_machine() -> Machine:
    """STEPS no-op task states in a row, then success: the engine's cost and nothing else."""
    names = [f"S{i}" for i in range(STEPS)]
    states = [
        State(
            name=name,
            kind="task",
            action="noop",
            side_effects=False,
            transitions=(Transition(event="done", target=nxt),),
        )
        for name, nxt in zip(names, [*names[1:], "DONE"], strict=True)
    ]
    definition = StateMachineDefinition(
        name="bench_chain", initial="S0", states=(*states, State(name="DONE", kind="succeed"))
    )
    return Machine(definition, {"noop": lambda ctx: None})


def engine_rate(url: str, instances: int, synchronous_commit: bool) -> tuple[float, int]:
    engine = shared_engine(url)
    store = SagaStore(engine, synchronous_commit=synchronous_commit)
    saga = SagaEngine(chain_machine(), store, actor="bench")
    prefix = "sync" if synchronous_commit else "async"
    data = {"order_id": "x", "amount": "10.00", "items": [{"sku": "SKU-MUG", "quantity": 1}]}
    started = time.perf_counter()
    for i in range(instances):
        started_instance = saga.start(f"{prefix}-{i}", data)
        final = saga.run(f"{prefix}-{i}", instance=started_instance)
        assert final.status == "succeeded"
    elapsed = time.perf_counter() - started
    with engine.connect() as connection:
        query = select(func.count()).select_from(TRANSITIONS)
        query = query.where(TRANSITIONS.c.instance_id.startswith(prefix))
        transitions = connection.execute(query).scalar()
    store.close()
    return transitions / elapsed, transitions


def raw_rate(url: str, transitions: int, synchronous_commit: bool) -> float:
    """The same number of (UPDATE + INSERT, COMMIT) pairs with psycopg and nothing else."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as connection:
        if not synchronous_commit:
            connection.execute("SET synchronous_commit = off")
        connection.execute("DROP TABLE IF EXISTS raw_instances, raw_transitions")
        connection.execute(
            "CREATE TABLE raw_instances (id text PRIMARY KEY, state text, version int)"
        )
        connection.execute(
            "CREATE TABLE raw_transitions (id serial PRIMARY KEY, instance_id text, to_state text,"
            " at timestamptz)"
        )
        connection.execute("INSERT INTO raw_instances VALUES ('i', 'S0', 1)")
        connection.commit()
        started = time.perf_counter()
        for version in range(1, transitions + 1):
            connection.execute(
                "UPDATE raw_instances SET state = %s, version = version + 1 "
                "WHERE id = 'i' AND version = %s",
                (f"S{version % STEPS}", version),
            )
            connection.execute(
                "INSERT INTO raw_transitions (instance_id, to_state, at) VALUES ('i', %s, now())",
                (f"S{version % STEPS}",),
            )
            connection.commit()
        return transitions / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=300)
    args = parser.parse_args()
    result: dict[str, object] = {"instances": args.instances}
    with fresh_database(f"segue_bench_saga_{os.getpid()}") as url:
        for mode, synchronous in (
            ("synchronous_commit_on", True),
            ("synchronous_commit_off", False),
        ):
            engine_per_s, transitions = engine_rate(url, args.instances, synchronous)
            raw_per_s = raw_rate(url, transitions, synchronous)
            result[mode] = {
                "transitions": transitions,
                "engine_transitions_per_second": round(engine_per_s),
                "raw_sql_transitions_per_second": round(raw_per_s),
                "engine_cost_over_raw_sql": round(raw_per_s / engine_per_s, 2),
            }
            print(mode, result[mode], flush=True)
    result["target"] = ">= 2000 transitions/s and engine <= 2.0x the raw SQL cost"
    result["measured_at"] = datetime.now().isoformat(timespec="seconds")
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
