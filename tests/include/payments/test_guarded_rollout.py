"""The guarded rollout's controller over the payment plan's real SQL checks (real PostgreSQL, a
clock the test moves): promotion through every step, abort on an unhealthy candidate within
interval x failure limit, inconclusive holds, approval, and no order stranded by a rollback."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from include.payments.rollout_plan import FLAG, default_plan
from include.payments.tables import OrderRow
from segue.rollout import FlagSpec, RolloutError, current, decide, history
from segue.rollout.guard import abort, approve, evaluate, reject, resume, start
from segue.rollout.guard_model import Action, State, evaluations, rollouts
from segue.rollout.provider import REFRESH_SECONDS
from segue.rollout.tables import RouteDecisionRow
from segue.store.dead_letters import DeadLetter

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ACTOR = "test-controller"


class World:
    """A flag of its own, a clock, and orders seeded on both paths."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.flag = FlagSpec(
            name=f"route-{uuid.uuid4().hex[:8]}", paths=FLAG.paths, baseline=FLAG.baseline
        )
        self.now = T0
        self.count = 0

    def plan(self, **changes: Any) -> dict[str, Any]:
        data = default_plan().model_dump(mode="json")
        data.update(
            flag=self.flag.name,
            interval_seconds=10,
            steps=[
                {"weight": 1, "bake_seconds": 20},
                {"weight": 5, "bake_seconds": 20},
                {"weight": 25, "bake_seconds": 20},
                {"weight": 50, "bake_seconds": 20},
                {"weight": 100, "bake_seconds": 20},
            ],
        )
        for check in data["checks"]:
            check["min_sample"] = 5
            check["inconclusive_limit"] = 4
        data.update(changes)
        return data

    def orders(
        self, path: str, n: int, *, outcome: str = "completed", took: float = 1.0
    ) -> list[str]:
        """``n`` orders routed to ``path`` at the clock's time; outcome completed, declined,
        dead (dead-lettered), or stuck (no order row yet)."""
        ids = []
        with Session(self.engine) as session:
            for _ in range(n):
                self.count += 1
                order_id = f"ord-{self.flag.name}-{self.count}"
                ids.append(order_id)
                session.add(
                    RouteDecisionRow(
                        subject_id=order_id,
                        flag_name=self.flag.name,
                        path=path,
                        flag_version=1,
                        bucket=1,
                        reason="test",
                        decided_at=self.now,
                    )
                )
                if outcome == "stuck":
                    continue
                status = "completed" if outcome == "completed" else "failed"
                session.add(
                    OrderRow(
                        order_id=order_id,
                        status=status,
                        customer_email="a@example.com",
                        amount=Decimal("10.00"),
                        currency="USD",
                        payload={},
                        failure_reason=None if status == "completed" else "card_declined",
                        created_at=self.now,
                        updated_at=self.now + timedelta(seconds=took),
                    )
                )
                if outcome == "dead":
                    session.add(
                        DeadLetter(
                            workflow="payment_pipeline",
                            subject=order_id,
                            step="charge",
                            error="retries exhausted",
                            attempts=3,
                            payload={},
                        )
                    )
            session.commit()
        return ids

    def traffic(self, candidate: str = "completed") -> None:
        self.orders("dag", 6)
        self.orders("events", 6, outcome=candidate)

    def start(self, plan: dict[str, Any] | None = None) -> int:
        with Session(self.engine) as session:
            state = start(session, self.flag, plan or self.plan(), "alice", now=self.now)
            session.commit()
        return state.id

    def tick(self, seconds: int = 10) -> Any:
        """Move the clock one interval, then evaluate (as the DAG's run does)."""
        self.now += timedelta(seconds=seconds)
        with Session(self.engine) as session:
            [decision] = evaluate(session, actor=ACTOR, now=self.now)
            session.commit()
        return decision

    def weights(self) -> dict[str, int]:
        with Session(self.engine) as session:
            version = current(session, self.flag)
        return {} if version.definition.killed else version.definition.weights


@pytest.fixture
def world(clean_db: Engine) -> World:
    return World(clean_db)


