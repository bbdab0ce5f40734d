"""The ASL export: structure checked field by field, then accepted by moto's Step Functions
(a real HTTP server, ASL parser switched on) and executed far enough to prove the Catch routing."""

from __future__ import annotations

import copy
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from segue.statemachine.asl import (
    COMPENSATED,
    COMPENSATION_FAILED,
    WAIT_FOR_EVENT_RESOURCE,
    AslError,
    check_asl,
    lambda_arn,
    to_asl,
    to_asl_json,
)
from segue.statemachine.definition import RetryPolicy, State, StateMachineDefinition, Transition
from segue.statemachine.validation import validate

REGION, ACCOUNT = "us-east-1", "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/segue"
RESOURCE = lambda_arn(REGION, ACCOUNT)
POLICY = RetryPolicy(
    max_attempts=4, backoff_seconds=2, backoff_rate=3, max_delay_seconds=30, jitter=0.2
)


def _t(event: str, target: str, guard: str | None = None) -> Transition:
    return Transition(event=event, target=target, guard=guard)


def small_machine() -> StateMachineDefinition:
    """A (compensable) → parallel[B (compensable), C (pivot)] → D (pivot, guarded) → succeed."""
    return StateMachineDefinition(
        name="small",
        version=3,
        initial="A",
        states=(
            State(name="A", kind="task", action="reserve", compensation="release",
                  retry=POLICY, timeout_seconds=9.5,
                  transitions=(_t("done", "P"), _t("failed", "FAILED"), _t("timeout", "FAILED"))),
            State(name="P", kind="parallel", branches=("B", "C"),
                  transitions=(_t("done", "D"), _t("failed", "FAILED"))),
            State(name="B", kind="task", action="charge", compensation="refund",
                  transitions=(_t("done", "D"),)),
            State(name="C", kind="task", action="notify", pivot=True,
                  transitions=(_t("done", "D"),)),
            State(name="D", kind="task", action="ship", pivot=True,
                  transitions=(_t("done", "VIP", "vip"), _t("done", "FAILED", "fraud"),
                               _t("done", "DONE"), _t("failed", "FAILED"))),
            State(name="VIP", kind="succeed"),
            State(name="DONE", kind="succeed"),
            State(name="FAILED", kind="fail", description="the order failed"),
        ),
    )  # fmt: skip


ACTIONS = ("reserve", "release", "charge", "refund", "notify", "ship")


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    definition = small_machine()
    validate(definition, ACTIONS, ("vip", "fraud"))
    return to_asl(definition, resource_for=RESOURCE)


def test_comment_and_start(asl):
    assert asl["StartAt"] == "A"
    assert asl["Comment"] == "small v3"


def test_task_retry_timeout_and_resource_from_the_policy(asl):
    a = asl["States"]["A"]
    assert a["Type"] == "Task"
    assert a["Resource"] == "arn:aws:lambda:us-east-1:123456789012:function:reserve"
    assert a["TimeoutSeconds"] == 10
    assert a["Retry"] == [
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 2,
            "MaxAttempts": 3,
            "BackoffRate": 3.0,
            "MaxDelaySeconds": 30,
            "JitterStrategy": "FULL",
        }
    ]
    assert "Retry" not in asl["States"]["D"], "no policy, no retrier"


def test_retryable_error_names_are_used():
    out = to_asl(small_machine(), resource_for=RESOURCE, retryable_errors=["TransientFailure"])
    assert out["States"]["A"]["Retry"][0]["ErrorEquals"] == ["TransientFailure"]


def test_first_task_has_nothing_to_undo_and_catches_to_the_fail_state(asl):
    catch = {c["ErrorEquals"][0]: c["Next"] for c in asl["States"]["A"]["Catch"]}
    assert catch == {"States.Timeout": "FAILED", "States.ALL": "FAILED"}
    assert [c["ErrorEquals"][0] for c in asl["States"]["A"]["Catch"]][-1] == "States.ALL"


def test_parallel_has_one_single_state_branch_per_task(asl):
    p = asl["States"]["P"]
    assert p["Type"] == "Parallel"
    assert [b["StartAt"] for b in p["Branches"]] == ["B", "C"]
    for branch in p["Branches"]:
        (name,) = branch["States"]
        assert branch["States"][name]["End"] is True
        assert "Catch" not in branch["States"][name], "a branch failure fails the Parallel"
    assert p["Next"] == "D"
    assert "B" not in asl["States"] and "C" not in asl["States"], "branch states only nested"


def chain(asl: dict[str, Any], head: str) -> list[str]:
    """Follow Next from ``head`` until a terminal state."""
    names = [head]
    while "Next" in asl["States"][names[-1]]:
        names.append(asl["States"][names[-1]]["Next"])
    return names


