"""Benchmark: durable saga transitions per second from one process on PostgreSQL, against the
raw cost of the minimal SQL one transition needs (one UPDATE of the instance row plus one INSERT
into the audit trail, committed), measured in the same run on the same database.

    .venv/bin/python benchmarks/saga_transitions.py --instances 200

Modes: the engine one transition per commit (``SagaRunner.run``) with synchronous commit on and
off, and the engine committing a round of ``--batch`` instances' transitions together
(``SagaRunner.start_many`` + ``run_many``, group commit, synchronous commit on). Raw SQL, same
run, same database: UPDATE + INSERT + COMMIT as three statements (four round trips with
psycopg's implicit BEGIN), the same work as one autocommitted CTE statement (one round trip: the
cheapest form, and the baseline the ratio is judged against), and the CTE over ``--batch`` rows
per commit. Each mode runs ``--rounds`` times interleaved with the others; the best round counts
(the machine is shared and noisy), every round is recorded, with the CPU time per transition of
this process. Writes benchmarks/results/saga_transitions.json.

Target: >= 2,000 transitions/s with the engine at most 2x the raw SQL cost (AWS Step Functions
Standard refills 1,500 transitions/s per account in its largest regions).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg
from sqlalchemy import func, select

from segue.statemachine.definition import State, StateMachineDefinition, Transition
from segue.statemachine.machine import Machine
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import TRANSITIONS, SagaStore
from segue.store.engine import shared_engine
from tools.sandbox import fresh_database

RESULTS = Path(__file__).parent / "results" / "saga_transitions.json"
STEPS = 10
TARGET_PER_S, TARGET_RATIO = 2000, 2.0
DATA = {"order_id": "x", "amount": "10.00", "items": [{"sku": "SKU-MUG", "quantity": 1}]}
RAW_CTE = (
    "WITH m AS (UPDATE raw_instances SET state = %s, version = version + 1"
    " WHERE id = %s AND version = %s RETURNING id)"
    " INSERT INTO raw_transitions (instance_id, to_state, at) SELECT id, %s, now() FROM m"
)
RAW_CTE_MANY = (
    "WITH v AS (SELECT * FROM unnest(%s::text[], %s::int[]) AS v(id, version)),"
    " m AS (UPDATE raw_instances r SET state = %s, version = r.version + 1 FROM v"
    " WHERE r.id = v.id AND r.version = v.version RETURNING r.id)"
    " INSERT INTO raw_transitions (instance_id, to_state, at) SELECT id, %s, now() FROM m"
)


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


def engine_rate(url: str, instances: int, prefix: str, synchronous: bool, batch: int) -> dict:
    """Start and run ``instances`` chains; batch > 1 runs them ``batch`` at a time with
    ``run_many``. Counts the audit rows written (the start record included, as a transition)."""
    engine = shared_engine(url)
    store = SagaStore(engine, synchronous_commit=synchronous)
    saga = SagaRunner(chain_machine(), store, actor="bench")
    wall, cpu = time.perf_counter(), time.process_time()
    if batch > 1:
        for first in range(0, instances, batch):
            ids = [f"{prefix}-{i}" for i in range(first, min(first + batch, instances))]
            finals = saga.run_many(saga.start_many([(i, DATA) for i in ids]))
            assert all(final.status == "succeeded" for final in finals)
    else:
        for i in range(instances):
            final = saga.run(f"{prefix}-{i}", instance=saga.start(f"{prefix}-{i}", DATA))
            assert final.status == "succeeded"
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    with engine.connect() as connection:
        query = select(func.count()).select_from(TRANSITIONS)
        transitions = connection.execute(query.where(TRANSITIONS.c.instance_id.like(f"{prefix}-%")))
        count = transitions.scalar() or 0
    return {"per_s": count / wall, "transitions": count, "cpu_us": cpu / count * 1e6}


def raw_rate(url: str, transitions: int, form: str, synchronous: bool, batch: int) -> dict:
    """``transitions`` raw transitions with psycopg and nothing else, in one of three forms:
    ``update_insert_commit`` (BEGIN, UPDATE, INSERT, COMMIT), ``cte`` (one autocommitted
    statement), ``cte_batch`` (one statement moving ``batch`` rows per commit)."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        if not synchronous:
            connection.execute("SET synchronous_commit = off")
        connection.execute("DROP TABLE IF EXISTS raw_instances, raw_transitions")
        connection.execute(
            "CREATE TABLE raw_instances (id text PRIMARY KEY, state text, version int)"
        )
        connection.execute(
            "CREATE TABLE raw_transitions (id serial PRIMARY KEY, instance_id text, to_state text,"
            " at timestamptz)"
        )
        ids = [f"i{n}" for n in range(max(batch, 1))]
        connection.execute(
            "INSERT INTO raw_instances SELECT id, 'S0', 1 FROM unnest(%s::text[]) AS id", (ids,)
        )
        wall, cpu = time.perf_counter(), time.process_time()
        moved = 0
        if form == "update_insert_commit":
            connection.autocommit = False
            for version in range(1, transitions + 1):
                state = f"S{version % STEPS}"
                connection.execute(
                    "UPDATE raw_instances SET state = %s, version = version + 1 "
                    "WHERE id = 'i0' AND version = %s",
                    (state, version),
                )
                cursor = connection.execute(
                    "INSERT INTO raw_transitions (instance_id, to_state, at)"
                    " VALUES ('i0', %s, now())",
                    (state,),
                )
                connection.commit()
                moved += cursor.rowcount
        elif form == "cte":
            for version in range(1, transitions + 1):
                state = f"S{version % STEPS}"
                moved += connection.execute(RAW_CTE, (state, "i0", version, state)).rowcount
        else:
            for version in range(1, transitions // batch + 1):
                state = f"S{version % STEPS}"
                params = (ids, [version] * batch, state, state)
                moved += connection.execute(RAW_CTE_MANY, params).rowcount
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"per_s": moved / wall, "transitions": moved, "cpu_us": cpu / moved * 1e6}