def test_a_healthy_candidate_is_promoted_through_every_step_to_100(world: World) -> None:
    rollout_id = world.start()
    assert world.weights() == {"dag": 99, "events": 1}
    seen = []
    for _ in range(30):
        world.traffic()  # healthy: both paths complete in a second; some declines on events
        world.orders("events", 2, outcome="declined")
        decision = world.tick()
        seen.append((decision.action, decision.weight))
        if decision.action is Action.COMPLETE:
            break
    promotions = [weight for action, weight in seen if action is Action.PROMOTE]
    assert promotions == [5, 25, 50, 100]
    assert seen[-1] == (Action.COMPLETE, 100)
    # each step baked its 20 s (two 10 s ticks) before the next one
    assert [action for action, _ in seen[:2]] == [Action.HOLD, Action.PROMOTE]
    assert world.weights() == {"events": 100}
    with Session(world.engine) as session:
        [state] = rollouts(session, world.flag.name)
        changes = history(session, world.flag)
        stored = evaluations(session, rollout_id)
    assert state.state is State.COMPLETED and state.failures == {}
    assert [c.new.share("events") for c in changes] == [1, 5, 25, 50, 100]
    assert all(c.changed_by == ACTOR for c in changes[1:]) and changes[0].changed_by == "alice"
    assert "every check passed" in changes[-1].reason
    assert {e.check for e in stored} == {
        "technical_failure_rate",
        "p95_latency_seconds",
        "stuck_orders",
    }
    assert all(e.outcome == "pass" for e in stored)


def test_an_unhealthy_candidate_is_rolled_back_within_interval_times_failure_limit(
    world: World,
) -> None:
    world.start()
    for _ in range(3):  # 1% -> 5% on healthy traffic
        world.traffic()
        world.tick()
    assert world.weights() == {"dag": 95, "events": 5}
    with Session(world.engine) as session:
        decided_before = decide(session, world.flag, "ord-before", {"order_id": "ord-before"})
        session.commit()
    turned_bad = world.now
    actions = []
    for _ in range(5):
        world.traffic(candidate="dead")  # events' orders now get dead-lettered
        decision = world.tick()
        actions.append(decision.action)
        if decision.action is Action.ABORT:
            break
    time.sleep(REFRESH_SECONDS + 0.05)  # the provider sees the new version within this
    limit = 2  # technical_failure_rate's failure_limit in the plan
    assert actions == [Action.HOLD] * (limit - 1) + [Action.ABORT]
    assert (world.now - turned_bad).total_seconds() <= 10 * limit
    with Session(world.engine) as session:
        version = current(session, world.flag)
        last = history(session, world.flag)[-1]
        [state] = rollouts(session, world.flag.name)
        again = decide(session, world.flag, "ord-before", {"order_id": "ord-before"})
        fresh = [
            decide(session, world.flag, f"new-{n}", {"order_id": f"new-{n}"}).path
            for n in range(200)
        ]
    assert version.definition.killed and version.definition.baseline == "dag"
    assert last.changed_by == ACTOR and "killed: False -> True" in last.changes
    assert "technical_failure_rate" in last.reason and "failed 2 of limit 2" in last.reason
    assert "aborted at step 2 (5%)" in last.reason
    assert state.state is State.ABORTED and state.failures["technical_failure_rate"] == 2
    assert set(fresh) == {"dag"}  # every new order to the baseline
    assert again.path == decided_before.path  # decisions made stay where they were


def test_business_failures_do_not_trip_a_check(world: World) -> None:
    world.start()
    for _ in range(3):
        world.orders("dag", 6)
        world.orders("events", 6, outcome="declined")  # every candidate order declined
        decision = world.tick()
        assert decision.action is not Action.ABORT, decision.reason
    assert world.weights() == {"dag": 95, "events": 5}


def test_stuck_candidate_orders_abort_the_rollout(world: World) -> None:
    plan = world.plan(params={"stuck_after_seconds": 15})
    world.start(plan)
    world.orders("dag", 6)
    world.orders("events", 6, outcome="stuck")
    first = world.tick()  # 10 s: not stuck yet, nothing judged: inconclusive
    second = world.tick()  # 20 s: past 15 s: stuck (fail 1)
    world.traffic()
    third = world.tick()  # still stuck: fail 2 = limit
    assert (first.action, second.action, third.action) == (Action.HOLD, Action.HOLD, Action.ABORT)
    assert "stuck_orders: candidate 6 orders over" in third.reason