def test_failure_in_or_after_the_parallel_undoes_the_branches_then_a(asl):
    states = asl["States"]
    p_catch = states["P"]["Catch"][-1]["Next"]
    d_catch = states["D"]["Catch"][-1]["Next"]
    assert chain(asl, p_catch) == ["UNDO_B", "UNDO_A", COMPENSATED]
    assert d_catch == p_catch, "C and D are pivots: the same steps are undone"
    assert states["UNDO_B"]["Resource"].endswith(":function:refund")
    assert states["UNDO_A"]["Resource"].endswith(":function:release")
    for undo in ("UNDO_A", "UNDO_B"):
        assert states[undo]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": COMPENSATION_FAILED}
        ]
        assert states[undo]["ResultPath"] is None
    assert states["UNDO_A"]["Retry"][0]["MaxAttempts"] == 3, "compensation keeps A's policy"
    assert states[COMPENSATED] == {
        "Type": "Fail",
        "Error": "Compensated",
        "Cause": "compensation ran",
    }
    assert states[COMPENSATION_FAILED]["Type"] == "Fail"
    assert states["FAILED"] == {"Type": "Fail", "Error": "FAILED", "Cause": "the order failed"}


def test_guarded_done_becomes_a_choice_and_fail_targets_compensate(asl):
    states = asl["States"]
    assert states["D"]["Next"] == "D_DONE"
    choice = states["D_DONE"]
    assert choice["Type"] == "Choice"
    assert choice["Default"] == "DONE"
    targets = [rule["Next"] for rule in choice["Choices"]]
    assert targets == ["VIP", "UNDO_B"], "a guarded edge into FAILED runs compensation"
    assert choice["Choices"][0]["And"] == [
        {"Variable": "$.guards.vip", "IsPresent": True},
        {"Variable": "$.guards.vip", "BooleanEquals": True},
    ]


def test_waits_map_to_wait_or_a_task_token():
    definition = StateMachineDefinition(
        name="waits",
        initial="PAUSE",
        events=("approved",),
        states=(
            State(name="PAUSE", kind="wait", timeout_seconds=4.2,
                  transitions=(_t("timeout", "APPROVAL"),)),
            State(name="APPROVAL", kind="wait", timeout_seconds=60,
                  transitions=(_t("approved", "OK"), _t("timeout", "NO"))),
            State(name="OK", kind="succeed"),
            State(name="NO", kind="fail"),
        ),
    )  # fmt: skip
    states = to_asl(definition, resource_for=RESOURCE)["States"]
    assert states["PAUSE"] == {"Type": "Wait", "Seconds": 5, "Next": "APPROVAL"}
    approval = states["APPROVAL"]
    assert approval["Resource"] == WAIT_FOR_EVENT_RESOURCE
    assert approval["TimeoutSeconds"] == 60
    assert approval["Parameters"]["MessageBody"]["taskToken.$"] == "$$.Task.Token"
    assert approval["Catch"][0]["ErrorEquals"] == ["States.Timeout"]
    assert approval["Catch"][0]["Next"] == "NO"
    route = states[approval["Next"]]
    assert route["Choices"] == [
        {"Variable": "$.event.name", "StringEquals": "approved", "Next": "OK"}
    ]
    assert route["Default"] == "APPROVAL", "an unknown event waits again"


def test_json_is_deterministic():
    first = to_asl_json(small_machine(), resource_for=RESOURCE)
    again = to_asl_json(small_machine(), resource_for=RESOURCE)
    assert first == again
    assert json.loads(first)["States"]["A"]["Type"] == "Task"


def test_checker_rejects_broken_documents(asl):
    check_asl(asl)  # the export itself is sound
    broken = copy.deepcopy(asl)
    broken["States"]["D"]["Next"] = "NOWHERE"
    with pytest.raises(AslError, match="unknown state 'NOWHERE'"):
        check_asl(broken)
    broken = copy.deepcopy(asl)
    broken["StartAt"] = "MISSING"
    with pytest.raises(AslError, match="StartAt"):
        check_asl(broken)
    broken = copy.deepcopy(asl)
    broken["States"]["P"]["Branches"][0]["States"]["B"]["Next"] = "D"
    with pytest.raises(AslError, match="B: goes to unknown state 'D'"):
        check_asl(broken)
    broken = copy.deepcopy(asl)
    del broken["States"]["UNDO_A"]["Catch"]
    broken["States"]["UNDO_B"]["Next"] = COMPENSATED
    with pytest.raises(AslError, match="UNDO_A: unreachable"):
        check_asl(broken)


def test_ambiguous_compensation_is_refused():
    definition = StateMachineDefinition(
        name="ambiguous",
        initial="X",
        states=(
            State(name="X", kind="task", action="x", compensation="ux",
                  transitions=(_t("done", "Y"), _t("failed", "Y"))),
            State(name="Y", kind="task", action="y", pivot=True,
                  transitions=(_t("done", "END"), _t("failed", "F"))),
            State(name="END", kind="succeed"),
            State(name="F", kind="fail"),
        ),
    )  # fmt: skip
    with pytest.raises(AslError, match="Y: reached with different completed steps"):
        to_asl(definition, resource_for=RESOURCE)


