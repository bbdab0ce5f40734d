"""
### payment_state_machine_aws: the payment saga on AWS Step Functions

Exports the saga (`include/payments/saga.py`, `PAYMENT_MACHINE`) to Amazon States Language,
creates the state machine or updates its definition, then starts one execution with the order
as input: **export_asl → create_or_update → order_input → start_execution**.

Each action becomes a Lambda task named after it
(`arn:aws:lambda:<region>:<account>:function:<action>`); the compensations are `UNDO_<STEP>`
states that run newest first (see `segue.statemachine.asl`).
Deploying those Lambdas is outside this DAG. The AWS connection is `aws_default`; the region, the
account and the role Step Functions assumes come from the Params. Paused on creation: it talks to
AWS, so turn it on deliberately.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.step_function import StepFunctionHook
from airflow.providers.amazon.aws.operators.step_function import StepFunctionStartExecutionOperator
from airflow.sdk import Param, dag, get_current_context, task

from include.payment_dags import refuse_order_card_number
from include.payments import retry
from include.payments.errors import TransientFailure
from include.payments.order_form import ORDER_FORM
from include.payments.saga import PAYMENT_MACHINE
from segue.statemachine.asl import lambda_arn, to_asl_json

AWS_CONN_ID = "aws_default"


def retryable_errors() -> list[str]:
    """Lambda names an error by its exception class: list every retryable payment error."""
    classes, pending = [], [TransientFailure]
    while pending:
        cls = pending.pop()
        classes.append(cls.__name__)
        pending += cls.__subclasses__()
    return sorted(classes)


def create_or_update(client: Any, *, name: str, definition: str, role_arn: str) -> str:
    """Create the state machine, or update the definition of the one with that name; its ARN."""
    for page in client.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                arn = machine["stateMachineArn"]
                client.update_state_machine(
                    stateMachineArn=arn, definition=definition, roleArn=role_arn
                )
                return arn
    created = client.create_state_machine(name=name, definition=definition, roleArn=role_arn)
    return created["stateMachineArn"]


@dag(
    dag_id="payment_state_machine_aws",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=True,
    doc_md=__doc__,
    tags=["segue", "payments", "saga", "aws"],
    params={
        "region": Param("us-east-1", type="string", title="AWS region"),
        "account_id": Param("123456789012", type="string", pattern=r"^\d{12}$"),
        "role_arn": Param(
            "arn:aws:iam::123456789012:role/segue-step-functions",
            type="string",
            pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
            title="Role Step Functions assumes",
        ),
        **{name: Param(**spec) for name, spec in ORDER_FORM.items()},
    },
    default_args={"owner": "payments", **retry.AWS_EXPORT_TASK_RETRIES},
)
def payment_state_machine_aws() -> None:
    @task
    def export_asl() -> str:
        params = get_current_context()["params"]
        resource_for = lambda_arn(params["region"], params["account_id"])
        return to_asl_json(
            PAYMENT_MACHINE, resource_for=resource_for, retryable_errors=retryable_errors()
        )

    @task(task_id="create_or_update")
    def create_or_update_machine(definition: str) -> str:
        params = get_current_context()["params"]
        hook = StepFunctionHook(aws_conn_id=AWS_CONN_ID, region_name=params["region"])
        return create_or_update(
            hook.conn, name=PAYMENT_MACHINE.name, definition=definition, role_arn=params["role_arn"]
        )

    @task
    def order_input() -> dict[str, Any]:
        context = get_current_context()
        order = {name: context["params"][name] for name in ORDER_FORM}
        order["order_id"] = order["order_id"] or f"sfn-{context['run_id']}"
        refuse_order_card_number(order)  # the execution input names the card by its token only
        return order

    machine_arn = create_or_update_machine(export_asl())
    StepFunctionStartExecutionOperator(
        task_id="start_execution",
        aws_conn_id=AWS_CONN_ID,
        region_name="{{ params.region }}",
        state_machine_arn=machine_arn,
        state_machine_input=order_input(),
    )


payment_state_machine_aws()
