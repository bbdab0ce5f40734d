"""The guarded rollout's values: its states, the controller's decisions, and what is read back
for the page and the API (rollouts, their evaluations)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from segue.rollout.measure import Measurement
from segue.rollout.plan import RolloutPlan
from segue.rollout.tables import RolloutEvaluationRow, RolloutRow


class State(StrEnum):
    """Where a rollout is."""

    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    HELD = "held"
    COMPLETED = "completed"
    ABORTED = "aborted"
    STOPPED = "stopped"


ACTIVE = (State.RUNNING, State.AWAITING_APPROVAL, State.HELD)
"""The states of a rollout going on, which the controller evaluates (a held one only for an
abort: it never promotes until resumed)."""


class Action(StrEnum):
    """What one evaluation decided."""

    PROMOTE = "promote"
    HOLD = "hold"
    HELD = "held"
    AWAIT_APPROVAL = "await_approval"
    ABORT = "abort"
    COMPLETE = "complete"
    STOP = "stop"


class RolloutState(BaseModel):
    """A rollout as stored.

    :param id: the rollout's number.
    :param flag: the flag it moves.
    :param plan_name: the plan's name.
    :param plan_version: the plan's version.
    :param plan: the plan.
    :param state: where it is.
    :param step_index: the current step (0-based).
    :param weight: the candidate's percent in that step.
    :param step_started_at: when the step started (the checks' window starts there).
    :param awaiting_step: the step waiting for approval (0-based), if any.
    :param flag_version: the flag version the rollout last wrote.
    :param failures: failed evaluations per check, this rollout.
    :param evaluations: how many evaluations so far.
    :param started_by: who started it.
    :param started_at: when.
    :param updated_at: the last change or evaluation.
    :param finished_at: when it completed, aborted or stopped.
    :param reason: the last decision, in words.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    flag: str
    plan_name: str
    plan_version: int
    plan: RolloutPlan
    state: State
    step_index: int
    weight: int
    step_started_at: datetime
    awaiting_step: int | None
    flag_version: int
    failures: dict[str, int]
    evaluations: int
    started_by: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    reason: str


class Decision(BaseModel):
    """What one evaluation of one rollout decided, and on what measurements.

    :param rollout_id: the rollout.
    :param rollout_started_at: when it started (with the id, names it across databases).
    :param action: promote, hold, held, await_approval, abort, complete or stop.
    :param state: the rollout's state after it.
    :param step_index: the current step after it (0-based).
    :param weight: the candidate's percent after it.
    :param awaiting_step: the step waiting for approval (0-based), if any.
    :param reason: why, in words.
    :param measurements: this evaluation's measurements (none for an approval or a stop).
    """

    model_config = ConfigDict(frozen=True)

    rollout_id: int
    rollout_started_at: datetime
    action: Action
    state: State
    step_index: int
    weight: int
    awaiting_step: int | None
    reason: str
    measurements: tuple[Measurement, ...] = ()


def approval_run_id(rollout_id: int, started_at: datetime, step: int) -> str:
    """The id of the one approval run for entering ``step`` (0-based) of a rollout: the same
    every time it is asked (so it is asked once), different for a rollout of another database
    that happens to have the same number.

    :param rollout_id: the rollout.
    :param started_at: when it started.
    :param step: the step asked for, 0-based.
    """
    return f"rollout-{rollout_id}-{started_at.astimezone(UTC):%Y%m%dT%H%M%S}-step-{step + 1}"


class Evaluation(BaseModel):
    """One check's stored measurement.

    :param evaluation: the evaluation's number in its rollout.
    :param evaluated_at: when.
    :param step_index: the step (0-based).
    :param weight: the candidate's percent then.
    :param check: the check's name.
    :param outcome: pass, fail or inconclusive.
    :param candidate_value: the candidate's value.
    :param candidate_sample: its sample.
    :param baseline_value: the baseline's value (``vs_baseline``).
    :param baseline_sample: its sample.
    :param detail: the judgement in words.
    """

    model_config = ConfigDict(frozen=True)

    evaluation: int
    evaluated_at: datetime
    step_index: int
    weight: int
    check: str
    outcome: str
    candidate_value: float | None
    candidate_sample: int
    baseline_value: float | None
    baseline_sample: int | None
    detail: str


def state_of(row: RolloutRow, plan: RolloutPlan) -> RolloutState:
    """A stored rollout as a value.

    :param row: the row.
    :param plan: its plan version.
    """
    return RolloutState(
        id=row.id,
        flag=row.flag_name,
        plan_name=row.plan_name,
        plan_version=row.plan_version,
        plan=plan,
        state=State(row.state),
        step_index=row.step_index,
        weight=plan.steps[row.step_index].weight,
        step_started_at=row.step_started_at,
        awaiting_step=row.awaiting_step,
        flag_version=row.flag_version,
        failures=dict(row.counters.get("failures", {})),
        evaluations=row.evaluations,
        started_by=row.started_by,
        started_at=row.started_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        reason=row.reason,
    )


def rollouts(session: Session, flag_name: str, limit: int = 20) -> list[RolloutState]:
    """The latest rollouts of ``flag_name``, newest first.

    :param session: the business store.
    :param flag_name: the flag.
    :param limit: at most this many.
    """
    from segue.rollout.plans import plan_version

    rows = session.scalars(
        select(RolloutRow)
        .where(RolloutRow.flag_name == flag_name)
        .order_by(RolloutRow.id.desc())
        .limit(limit)
    ).all()
    return [state_of(row, plan_version(session, row.plan_name, row.plan_version).plan)
            for row in rows]  # fmt: skip


def evaluations(session: Session, rollout_id: int) -> list[Evaluation]:
    """Every stored measurement of a rollout, oldest first.

    :param session: the business store.
    :param rollout_id: the rollout.
    """
    rows = session.scalars(
        select(RolloutEvaluationRow)
        .where(RolloutEvaluationRow.rollout_id == rollout_id)
        .order_by(RolloutEvaluationRow.evaluation, RolloutEvaluationRow.id)
    )
    return [
        Evaluation(
            evaluation=row.evaluation,
            evaluated_at=row.evaluated_at,
            step_index=row.step_index,
            weight=row.weight,
            check=row.check_name,
            outcome=row.outcome,
            candidate_value=row.candidate_value,
            candidate_sample=row.candidate_sample,
            baseline_value=row.baseline_value,
            baseline_sample=row.baseline_sample,
            detail=row.detail,
        )
        for row in rows
    ]