def test_an_event_no_transition_allows_enters_the_first_fail_state_compensating():
    definition = StateMachineDefinition(
        name="fallbacks",
        initial="X",
        states=(
            State(name="X", kind="task", action="x", compensation="ux",
                  transitions=(_t("done", "Y"),)),
            State(name="Y", kind="task", action="y", compensation="uy",
                  transitions=(_t("done", "END", "ok"),)),
            State(name="END", kind="succeed"),
            State(name="BAD", kind="fail"),
        ),
    )  # fmt: skip
    out = to_asl(definition, resource_for=RESOURCE)
    states = out["States"]
    assert states["X"]["Catch"][-1]["Next"] == "BAD", "nothing done yet: straight to BAD"
    assert chain(out, states["Y"]["Catch"][-1]["Next"]) == ["UNDO_X", COMPENSATED]
    assert chain(out, states["Y_DONE"]["Default"]) == ["UNDO_Y", "UNDO_X", COMPENSATED]
    assert states["UNDO_Y"]["Retry"][0]["ErrorEquals"] == ["States.ALL"]
    assert states["UNDO_Y"]["Retry"][0]["MaxAttempts"] == 2, "the runner tries undo 3 times"


# --- against moto's Step Functions, in server mode ------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server of our own, with its ASL parser and interpreter switched on."""
    port = _free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    command = [str(moto_server)] if moto_server.exists() else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        # Off by default: moto then stores any string as a definition, even non-JSON.
        config = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        request = urllib.request.Request(f"{url}/moto-api/config", data=config, method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def sfn(moto_url: str) -> Any:
    return boto3.client(
        "stepfunctions",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _wait_for_end(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def test_moto_accepts_and_runs_the_export(sfn):
    definition = to_asl_json(small_machine(), resource_for=RESOURCE)
    created = sfn.create_state_machine(name="segue-small", definition=definition, roleArn=ROLE)
    arn = created["stateMachineArn"]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == json.loads(
        definition
    )
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"order_id": "o-1"}))
    assert started["executionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:execution:")
    described = _wait_for_end(sfn, started["executionArn"])
    # There is no Lambda function "reserve": A fails, and its Catch routes to FAILED.
    assert described["status"] == "FAILED"
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]
    assert entered == ["A", "FAILED"]
    assert described.get("error") == "FAILED"


def test_moto_accepts_the_payment_machine(sfn):
    from include.payments.errors import TransientFailure
    from include.payments.saga import PAYMENT_MACHINE

    retryable = sorted(c.__name__ for c in (TransientFailure, *TransientFailure.__subclasses__()))
    asl = to_asl(PAYMENT_MACHINE, resource_for=RESOURCE, retryable_errors=retryable)
    states = asl["States"]
    assert states["CHARGING"]["Retry"][0]["ErrorEquals"] == retryable
    assert states["CHARGING"]["Catch"][-1]["Next"] == "UNDO_VALIDATING"
    assert chain(asl, states["FULFILMENT"]["Catch"][-1]["Next"]) == [
        "UNDO_RECEIPT_SENT",
        "UNDO_INVENTORY_RESERVED",
        "UNDO_CHARGING",
        "UNDO_VALIDATING",
        COMPENSATED,
    ]
    created = sfn.create_state_machine(
        name=PAYMENT_MACHINE.name, definition=json.dumps(asl), roleArn=ROLE
    )
    started = sfn.start_execution(
        stateMachineArn=created["stateMachineArn"], input=json.dumps({"order_id": "o-2"})
    )
    described = _wait_for_end(sfn, started["executionArn"])
    assert described["status"] == "FAILED", "no Lambda 'receive' in moto: ORDER_RECEIVED fails"


def test_the_dag_creates_then_updates_the_machine(sfn):
    path = Path(__file__).resolve().parents[3] / "dags" / "payment_state_machine_aws.py"
    spec = importlib.util.spec_from_file_location("payment_state_machine_aws", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = json.dumps(small_machine_asl())
    arn = module.create_or_update(sfn, name="segue-dag", definition=first, role_arn=ROLE)
    second = to_asl_json(small_machine(), resource_for=lambda_arn("eu-west-1", ACCOUNT))
    again = module.create_or_update(sfn, name="segue-dag", definition=second, role_arn=ROLE)
    assert again == arn
    assert sfn.describe_state_machine(stateMachineArn=arn)["definition"] == second
    assert "GatewayUnavailable" in module.retryable_errors()


def small_machine_asl() -> dict[str, Any]:
    return to_asl(small_machine(), resource_for=RESOURCE)


def test_moto_parser_rejects_what_is_not_asl(sfn):
    with pytest.raises(ClientError, match="ASLParserException"):
        sfn.create_state_machine(
            name="segue-garbage",
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Bogus"}}}),
            roleArn=ROLE,
        )


def test_moto_misses_a_dangling_next_that_our_checker_catches(sfn):
    dangling = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "MISSING"}}}
    created = sfn.create_state_machine(
        name="segue-dangling", definition=json.dumps(dangling), roleArn=ROLE
    )
    assert created["stateMachineArn"], "moto's parser checks grammar, not targets"
    with pytest.raises(AslError, match="unknown state 'MISSING'"):
        check_asl(dangling)
