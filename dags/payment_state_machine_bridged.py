"""
### payment_state_machine_bridged: the saga path, charging through the charge service

One run per order drives the **bridged payment state machine** (`include/payments/saga_bridged.py`):
the same saga as `payment_state_machine`, except that CHARGING sends the command
`ChargeRequested` to the charge service over RabbitMQ and the instance waits in AWAITING_CHARGE
for its reply (`charge_completed` / `charge_failed`, delivered by the `saga-replies` service),
or for a 10-minute timeout that fails and compensates the saga.

While the saga waits for the reply (or a retry backoff) the task **defers** instead of holding
a worker slot. Needs the event path's `charge` and `saga-replies` services running. Same trigger
form as `payment_pipeline`.
"""

from __future__ import annotations

from airflow.sdk import dag

from include.payment_dags import SAGA_DEFAULT_ARGS, order_params, prepare_order
from include.payments.saga_bridged import NAME as BRIDGED_SAGA  # importing registers it
from segue.airflow.operators.saga import RunSagaOperator


@dag(
    dag_id="payment_state_machine_bridged",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "saga", "bridge"],
    params=order_params(),
    default_args=SAGA_DEFAULT_ARGS,
)
def payment_state_machine_bridged() -> None:
    RunSagaOperator(task_id="run_saga", machine=BRIDGED_SAGA, data=prepare_order())


payment_state_machine_bridged()
