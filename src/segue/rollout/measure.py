"""Taking a plan's measurements: run each check's query for the candidate (and the baseline) in a
window and judge the result pass, fail or inconclusive.

A query runs inside a savepoint that is rolled back, so a check can read but never change the
store; a query that errors is refused as a RolloutError naming ``checks[i].query``.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from segue.rollout.definition import RolloutError
from segue.rollout.plan import Check, Comparison, RolloutPlan


class Outcome(StrEnum):
    """What one evaluation of one check found."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Reading(BaseModel):
    """One path's row from a check's query.

    :param value: the measured value (None: nothing to measure).
    :param sample: how many subjects it is based on.
    """

    model_config = ConfigDict(frozen=True)

    value: float | None
    sample: int


class Measurement(BaseModel):
    """One check judged in one window.

    :param check: the check's name.
    :param outcome: pass, fail or inconclusive.
    :param candidate: the candidate's reading.
    :param baseline: the baseline's reading (``vs_baseline`` checks only).
    :param detail: the judgement in a sentence (the abort reason quotes it).
    """

    model_config = ConfigDict(frozen=True)

    check: str
    outcome: Outcome
    candidate: Reading
    baseline: Reading | None = None
    detail: str


def read(
    session: Session,
    plan: RolloutPlan,
    index: int,
    path: str,
    since: datetime,
    until: datetime,
) -> Reading:
    """Run check ``index`` of ``plan`` for ``path`` over ``[since, until)``.

    :param session: a session on the business store.
    :param plan: the plan.
    :param index: which check.
    :param path: the path measured.
    :param since: window start (inclusive).
    :param until: window end (exclusive) and the moment things are judged at.
    """
    check = plan.checks[index]
    params: dict[str, Any] = {**plan.params, "flag": plan.flag, "path": path}
    params.update(since=since, until=until)
    wanted = check.bind_names()
    try:
        with session.begin_nested() as savepoint:
            row = session.execute(
                text(check.query), {k: v for k, v in params.items() if k in wanted}
            ).first()
            savepoint.rollback()
    except SQLAlchemyError as error:
        message = " ".join(str(getattr(error, "orig", error)).split())[:300]
        raise RolloutError(f"checks[{index}].query", message) from None
    if row is None or len(row) < 2:
        raise RolloutError(f"checks[{index}].query", "must return one row: value, sample")
    value = None if row[0] is None else float(row[0])
    if value is not None and not math.isfinite(value):
        value = None
    return Reading(value=value, sample=int(row[1] or 0))


def measure(
    session: Session, plan: RolloutPlan, since: datetime, until: datetime, *, strict: bool = False
) -> list[Measurement]:
    """Every check of ``plan`` judged over ``[since, until)``.

    A query that fails is an inconclusive measurement saying why (so a broken check holds the
    rollout after its ``inconclusive_limit`` instead of leaving it unwatched), or, ``strict``,
    a RolloutError naming ``checks[i].query`` (how a plan is tried before it starts).

    :param session: a session on the business store.
    :param plan: the plan.
    :param since: window start (the current step's start).
    :param until: now.
    :param strict: raise on a failing query instead of measuring it inconclusive.
    """
    measurements = []
    for index, check in enumerate(plan.checks):
        try:
            candidate = read(session, plan, index, plan.candidate, since, until)
            baseline = None
            if check.comparison is Comparison.VS_BASELINE:
                baseline = read(session, plan, index, plan.baseline, since, until)
        except RolloutError as error:
            if strict:
                raise
            measurements.append(
                Measurement(check=check.name, outcome=Outcome.INCONCLUSIVE,
                            candidate=Reading(value=None, sample=0),
                            detail=f"{check.name}: the query failed: {error.message}")
            )  # fmt: skip
            continue
        measurements.append(judge(check, candidate, baseline))
    return measurements


def judge(check: Check, candidate: Reading, baseline: Reading | None) -> Measurement:
    """One check's outcome from its readings.

    :param check: the check.
    :param candidate: the candidate's reading.
    :param baseline: the baseline's reading (``vs_baseline`` checks).
    """

    def result(outcome: Outcome, detail: str) -> Measurement:
        return Measurement(
            check=check.name,
            outcome=outcome,
            candidate=candidate,
            baseline=baseline,
            detail=f"{check.name}: {detail}",
        )

    few = _too_few(check, candidate, baseline)
    if few:
        return result(Outcome.INCONCLUSIVE, few)
    value = candidate.value
    if value is None:
        return result(Outcome.INCONCLUSIVE, f"no value yet (sample {candidate.sample})")
    shown = f"{value:.4g}{check.unit and ' ' + check.unit} over {candidate.sample}"
    if check.comparison is Comparison.ABSOLUTE:
        assert check.max is not None  # the plan checked it
        if _exceeds(value, check.max):
            return result(Outcome.FAIL, f"candidate {shown} > {check.max:g}")
        return result(Outcome.PASS, f"candidate {shown} <= {check.max:g}")
    assert baseline is not None
    if baseline.value is None:
        return result(Outcome.INCONCLUSIVE, f"no baseline value yet (sample {baseline.sample})")
    against = f"baseline {baseline.value:.4g} over {baseline.sample}"
    if check.max_increase is not None and _exceeds(value, baseline.value + check.max_increase):
        return result(Outcome.FAIL, f"candidate {shown} > {against} + {check.max_increase:g}")
    if check.max_ratio is not None and _exceeds(value, baseline.value * check.max_ratio):
        return result(Outcome.FAIL, f"candidate {shown} > {against} x {check.max_ratio:g}")
    return result(Outcome.PASS, f"candidate {shown} within {check.limit_text()} ({against})")


def _exceeds(value: float, limit: float) -> bool:
    """``value > limit`` beyond float rounding (0.07 is within 0.05 + 0.02)."""
    return value > limit + 1e-9 * max(1.0, abs(limit))


def _too_few(check: Check, candidate: Reading, baseline: Reading | None) -> str | None:
    if candidate.sample < check.min_sample:
        return f"candidate sample {candidate.sample} < min_sample {check.min_sample}"
    if baseline is not None and baseline.sample < check.min_sample:
        return f"baseline sample {baseline.sample} < min_sample {check.min_sample}"
    return None
