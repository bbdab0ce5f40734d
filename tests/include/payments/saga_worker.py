"""A separate worker process for the saga fault tests (run as a script, not collected).

python saga_worker.py crash-after-charge DB_URL GATEWAY_URL INSTANCE_ID
    runs the saga; right after the gateway charged, SIGKILLs itself before the state is saved
python saga_worker.py advance-once DB_URL GATEWAY_URL INSTANCE_ID BARRIER_DIR
    loads the instance, waits until a sibling is ready too, advances once, prints won/lost
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from include.payments.database import payments_engine
from include.payments.deps import PaymentDeps
from include.payments.gateway_client import GatewayClient
from include.payments.saga import payment_machine
from segue.statemachine.machine import Machine
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import ConcurrentTransition, SagaStore


def main(mode: str, db_url: str, gateway_url: str, instance_id: str, *rest: str) -> None:
    deps = PaymentDeps(payments_engine(db_url), GatewayClient(gateway_url))
    machine = payment_machine(deps)
    store = SagaStore(deps.engine)
    if mode == "crash-after-charge":
        charge = machine.actions["charge"]

        def charge_then_die(ctx):
            charge(ctx)
            os.kill(os.getpid(), signal.SIGKILL)

        crashing = Machine(machine.definition, {**machine.actions, "charge": charge_then_die})
        SagaRunner(crashing, store, actor=f"worker-{os.getpid()}").run(instance_id)
    elif mode == "advance-once":
        barrier = Path(rest[0])
        engine = SagaRunner(machine, store, actor=f"worker-{os.getpid()}")
        instance = store.load(instance_id)
        (barrier / str(os.getpid())).touch()
        deadline = time.monotonic() + 20
        while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            engine.advance(instance)
            print("won", flush=True)
        except ConcurrentTransition:
            print("lost", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