def best(rounds: list[dict]) -> dict:
    top = max(rounds, key=lambda r: r["per_s"])
    return {
        "per_s": round(top["per_s"]),
        "cpu_us_per_transition": round(top["cpu_us"]),
        "rounds_per_s": [round(r["per_s"]) for r in rounds],
        "transitions": top["transitions"],
    }


def verdict(engine: dict, raw: dict) -> dict:
    ratio = round(raw["per_s"] / engine["per_s"], 2)
    met = engine["per_s"] >= TARGET_PER_S and ratio <= TARGET_RATIO
    return {"engine_cost_over_raw_sql": ratio, "target_met": met}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="instances per run_many round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    measures: dict[str, Callable[[str, int], dict]] = {
        "engine_sync_on": lambda url, r: engine_rate(url, args.instances, f"on{r}", True, 1),
        "engine_sync_off": lambda url, r: engine_rate(url, args.instances, f"off{r}", False, 1),
        "engine_batch_sync_on": lambda url, r: engine_rate(
            url, args.instances, f"batch{r}", True, args.batch
        ),
    }
    transitions = args.instances * (STEPS + 1)
    for synchronous, label in ((True, "on"), (False, "off")):
        for form in ("update_insert_commit", "cte"):
            measures[f"raw_{form}_sync_{label}"] = lambda url, r, f=form, s=synchronous: raw_rate(
                url, transitions, f, s, 1
            )
    measures["raw_cte_batch_sync_on"] = lambda url, r: raw_rate(
        url, transitions, "cte_batch", True, args.batch
    )
    rounds: dict[str, list[dict]] = {name: [] for name in measures}
    with fresh_database(f"segue_bench_saga_{os.getpid()}") as url:
        for r in range(args.rounds):
            for name, measure in measures.items():
                rounds[name].append(measure(url, r))
                print(f"round {r + 1} {name}: {rounds[name][-1]['per_s']:,.0f}/s", flush=True)
    modes = {name: best(values) for name, values in rounds.items()}
    result: dict[str, object] = {
        "instances": args.instances,
        "batch": args.batch,
        "rounds": args.rounds,
        "modes": modes,
        "verdicts": {
            "sync_on": verdict(modes["engine_sync_on"], modes["raw_cte_sync_on"]),
            "sync_off": verdict(modes["engine_sync_off"], modes["raw_cte_sync_off"]),
            "batch_sync_on_vs_raw_batch": verdict(
                modes["engine_batch_sync_on"], modes["raw_cte_batch_sync_on"]
            ),
            "batch_sync_on_vs_raw_single": verdict(
                modes["engine_batch_sync_on"], modes["raw_cte_sync_on"]
            ),
        },
        "target": f">= {TARGET_PER_S} transitions/s and engine <= {TARGET_RATIO}x the raw SQL "
        "cost (raw = the cheapest form of the same commit mode, measured in the same run)",
        "load_average": os.getloadavg(),
        "measured_at": datetime.now().isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
