"""What people and the controller do to a rollout besides evaluating it: approve or reject a
step, abort, resume a held rollout, read the one going on; and the moves every decision shares
(promote, abort through the kill switch, record measurements)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from segue.rollout.definition import FlagSpec, RolloutError
from segue.rollout.guard_model import ACTIVE, Action, Decision, RolloutState, State, state_of
from segue.rollout.measure import Measurement
from segue.rollout.plan import RolloutPlan
from segue.rollout.plans import plan_version
from segue.rollout.store import FlagVersion, current, kill, set_split
from segue.rollout.tables import RolloutEvaluationRow, RolloutRow
from segue.store.engine import utcnow

log = logging.getLogger(__name__)


def approve(
    session: Session, rollout_id: int, step: int, actor: str, *, now: datetime | None = None
) -> Decision:
    """A person approves entering step ``step`` (0-based): the rollout promotes now.

    :param session: the business store; the caller commits.
    :param rollout_id: the rollout.
    :param step: the step the approval was asked for (a stale answer is refused).
    :param actor: who approved.
    :param now: the time (tests fix it).
    """
    now = now or utcnow()
    row, plan = _locked(session, rollout_id)
    if row.state != State.AWAITING_APPROVAL or row.awaiting_step != step:
        raise RolloutError(
            "step", f"rollout {row.id} is {row.state} at step {row.step_index + 1}, not awaiting "
            f"approval of step {step + 1}",
        )  # fmt: skip
    return promote_step(session, row, plan, actor, now, f"step {step + 1} approved by {actor}", [])


def reject(
    session: Session, rollout_id: int, step: int, actor: str, *, now: datetime | None = None
) -> Decision:
    """A person rejects entering step ``step``: the rollout aborts (kill switch).

    :param session: the business store; the caller commits.
    :param rollout_id: the rollout.
    :param step: the step the approval was asked for.
    :param actor: who rejected.
    :param now: the time (tests fix it).
    """
    return abort(session, rollout_id, actor, f"step {step + 1} rejected by {actor}", now=now)


def abort(
    session: Session, rollout_id: int, actor: str, reason: str, *, now: datetime | None = None
) -> Decision:
    """Abort a rollout by hand: the kill switch, with ``reason``.

    :param session: the business store; the caller commits.
    :param rollout_id: the rollout.
    :param actor: who aborts.
    :param reason: why (required).
    :param now: the time (tests fix it).
    """
    if not reason.strip():
        raise RolloutError("reason", "say why the rollout is aborted")
    row, plan = _locked(session, rollout_id)
    if row.state not in ACTIVE:
        raise RolloutError("rollout", f"rollout {row.id} is {row.state} already")
    return abort_rollout(session, row, plan, actor, now or utcnow(), reason.strip(), [])


def resume(
    session: Session, rollout_id: int, actor: str, *, now: datetime | None = None
) -> RolloutState:
    """Resume a held rollout: the inconclusive counts start again.

    :param session: the business store; the caller commits.
    :param rollout_id: the rollout.
    :param actor: who resumes it.
    :param now: the time (tests fix it).
    """
    row, plan = _locked(session, rollout_id)
    if row.state != State.HELD:
        raise RolloutError("rollout", f"rollout {row.id} is {row.state}, not held")
    row.state = State.RUNNING
    row.counters = {**row.counters, "inconclusive": {}}
    row.updated_at = now or utcnow()
    row.reason = f"resumed by {actor}"
    return state_of(row, plan)


def active(session: Session, flag_name: str) -> RolloutState | None:
    """The rollout going on (running, awaiting approval or held) on ``flag_name``, if any.

    :param session: the business store.
    :param flag_name: the flag.
    """
    row = session.scalars(
        select(RolloutRow)
        .where(RolloutRow.flag_name == flag_name, RolloutRow.state.in_(ACTIVE))
        .order_by(RolloutRow.id.desc())
        .limit(1)
    ).first()
    return None if row is None else state_of(row, plan_of(session, row))


def active_by_id(session: Session, rollout_id: int) -> RolloutState | None:
    """Rollout ``rollout_id`` if it is going on (running, awaiting approval or held).

    :param session: the business store.
    :param rollout_id: the rollout.
    """
    row = session.get(RolloutRow, rollout_id)
    if row is None or row.state not in ACTIVE:
        return None
    return state_of(row, plan_of(session, row))


def promote_step(
    session: Session,
    row: RolloutRow,
    plan: RolloutPlan,
    actor: str,
    now: datetime,
    reason: str,
    measurements: list[Measurement],
) -> Decision:
    """Enter the next step: the candidate's new weight through ``set_split``, the window restarts.

    :param session: the business store.
    :param row: the rollout (locked).
    :param plan: its plan.
    :param actor: who acts (recorded).
    :param now: the time.
    :param reason: why (recorded).
    :param measurements: the evaluation that led here (none for an approval).
    """
    row.step_index += 1
    weight = plan.steps[row.step_index].weight
    row.state, row.awaiting_step, row.step_started_at = State.RUNNING, None, now
    row.counters = {**row.counters, "inconclusive": {}}
    row.reason = f"{reason}: step {row.step_index + 1} of {len(plan.steps)}, {weight}%"
    flag = FlagSpec.model_validate(row.flag)
    version = apply_weight(session, flag, plan, weight, actor, flag_reason(row, plan, row.reason))
    row.flag_version = version.version
    return make_decision(row, plan, Action.PROMOTE, measurements)


def abort_rollout(
    session: Session,
    row: RolloutRow,
    plan: RolloutPlan,
    actor: str,
    now: datetime,
    reason: str,
    measurements: list[Measurement],
) -> Decision:
    """Abort: the kill switch (``segue.rollout.kill``) with ``reason`` in the flag's history.

    :param session: the business store.
    :param row: the rollout (locked).
    :param plan: its plan.
    :param actor: who acts (recorded).
    :param now: the time.
    :param reason: why (recorded: the failing measurements, or a person's words).
    :param measurements: the evaluation that led here, if any.
    """
    flag = FlagSpec.model_validate(row.flag)
    row.state, row.finished_at, row.awaiting_step = State.ABORTED, now, None
    row.reason = (
        f"aborted at step {row.step_index + 1} ({plan.steps[row.step_index].weight}%): " + reason
    )
    version = kill(session, flag, actor, flag_reason(row, plan, row.reason))
    row.flag_version = version.version
    log.warning(
        "rollout %s aborted: %s", row.id, reason, extra={"correlation_id": f"rollout:{row.id}"}
    )
    return make_decision(row, plan, Action.ABORT, measurements)


def apply_weight(
    session: Session, flag: FlagSpec, plan: RolloutPlan, weight: int, actor: str, reason: str
) -> FlagVersion:
    """The candidate at ``weight``%, the baseline the rest (other paths 0); rules, key kept.

    :param session: the business store.
    :param flag: the flag.
    :param plan: the plan (baseline, candidate).
    :param weight: the candidate's percent.
    :param actor: who (recorded).
    :param reason: why (recorded).
    """
    in_force = current(session, flag).definition
    weights = {plan.baseline: 100 - weight, plan.candidate: weight}
    data = in_force.model_dump(mode="json")
    data.update(weights={p: w for p, w in weights.items() if w}, baseline=plan.baseline)
    data["killed"] = False
    return set_split(session, flag, data, actor, reason)


def record_measurements(
    session: Session,
    row: RolloutRow,
    plan: RolloutPlan,
    measurements: list[Measurement],
    now: datetime,
) -> None:
    """Keep one evaluation's measurements (``rollout_evaluations``) and count it.

    :param session: the business store.
    :param row: the rollout.
    :param plan: its plan.
    :param measurements: what the checks found.
    :param now: the time of the evaluation.
    """
    row.evaluations += 1
    row.updated_at = row.evaluated_at = now
    for m in measurements:
        session.add(
            RolloutEvaluationRow(
                rollout_id=row.id,
                evaluation=row.evaluations,
                evaluated_at=now,
                step_index=row.step_index,
                weight=plan.steps[row.step_index].weight,
                check_name=m.check,
                outcome=m.outcome.value,
                candidate_value=m.candidate.value,
                candidate_sample=m.candidate.sample,
                baseline_value=m.baseline.value if m.baseline else None,
                baseline_sample=m.baseline.sample if m.baseline else None,
                detail=m.detail,
            )
        )


def make_decision(
    row: RolloutRow, plan: RolloutPlan, action: Action, measurements: list[Measurement]
) -> Decision:
    """The decision as a value (and a log line).

    :param row: the rollout after the decision.
    :param plan: its plan.
    :param action: what was decided.
    :param measurements: the evaluation's measurements.
    """
    log.info("rollout %s: %s: %s", row.id, action.value, row.reason,
             extra={"correlation_id": f"rollout:{row.id}"})  # fmt: skip
    return Decision(
        rollout_id=row.id,
        rollout_started_at=row.started_at,
        action=action,
        state=State(row.state),
        step_index=row.step_index,
        weight=plan.steps[row.step_index].weight,
        awaiting_step=row.awaiting_step,
        reason=row.reason,
        measurements=tuple(measurements),
    )


def flag_reason(row: RolloutRow, plan: RolloutPlan, reason: str) -> str:
    """The reason written to the flag's history: which rollout and plan, then ``reason``.

    :param row: the rollout.
    :param plan: its plan.
    :param reason: what happened.
    """
    return f"guarded rollout {row.id} (plan {plan.name} v{row.plan_version}): {reason}"


def plan_of(session: Session, row: RolloutRow) -> RolloutPlan:
    """The plan version a rollout runs.

    :param session: the business store.
    :param row: the rollout.
    """
    return plan_version(session, row.plan_name, row.plan_version).plan


def _locked(session: Session, rollout_id: int) -> tuple[RolloutRow, RolloutPlan]:
    row = session.get(RolloutRow, rollout_id, with_for_update=True)
    if row is None:
        raise RolloutError("rollout", f"no rollout {rollout_id}")
    return row, plan_of(session, row)
