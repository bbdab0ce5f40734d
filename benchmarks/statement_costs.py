"""What two ways of sending a statement cost in this process's CPU, each against the usual way,
in one run on a fresh PostgreSQL database:

1. a lone read (the intake's API key lookup, once per request) in a ``session_scope`` (``BEGIN``,
   the SELECT, ``COMMIT``: three round trips) against ``single_statement`` (autocommit: one);
2. an UPDATE whose WHERE holds fixed statuses (``advance_status``): ``status.in_(tuple)``, an
   expanding parameter rendered at every execution, against ``status_in`` (one bound parameter
   per status, rendered once).

    .venv/bin/python benchmarks/statement_costs.py --statements 3000 --rounds 5

Thread CPU time per statement (best of the rounds), the ratio new / usual, written to
``benchmarks/results/statement_costs.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Executable, bindparam, update
from sqlalchemy.orm import Session

from include.payments.database import payments_engine
from include.payments.order_rows import PROGRESS, status_in
from include.payments.tables import OrderRow
from include.services.api_clients import client_of_key, create_client
from segue.store.engine import session_scope, single_statement
from tools.sandbox import fresh_database

RESULTS = Path(__file__).parent / "results" / "statement_costs.json"


def cpu_us_per_call(call: Callable[[int], object], statements: int, rounds: int) -> float:
    """Best of ``rounds`` of ``statements`` calls, in thread CPU-µs per call.

    :param call: called with the call's index.
    :param statements: calls per round.
    :param rounds: rounds (the best is kept: the others saw more interference).
    """
    best = float("inf")
    call(0)  # warm: the statement compiled and prepared
    for _ in range(rounds):
        started = time.thread_time()
        for index in range(statements):
            call(index)
        best = min(best, (time.thread_time() - started) / statements * 1e6)
    return round(best, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=3000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    orders = OrderRow.__table__
    rows = [
        {
            "order_id": f"o-{index}",
            "status": "completed",
            "customer_email": "a@example.com",
            "amount": 1,
            "currency": "EUR",
            "payload": {},
        }
        for index in range(100)
    ]
    statuses = PROGRESS[:-1]
    by_id = orders.c.order_id == bindparam("oid")
    expanding = update(orders).where(by_id, orders.c.status.in_(statuses)).values(status="x")
    fixed = update(orders).where(by_id, status_in(statuses)).values(status="x")
    figures: dict[str, dict[str, float]] = {}
    with fresh_database("statement-costs") as url:
        engine = payments_engine(url)
        with session_scope(engine) as session:
            key = create_client(session, "bench")
            session.execute(orders.insert(), rows)

        def in_session(_: int) -> object:
            with session_scope(engine) as session:
                return client_of_key(session, key)

        def alone(_: int) -> object:
            with single_statement(engine) as connection:
                return client_of_key(connection, key)

        def update_with(session: Session, statement: Executable) -> Callable[[int], object]:
            def run(index: int) -> object:  # nothing matches: the orders are completed
                return session.execute(statement, {"oid": f"o-{index % 100}"})

            return run

        print(f"{args.rounds} rounds of {args.statements} statements each", flush=True)
        figures["lone read (API key lookup)"] = {
            "usual: session_scope": cpu_us_per_call(in_session, args.statements, args.rounds),
            "new: single_statement": cpu_us_per_call(alone, args.statements, args.rounds),
        }
        with session_scope(engine) as session:
            figures["UPDATE .. WHERE status IN (fixed statuses)"] = {
                "usual: in_(tuple), expanding": cpu_us_per_call(
                    update_with(session, expanding), args.statements, args.rounds
                ),
                "new: status_in, bound once": cpu_us_per_call(
                    update_with(session, fixed), args.statements, args.rounds
                ),
            }
        engine.dispose()
    for what, pair in figures.items():
        usual, new = pair.values()
        pair["ratio new / usual"] = round(new / usual, 2)
        names = list(pair)
        print(f"{what}: {names[0]} {usual} CPU-µs, {names[1]} {new} CPU-µs: {new / usual:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "command": f"benchmarks/statement_costs.py {' '.join(sys.argv[1:])}".strip(),
        "cpu_us_per_statement": figures,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
