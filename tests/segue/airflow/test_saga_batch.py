"""RunSagaBatchOperator and SagaBatchProgressTrigger: a batch of instances runs with group
commit, each ending on its own; while every open one waits the task defers with a trigger
watching exactly those, and resuming finishes the batch; a retried task starts nothing twice."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import TaskDeferred

from segue.airflow.operators.saga_batch import RunSagaBatchOperator
from segue.airflow.triggers.saga_batch import SagaBatchProgressTrigger
from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.machine import ActionContext, Machine, Outcome
from segue.statemachine.registry import register
from segue.statemachine.store import Move, SagaStore

FLAKY: set[str] = set()
CALLS: list[str] = []
DEFINITION = {
    "name": "batch_toy",
    "initial": "CHARGE",
    "states": [
        {
            "name": "CHARGE",
            "kind": "task",
            "action": "charge",
            "pivot": True,
            "retry": {"max_attempts": 3, "backoff_seconds": 0.6},
            "transitions": [
                {"event": "done", "target": "PAID", "guard": "small"},
                {"event": "done", "target": "TOO_BIG"},
            ],
        },
        {"name": "PAID", "kind": "succeed"},
        {"name": "TOO_BIG", "kind": "fail"},
    ],
}


def charge(ctx: ActionContext) -> Outcome:
    CALLS.append(ctx.instance_id)
    if ctx.instance_id in FLAKY and ctx.attempt == 1:
        raise ConnectionError("blip")
    return Outcome()


def toy_machine() -> Machine:
    return Machine(
        StateMachineDefinition.model_validate(DEFINITION),
        {"charge": charge},
        {"small": lambda data: data["amount"] <= 100},
    )


register("batch_toy", toy_machine, dag_ids=("toy_batch",))


@pytest.fixture
def store(clean_db, monkeypatch, pg_url):
    monkeypatch.setenv("SEGUE_DATABASE_URL", pg_url)
    from segue.settings import get_settings

    get_settings.cache_clear()
    yield SagaStore(clean_db)
    get_settings.cache_clear()


def context() -> dict:
    return {"dag": SimpleNamespace(dag_id="toy_batch"), "run_id": "run-1"}


def test_a_batch_defers_while_one_waits_then_finishes(store):
    tag = uuid.uuid4().hex[:6]
    ok, big, flaky = f"ok-{tag}", f"big-{tag}", f"flaky-{tag}"
    FLAKY.add(flaky)
    batch = [{"order_id": ok, "amount": 5}, {"order_id": big, "amount": 500}]
    batch.append({"order_id": flaky, "amount": 7})
    operator = RunSagaBatchOperator(task_id="run_sagas", machine="batch_toy", instances=batch)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, SagaBatchProgressTrigger)
    assert list(trigger.seen_versions) == [flaky]  # only the waiting one is watched
    assert trigger.wake_at is not None
    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), 10))
    assert event.payload["reason"] == "timer"
    result = operator.resume(context(), event.payload)
    assert result["counts"] == {"succeeded": 2, "failed": 1}
    assert result["instances"][big]["state"] == "TOO_BIG"
    # A retried task starts nothing again and charges nobody twice.
    calls = len(CALLS)
    again = RunSagaBatchOperator(task_id="run_sagas", machine="batch_toy", instances=batch)
    assert again.execute(context())["counts"] == result["counts"]
    assert len(CALLS) == calls
    assert CALLS.count(flaky) == 2 and CALLS.count(ok) == 1


def test_the_trigger_fires_when_any_watched_instance_moves(store):
    from segue.statemachine.store import Instance

    ids = [f"w-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for instance_id in ids:
        store.create(Instance(instance_id, "m", 1, "A", "waiting", {}, {}, 1), "test")
    seen = {i: store.load(i).version for i in ids}

    async def scenario():
        trigger = SagaBatchProgressTrigger(seen, None, poll_seconds=0.1)
        task = asyncio.create_task(asyncio.wait_for(anext(trigger.run()), 10))
        await asyncio.sleep(0.3)
        assert not task.done()
        moved = store.load(ids[1])
        await asyncio.to_thread(store.apply, moved, Move("B", "running", "go", 1, {}, {}), "t")
        return await task

    assert asyncio.run(scenario()).payload == {"reason": "moved", "moved": [ids[1]]}


def test_serialized_kwargs_rebuild_the_trigger():
    trigger = SagaBatchProgressTrigger({"a": 1, "b": 3}, "2026-01-01T00:00:00+00:00", 0.5)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name)(**kwargs).serialize() == (
        classpath,
        kwargs,
    )
