"""
### payment_state_machine: the saga path

One run per order drives the payment **state machine** (`include/payments/saga.py`):
ORDER_RECEIVED → VALIDATING → CHARGING → FULFILMENT (INVENTORY_RESERVED ∥ RECEIPT_SENT)
→ SHIPPING_NOTIFIED → SUCCEEDED. State and data are saved after every transition, with an audit
trail (see the *Sagas* page). When a step fails for good the machine compensates what was done,
in reverse order (cancel receipt, release stock, refund, mark the order failed).

While the saga waits (a retry backoff after a gateway error) the task **defers** instead of
holding a worker slot. Same trigger form as `payment_pipeline`.
"""

from __future__ import annotations

from airflow.sdk import dag

from include.payment_dags import SAGA_DEFAULT_ARGS, order_params, prepare_order
from segue.airflow.operators.saga import RunSagaOperator


@dag(
    dag_id="payment_state_machine",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "saga"],
    params=order_params(),
    default_args=SAGA_DEFAULT_ARGS,
)
def payment_state_machine() -> None:
    RunSagaOperator(task_id="run_saga", machine="payment_saga", data=prepare_order())


payment_state_machine()
