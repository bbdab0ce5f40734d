"""The guarded rollout's controller: evaluate a plan's checks and move the flag, or stop it.

:func:`start` saves the plan, puts the candidate at the first step's weight and records a
rollout. Each :func:`evaluate` (a controller DAG calls it every interval) measures every check
over the current step's window (:mod:`segue.rollout.measure`), keeps the measurements and
decides, in this order:

1. the flag was changed by someone else (a person, the kill switch): the rollout **stops**;
2. a check failed ``failure_limit`` times in this rollout: **abort** through
   :func:`segue.rollout.kill` with the failing measurements as the reason;
3. a check failed, below its limit: **hold**; a check is inconclusive (too few subjects):
   **hold**, and ``inconclusive_limit`` times in a row: **held** for a person (:func:`resume`
   or :func:`abort`); a held rollout is still evaluated, and aborted by a failing check, but
   never promoted;
4. waiting for a person's approval: keep **awaiting** (checks keep running meanwhile);
5. the step has not baked yet: **hold**;
6. the last step baked: **complete**; the next step wants approval: **await approval**;
   else **promote** through :func:`segue.rollout.set_split`.

Decisions made stay: the flag's decisions are sticky, so subjects already on the candidate
finish there whatever happens to the rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from segue.rollout.definition import FlagSpec, RolloutError
from segue.rollout.guard_actions import (
    abort,
    abort_rollout,
    active,
    active_by_id,
    apply_weight,
    approve,
    flag_reason,
    make_decision,
    plan_of,
    promote_step,
    record_measurements,
    reject,
    resume,
)
from segue.rollout.guard_model import ACTIVE, Action, Decision, RolloutState, State, state_of
from segue.rollout.measure import Measurement, Outcome, measure
from segue.rollout.plan import RolloutPlan, check_plan
from segue.rollout.plans import save_plan
from segue.rollout.store import current
from segue.rollout.tables import RolloutRow
from segue.store.engine import utcnow

log = logging.getLogger(__name__)


def start(
    session: Session,
    flag: FlagSpec,
    plan: RolloutPlan | dict[str, Any],
    actor: str,
    *,
    now: datetime | None = None,
) -> RolloutState:
    """Start a rollout of ``plan``: the candidate gets the first step's weight; the caller commits.

    Refused (RolloutError naming the field, nothing written) when the plan is invalid, a
    check's query fails, a rollout of the flag is already going on, or the kill switch is on
    (a rollout must not turn it off behind the back of whoever pulled it).

    :param session: the business store.
    :param flag: the workflow's flag (the plan must name it and two of its paths).
    :param plan: the plan or its JSON form.
    :param actor: who starts it (recorded in the flag's history).
    :param now: the time (tests fix it).
    """
    now = now or utcnow()
    checked = check_plan(plan, flag)
    going = active(session, flag.name)
    if going is not None:
        raise RolloutError(
            "flag",
            f"rollout {going.id} ({going.plan_name}) is {going.state} on {flag.name!r}; "
            "abort it or let it finish first",
        )
    in_force = current(session, flag)
    if in_force.definition.killed:
        raise RolloutError(
            "flag",
            f"the kill switch is on (version {in_force.version} by {in_force.changed_by}: "
            f"{in_force.reason}); turn it off with a new split before a rollout",
        )
    measure(session, checked, now, now, strict=True)  # a query that fails is refused now
    stored = save_plan(session, checked, actor, f"started by {actor}", flag)
    first = checked.steps[0]
    row = RolloutRow(
        flag_name=flag.name,
        flag=flag.model_dump(mode="json"),
        plan_name=stored.name,
        plan_version=stored.version,
        state=State.RUNNING,
        step_index=0,
        step_started_at=now,
        flag_version=0,
        counters={"failures": {}, "inconclusive": {}},
        evaluations=0,
        started_by=actor.strip()[:200] or "unknown",
        started_at=now,
        updated_at=now,
        reason=f"started by {actor}: step 1 of {len(checked.steps)}, {first.weight}%",
    )
    session.add(row)
    session.flush()
    version = apply_weight(
        session, flag, checked, first.weight, actor, flag_reason(row, checked, row.reason)
    )
    row.flag_version = version.version
    return state_of(row, checked)


def evaluate(
    session: Session,
    *,
    actor: str,
    now: datetime | None = None,
    flags: Collection[str] | None = None,
) -> list[Decision]:
    """Evaluate every rollout going on (of ``flags``, when given) and act on it; the caller
    commits.

    :param session: the business store.
    :param actor: who acts (recorded in the flag's history: the controller's run).
    :param now: the time (tests fix it).
    :param flags: only the rollouts of these flags (a workflow's controller names its own).
    """
    now = now or utcnow()
    query = select(RolloutRow).where(RolloutRow.state.in_(ACTIVE))
    if flags is not None:
        query = query.where(RolloutRow.flag_name.in_(list(flags)))
    rows = session.scalars(query.order_by(RolloutRow.id).with_for_update()).all()
    return [_evaluate(session, row, actor, now) for row in rows if _due(session, row, now)]


def _due(session: Session, row: RolloutRow, now: datetime) -> bool:
    """Whether the plan's interval has (nearly: 90%) passed since the last evaluation, so a
    controller that runs more often than the plan asks evaluates at the plan's pace."""
    if row.evaluated_at is None:
        return True
    interval = plan_of(session, row).interval_seconds
    return (now - row.evaluated_at).total_seconds() >= 0.9 * interval


def _evaluate(session: Session, row: RolloutRow, actor: str, now: datetime) -> Decision:
    plan = plan_of(session, row)
    flag = FlagSpec.model_validate(row.flag)
    in_force = current(session, flag)
    if in_force.version != row.flag_version:
        row.state, row.finished_at, row.updated_at = State.STOPPED, now, now
        row.reason = (
            f"the flag was changed outside the rollout (version {in_force.version} by "
            f"{in_force.changed_by}: {in_force.reason}); the guard stops, the split stays"
        )
        return make_decision(row, plan, Action.STOP, [])
    measurements = measure(session, plan, row.step_started_at, now)
    record_measurements(session, row, plan, measurements, now)
    failing = _count(row, plan, measurements)
    if failing:
        return abort_rollout(session, row, plan, actor, now, "; ".join(failing), measurements)
    if row.state == State.HELD:  # watched for an abort, never promoted until resumed
        return make_decision(row, plan, Action.HELD, measurements)
    failed = [m for m in measurements if m.outcome is Outcome.FAIL]
    if failed:
        counts = row.counters["failures"]
        row.reason = "holding, failing: " + "; ".join(
            f"{m.detail} ({counts[m.check]} of limit {plan.check_named(m.check).failure_limit})"
            for m in failed
        )
        return make_decision(row, plan, Action.HOLD, measurements)
    unsure = [m for m in measurements if m.outcome is Outcome.INCONCLUSIVE]
    if unsure:
        return _hold_inconclusive(row, plan, unsure, measurements, now)
    if row.state == State.AWAITING_APPROVAL:
        return make_decision(row, plan, Action.AWAIT_APPROVAL, measurements)
    baked = (now - row.step_started_at).total_seconds()
    bake = plan.steps[row.step_index].bake_seconds
    if baked < bake:
        row.reason = f"checks pass; baking step {row.step_index + 1}: {bake - baked:.0f} s left"
        return make_decision(row, plan, Action.HOLD, measurements)
    if row.step_index == len(plan.steps) - 1:
        row.state, row.finished_at = State.COMPLETED, now
        row.reason = f"completed: {plan.candidate} at {plan.steps[-1].weight}%, every check passed"
        return make_decision(row, plan, Action.COMPLETE, measurements)
    if plan.steps[row.step_index + 1].approval:
        row.state, row.awaiting_step = State.AWAITING_APPROVAL, row.step_index + 1
        row.reason = f"checks pass; step {row.step_index + 2} waits for a person's approval"
        return make_decision(row, plan, Action.AWAIT_APPROVAL, measurements)
    reason = f"step {row.step_index + 1} baked {baked:.0f} s, every check passed"
    return promote_step(session, row, plan, actor, now, reason, measurements)


def _count(row: RolloutRow, plan: RolloutPlan, measurements: list[Measurement]) -> list[str]:
    """Update the failure and inconclusive counters; the checks past their failure limit."""
    failures = dict(row.counters.get("failures", {}))
    unsure = dict(row.counters.get("inconclusive", {}))
    failing = []
    for m in measurements:
        if m.outcome is Outcome.FAIL:
            failures[m.check] = failures.get(m.check, 0) + 1
            limit = plan.check_named(m.check).failure_limit
            if failures[m.check] >= limit:
                failing.append(f"{m.detail} (failed {failures[m.check]} of limit {limit})")
        unsure[m.check] = unsure.get(m.check, 0) + 1 if m.outcome is Outcome.INCONCLUSIVE else 0
    row.counters = {"failures": failures, "inconclusive": unsure}
    return failing


def _hold_inconclusive(
    row: RolloutRow,
    plan: RolloutPlan,
    unsure: list[Measurement],
    measurements: list[Measurement],
    now: datetime,
) -> Decision:
    counts = row.counters["inconclusive"]
    over = [m for m in unsure if counts[m.check] >= plan.check_named(m.check).inconclusive_limit]
    if over:
        row.state = State.HELD
        row.reason = "held for a person: inconclusive " + "; ".join(
            f"{m.detail} ({counts[m.check]} times in a row)" for m in over
        )
        return make_decision(row, plan, Action.HELD, measurements)
    row.reason = "holding, inconclusive: " + "; ".join(m.detail for m in unsure)
    return make_decision(row, plan, Action.HOLD, measurements)


__all__ = ["abort", "active", "active_by_id", "approve", "evaluate", "reject", "resume", "start"]
