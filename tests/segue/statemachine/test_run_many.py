"""``SagaRunner.run_many`` (group commit): the same transitions and audit trails as ``run`` one
instance at a time, each instance's next action only after its previous transition committed,
and an instance another worker moved first is reloaded without holding back the others."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from include.payments.errors import GatewayUnavailable
from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.machine import ActionContext, Machine, Outcome
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import Move, SagaStore
from segue.store.engine import build_engine

DEFINITION = {
    "name": "shop",
    "initial": "RESERVE",
    "states": [
        {
            "name": "RESERVE",
            "kind": "task",
            "action": "reserve",
            "compensation": "release",
            "transitions": [{"event": "done", "target": "CHARGE"}],
        },
        {
            "name": "CHARGE",
            "kind": "task",
            "action": "charge",
            "pivot": True,
            "retry": {"max_attempts": 2, "backoff_seconds": 0},
            "transitions": [
                {"event": "done", "target": "PAID", "guard": "small"},
                {"event": "done", "target": "TOO_BIG"},
                {"event": "failed", "target": "TOO_BIG"},
            ],
        },
        {"name": "PAID", "kind": "succeed"},
        {"name": "TOO_BIG", "kind": "fail"},
    ],
}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SagaStore]:
    if request.param == "sqlite":
        engine: Engine = build_engine(f"sqlite:///{tmp_path / 'sagas.db'}")
    else:
        engine = build_engine(request.getfixturevalue("pg_url"))
    store = SagaStore(engine)
    yield store
    store.close()
    engine.dispose()


class Shop:
    """Actions that log every call with the version the instance had when the action ran."""

    def __init__(self, store: SagaStore) -> None:
        self.store = store
        self.calls: list[tuple[str, str, int]] = []
        self.flaky: set[str] = set()
        self.on_charge: dict[str, object] = {}

    def machine(self) -> Machine:
        return Machine(
            StateMachineDefinition.model_validate(DEFINITION),
            {"reserve": self.reserve, "release": self.release, "charge": self.charge},
            {"small": lambda data: data["amount"] <= 100},
        )

    def _log(self, name: str, ctx: ActionContext) -> None:
        self.calls.append((name, ctx.instance_id, self.store.load(ctx.instance_id).version))

    def reserve(self, ctx: ActionContext) -> Outcome:
        self._log("reserve", ctx)
        return Outcome(data={"reserved": True})

    def release(self, ctx: ActionContext) -> None:
        self._log("release", ctx)

    def charge(self, ctx: ActionContext) -> None:
        self._log("charge", ctx)
        hook = self.on_charge.pop(ctx.instance_id, None)
        if callable(hook):
            hook()
        if ctx.instance_id in self.flaky and ctx.attempt == 1:
            raise GatewayUnavailable("blip")


def trail(store: SagaStore, instance_id: str) -> list[tuple[str | None, str, str]]:
    return [(r["from_state"], r["to_state"], r["event"]) for r in store.audit_trail(instance_id)]


def test_run_many_matches_run_one_at_a_time(store):
    shop = Shop(store)
    engine = SagaRunner(shop.machine(), store)
    amounts = {"ok": 10, "big": 500, "flaky": 20}
    tag = uuid.uuid4().hex[:8]
    sequential, batched = {}, {}
    shop.flaky = {f"seq-flaky-{tag}", f"bat-flaky-{tag}"}
    for name, amount in amounts.items():
        sequential[name] = engine.run(
            f"seq-{name}-{tag}", instance=engine.start(f"seq-{name}-{tag}", {"amount": amount})
        )
    started = engine.start_many([(f"bat-{n}-{tag}", {"amount": a}) for n, a in amounts.items()])
    for name, final in zip(amounts, engine.run_many(started), strict=True):
        batched[name] = final
    for name in amounts:
        one, many = sequential[name], batched[name]
        assert (one.state, one.status, one.version) == (many.state, many.status, many.version)
        assert trail(store, one.id) == trail(store, many.id)
    assert batched["ok"].status == "succeeded"
    assert batched["big"].status == "compensated"
    assert batched["flaky"].status == "succeeded"
    # every action saw the transition before it committed: versions 1, 2, ... per instance
    for instance_id in (f.id for f in batched.values()):
        versions = [v for _, i, v in shop.calls if i == instance_id]
        assert versions == sorted(set(versions)), (instance_id, versions)
    assert sum(1 for c in shop.calls if c[0] == "release" and c[1].startswith("bat-")) == 1


def test_an_instance_moved_by_another_worker_is_reloaded_without_holding_back_others(store):
    shop = Shop(store)
    engine = SagaRunner(shop.machine(), store)
    tag = uuid.uuid4().hex[:8]
    started = [engine.start(f"{n}-{tag}", {"amount": 10}) for n in ("a", "b", "c")]
    contested = started[1].id

    def other_worker_moves_it() -> None:
        current = store.load(contested)
        poke = Move(current.state, current.status, "poke", 1, current.data, current.context)
        store.apply(current, poke, "other-worker")

    shop.on_charge[contested] = other_worker_moves_it
    finals = engine.run_many(started)
    assert [f.status for f in finals] == ["succeeded"] * 3
    assert [e for _, _, e in trail(store, contested)] == ["start", "done", "poke", "done"]
    assert [e for _, _, e in trail(store, started[0].id)] == ["start", "done", "done"]
    assert sum(1 for c in shop.calls if c[:2] == ("charge", contested)) == 2  # retried once


def test_run_many_stops_at_waits_and_rejects_duplicates(store):
    shop = Shop(store)
    engine = SagaRunner(shop.machine(), store)
    tag = uuid.uuid4().hex[:8]
    one = engine.start(f"x-{tag}", {"amount": 10})
    with pytest.raises(ValueError, match="at most one entry"):
        engine.run_many([one, one])
    assert engine.run_many([]) == []
    final = engine.run_many([one])[0]
    assert engine.run_many([final]) == [final]  # final instances come back as they are


def test_start_many_starts_the_new_and_returns_the_existing(store):
    engine = SagaRunner(Shop(store).machine(), store)
    tag = uuid.uuid4().hex[:8]
    existing = engine.run(f"old-{tag}", instance=engine.start(f"old-{tag}", {"amount": 10}))
    started = engine.start_many([(f"new-{tag}", {"amount": 5}), (f"old-{tag}", {"amount": 1})])
    assert [(s.id, s.state, s.version) for s in started] == [
        (f"new-{tag}", "RESERVE", 1),
        (existing.id, "PAID", existing.version),
    ]
    assert store.load(f"new-{tag}").data == {"amount": 5}