def test_too_little_traffic_stays_inconclusive_and_never_promotes(world: World) -> None:
    rollout_id = world.start()
    actions = []
    for _ in range(4):  # inconclusive_limit 4
        world.orders("dag", 6)
        world.orders("events", 1)  # 1 to 4 orders in the window: below min_sample 5
        actions.append(world.tick().action)
    assert actions == [Action.HOLD] * 3 + [Action.HELD]
    assert world.weights() == {"dag": 99, "events": 1}
    with Session(world.engine) as session:
        [state] = rollouts(session, world.flag.name)
        assert state.state is State.HELD and "min_sample 5" in state.reason
    world.traffic()  # enough orders now, every check passes, the step has baked...
    held = world.tick()
    assert held.action is Action.HELD and world.weights() == {"dag": 99, "events": 1}
    assert all(m.outcome.value == "pass" for m in held.measurements)  # ...still held
    with Session(world.engine) as session:
        resume(session, rollout_id, "bob", now=world.now)
        session.commit()
    world.traffic()
    assert world.tick().action is Action.PROMOTE


def test_a_held_rollout_is_still_aborted_by_a_failing_check(world: World) -> None:
    world.start()
    for _ in range(4):
        world.orders("dag", 6)
        world.orders("events", 1)
        world.tick()
    world.traffic(candidate="dead")
    assert world.tick().action is Action.HELD  # one failure, limit 2
    world.traffic(candidate="dead")
    assert world.tick().action is Action.ABORT
    assert world.weights() == {}


def test_a_step_with_approval_waits_for_a_person(world: World) -> None:
    plan = world.plan()
    plan["steps"][1]["approval"] = True
    rollout_id = world.start(plan)
    world.traffic()
    world.tick()
    world.traffic()
    asked = world.tick()
    assert asked.action is Action.AWAIT_APPROVAL and asked.awaiting_step == 1
    world.traffic()
    assert world.tick().action is Action.AWAIT_APPROVAL  # checks keep running meanwhile
    assert world.weights() == {"dag": 99, "events": 1}
    with Session(world.engine) as session:
        with pytest.raises(RolloutError, match="not awaiting approval of step 3"):
            approve(session, rollout_id, 2, "carol", now=world.now)
        decision = approve(session, rollout_id, 1, "carol", now=world.now)
        session.commit()
    assert decision.action is Action.PROMOTE and world.weights() == {"dag": 95, "events": 5}
    with Session(world.engine) as session:
        assert "approved by carol" in history(session, world.flag)[-1].reason


def test_a_rejected_step_aborts(world: World) -> None:
    plan = world.plan()
    plan["steps"][1]["approval"] = True
    rollout_id = world.start(plan)
    for _ in range(2):
        world.traffic()
        world.tick()
    with Session(world.engine) as session:
        decision = reject(session, rollout_id, 1, "carol", now=world.now)
        session.commit()
    assert decision.action is Action.ABORT and world.weights() == {}
    with Session(world.engine) as session:
        assert "rejected by carol" in history(session, world.flag)[-1].reason


def test_a_flag_changed_by_hand_stops_the_guard(world: World) -> None:
    from segue.rollout import kill

    world.start()
    with Session(world.engine) as session:
        kill(session, world.flag, "dave", "incident 7")
        session.commit()
    world.traffic()
    decision = world.tick()
    assert decision.action is Action.STOP and "incident 7" in decision.reason
    assert world.weights() == {}


def test_one_rollout_per_flag_and_a_bad_query_is_refused_naming_the_check(world: World) -> None:
    plan = world.plan()
    plan["checks"][1]["query"] = "SELECT nonsense FROM route_decisions WHERE path = :path"
    with Session(world.engine) as session:
        with pytest.raises(RolloutError) as refused:
            start(session, world.flag, plan, "alice", now=world.now)
        assert refused.value.field == "checks[1].query" and "nonsense" in refused.value.message
        session.rollback()
        assert (
            current(session, world.flag).version == 0 and rollouts(session, world.flag.name) == []
        )
    rollout_id = world.start()
    with Session(world.engine) as session:
        with pytest.raises(RolloutError, match=f"rollout {rollout_id}"):
            start(session, world.flag, world.plan(), "alice", now=world.now)
        abort(session, rollout_id, "erin", "changed my mind", now=world.now)
        session.commit()
        assert history(session, world.flag)[-1].reason.endswith("changed my mind")


def test_rolling_back_strands_no_order(world: World) -> None:
    """Orders decided on the candidate before the abort keep their path and finish there."""
    world.start(
        world.plan(steps=[{"weight": 50, "bake_seconds": 60}, {"weight": 100, "bake_seconds": 60}])
    )
    with Session(world.engine) as session:
        before = {
            f"o-{n}": decide(session, world.flag, f"o-{n}", {"order_id": f"o-{n}"}).path
            for n in range(100)
        }
        session.commit()
    on_candidate = [order_id for order_id, path in before.items() if path == "events"]
    assert 30 < len(on_candidate) < 70
    world.traffic(candidate="dead")
    world.tick()
    world.traffic(candidate="dead")
    assert world.tick().action is Action.ABORT
    with Session(world.engine) as session:
        after = {
            order_id: decide(session, world.flag, order_id, {"order_id": order_id}).path
            for order_id in before
        }
        stored = session.scalars(
            select(RouteDecisionRow.path).where(RouteDecisionRow.subject_id.in_(on_candidate))
        ).all()
    assert after == before
    assert set(stored) == {"events"}


def test_the_controller_evaluates_at_the_plans_interval_however_often_it_runs(
    world: World,
) -> None:
    world.start()  # interval 10 s
    world.traffic()
    world.tick()
    with Session(world.engine) as session:
        assert evaluate(session, actor=ACTOR, now=world.now + timedelta(seconds=5)) == []
        [decision] = evaluate(session, actor=ACTOR, now=world.now + timedelta(seconds=9))
        session.commit()
    assert decision.action is Action.HOLD and "baking step 1: 1 s left" in decision.reason


def test_a_check_whose_query_breaks_mid_rollout_holds_it_for_a_person(world: World) -> None:
    plan = world.plan()
    plan["checks"][2]["query"] = (
        "SELECT 0 AS value, COUNT(*) AS sample FROM rollout_canary WHERE path = :path"
    )
    with Session(world.engine) as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS rollout_canary (path text)"))
        session.commit()
    try:
        world.start(plan)
        with Session(world.engine) as session:
            session.execute(text("DROP TABLE rollout_canary"))  # the check's table goes away
            session.commit()
        actions = []
        for _ in range(4):
            world.traffic()
            actions.append(world.tick())
    finally:
        with Session(world.engine) as session:
            session.execute(text("DROP TABLE IF EXISTS rollout_canary"))
            session.commit()
    assert [d.action for d in actions] == [Action.HOLD] * 3 + [Action.HELD]
    assert "stuck_orders: the query failed" in actions[0].reason
    assert "rollout_canary" in actions[0].reason


def test_two_controllers_at_once_act_once(world: World) -> None:
    """A manual run racing a scheduled one: the rollout row is locked per evaluation, and the
    second finds it evaluated already, so the step is promoted once."""
    world.start(world.plan(steps=[{"weight": 10, "bake_seconds": 0},
                                  {"weight": 100, "bake_seconds": 0}]))  # fmt: skip
    world.traffic()
    world.now += timedelta(seconds=10)
    second: list[Any] = []
    with Session(world.engine) as first:
        [decision] = evaluate(first, actor="first", now=world.now)
        racer = threading.Thread(target=lambda: second.append(world_evaluate(world, "second")))
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # waits for the first evaluation's lock
        first.commit()
    racer.join(10)
    assert decision.action is Action.PROMOTE and second == [[]]
    with Session(world.engine) as session:
        assert [c.changed_by for c in history(session, world.flag)] == ["alice", "first"]


def world_evaluate(world: World, actor: str) -> list[Any]:
    with Session(world.engine) as session:
        decisions = evaluate(session, actor=actor, now=world.now)
        session.commit()
    return decisions


def test_a_rollout_does_not_start_while_the_kill_switch_is_on(world: World) -> None:
    from segue.rollout import kill

    with Session(world.engine) as session:
        kill(session, world.flag, "dave", "incident 9")
        session.commit()
        with pytest.raises(RolloutError) as refused:
            start(session, world.flag, world.plan(), "alice", now=world.now)
        assert refused.value.field == "flag" and "incident 9" in refused.value.message
        session.rollback()
        assert current(session, world.flag).definition.killed
        assert rollouts(session, world.flag.name) == []
