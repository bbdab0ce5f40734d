"""A guarded rollout's plan, as data: which path replaces which, in what steps, judged by what.

A plan names the flag, the baseline and the candidate path, a schedule of steps (the
candidate's percent, how long each bakes, whether a person approves it first) and checks. A
check is a SQL query over the workflow's tables returning one row ``value, sample`` for one path
in a window, with bind parameters ``:flag``, ``:path``, ``:since``, ``:until`` and the plan's own
``params``; it is compared against an absolute limit or against the baseline in the same window.
Plans come as YAML or JSON (:func:`parse_plan`); every refusal is a
:class:`~segue.rollout.definition.RolloutError` naming the field (``steps[2].weight``).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import text

from segue.rollout.definition import TOTAL_PERCENT, FlagSpec, RolloutError, _named

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
BUILT_IN_PARAMS = frozenset({"flag", "path", "since", "until"})
"""Bind parameters every check query gets: the flag, the path measured and the window."""


class Comparison(StrEnum):
    """How a check's measurement is judged."""

    ABSOLUTE = "absolute"
    """The candidate's value must not exceed ``max``."""
    VS_BASELINE = "vs_baseline"
    """The candidate's value against the baseline's in the same window (``max_increase``,
    ``max_ratio``)."""


class Step(BaseModel):
    """One step of the schedule: the candidate's share, how long it bakes, who must approve.

    :param weight: the candidate's percent of new subjects during the step (1 to 100).
    :param bake_seconds: how long the step runs, every check passing, before the next one.
    :param approval: a person approves in Airflow before the rollout enters this step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    weight: int = Field(ge=1, le=TOTAL_PERCENT)
    bake_seconds: int = Field(ge=0)
    approval: bool = False


class Check(BaseModel):
    """A named measurement and its limits.

    :param name: the check's name (letters, digits, ``_.-``), unique in the plan.
    :param description: what it measures, for the page.
    :param query: SQL returning one row ``value, sample`` for ``:path`` from ``:since`` to
        ``:until`` (``value`` may be NULL when there is nothing to measure).
    :param comparison: ``absolute`` or ``vs_baseline``.
    :param max: ``absolute``: the highest acceptable value.
    :param max_increase: ``vs_baseline``: candidate minus baseline may be at most this.
    :param max_ratio: ``vs_baseline``: candidate over baseline may be at most this.
    :param min_sample: fewer subjects than this (on either path compared) is inconclusive.
    :param failure_limit: this many failed evaluations in the rollout abort it.
    :param inconclusive_limit: this many inconclusive evaluations in a row hold the rollout
        for a person.
    :param unit: how to label the value (``ratio``, ``s``, ``orders``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=NAME)
    description: str = ""
    query: str = Field(min_length=1)
    comparison: Comparison
    max: float | None = None
    max_increase: float | None = None
    max_ratio: float | None = Field(default=None, gt=0)
    min_sample: int = Field(default=1, ge=0)
    failure_limit: int = Field(default=1, ge=1)
    inconclusive_limit: int = Field(default=10, ge=1)
    unit: str = ""

    @model_validator(mode="after")
    def _limits_fit_comparison(self) -> Self:
        if self.comparison is Comparison.ABSOLUTE:
            if self.max is None:
                raise ValueError("an absolute check needs max")
            if self.max_increase is not None or self.max_ratio is not None:
                raise ValueError("an absolute check takes max only")
        else:
            if self.max_increase is None and self.max_ratio is None:
                raise ValueError("a vs_baseline check needs max_increase or max_ratio")
            if self.max is not None:
                raise ValueError("a vs_baseline check takes max_increase or max_ratio, not max")
        return self

    def bind_names(self) -> frozenset[str]:
        """The bind parameters (``:name``) the query uses."""
        return frozenset(text(self.query).compile().params)

    def limit_text(self) -> str:
        """The limit in words: ``<= 0.05``, ``<= baseline + 0.02``, ``<= baseline x 1.5``."""
        if self.comparison is Comparison.ABSOLUTE:
            return f"<= {self.max:g}"
        parts = []
        if self.max_increase is not None:
            parts.append(f"<= baseline + {self.max_increase:g}")
        if self.max_ratio is not None:
            parts.append(f"<= baseline x {self.max_ratio:g}")
        return " and ".join(parts)


class RolloutPlan(BaseModel):
    """A guarded rollout: the schedule the guard follows and the checks that may stop it.

    :param name: the plan's name (stored versions are kept by name).
    :param description: what the plan is for.
    :param flag: the flag it moves (the workflow's routing flag).
    :param baseline: the path traffic comes from, and where an abort sends it back.
    :param candidate: the path being rolled out.
    :param steps: the candidate's share step by step, rising; the last one ends the rollout.
    :param checks: the measurements every evaluation takes; at least one.
    :param interval_seconds: how often the guard evaluates (the controller's schedule).
    :param params: extra bind parameters for every check's query (numbers or text).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=NAME)
    description: str = ""
    flag: str = Field(min_length=1, max_length=100)
    baseline: str = Field(min_length=1, max_length=100)
    candidate: str = Field(min_length=1, max_length=100)
    steps: tuple[Step, ...] = Field(min_length=1)
    checks: tuple[Check, ...] = Field(min_length=1)
    interval_seconds: int = Field(default=60, ge=1)
    params: dict[str, float | int | str] = Field(default_factory=dict)

    def step_weight(self, index: int) -> int:
        """The candidate's percent in step ``index``.

        :param index: 0-based step index.
        """
        return self.steps[index].weight

    def check_named(self, name: str) -> Check:
        """The check called ``name`` (KeyError if none).

        :param name: a check's name.
        """
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def rollback_seconds(self) -> int:
        """The longest an unhealthy candidate keeps traffic: interval times the largest
        failure limit (each failed evaluation counts)."""
        return self.interval_seconds * max(check.failure_limit for check in self.checks)


def check_plan(data: RolloutPlan | dict[str, Any], flag: FlagSpec | None = None) -> RolloutPlan:
    """``data`` as a valid plan (for ``flag`` when given), or a RolloutError naming the field.

    :param data: a plan or its JSON form.
    :param flag: the workflow's flag: the plan must name it and two of its paths.
    """
    if isinstance(data, RolloutPlan):
        data = data.model_dump(mode="json")
    if not isinstance(data, dict):
        raise RolloutError("plan", f"a plan is a mapping of fields, not {type(data).__name__}")
    try:
        plan = RolloutPlan.model_validate(data)
    except ValidationError as error:
        raise _named(error) from None
    if plan.candidate == plan.baseline:
        raise RolloutError("candidate", f"is the baseline ({plan.baseline}); name another path")
    _check_steps(plan)
    _check_checks(plan)
    if flag is not None:
        _check_flag(plan, flag)
    return plan


def parse_plan(source: str, flag: FlagSpec | None = None) -> RolloutPlan:
    """A plan from YAML or JSON text (JSON is YAML), checked as :func:`check_plan` does.

    :param source: the plan file's text.
    :param flag: the workflow's flag, when known.
    """
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as error:
        raise RolloutError("plan", f"not YAML or JSON: {_first_line(str(error))}") from None
    return check_plan(data, flag)


def plan_json(plan: RolloutPlan) -> str:
    """The plan as JSON text (what is stored and what the API returns).

    :param plan: a checked plan.
    """
    return json.dumps(plan.model_dump(mode="json"), indent=2)


def _check_steps(plan: RolloutPlan) -> None:
    for index, step in enumerate(plan.steps[1:], start=1):
        if step.weight <= plan.steps[index - 1].weight:
            raise RolloutError(
                f"steps[{index}].weight",
                f"{step.weight} does not rise above the step before "
                f"({plan.steps[index - 1].weight})",
            )


def _check_checks(plan: RolloutPlan) -> None:
    seen: set[str] = set()
    available = BUILT_IN_PARAMS | set(plan.params)
    for index, check in enumerate(plan.checks):
        if check.name in seen:
            raise RolloutError(f"checks[{index}].name", f"{check.name!r} is used twice")
        seen.add(check.name)
        if not re.match(r"^\s*(select|with)\b", check.query, re.IGNORECASE):
            raise RolloutError(f"checks[{index}].query", "must be one SELECT (or WITH) statement")
        unknown = sorted(check.bind_names() - available)
        if unknown:
            raise RolloutError(
                f"checks[{index}].query",
                f"unknown bind parameter :{unknown[0]}; available: "
                f"{', '.join(':' + name for name in sorted(available))} (add others to params)",
            )
        if ":path" not in check.query:
            raise RolloutError(f"checks[{index}].query", "must filter by :path")


def _check_flag(plan: RolloutPlan, flag: FlagSpec) -> None:
    if plan.flag != flag.name:
        raise RolloutError("flag", f"{plan.flag!r} is not the workflow's flag {flag.name!r}")
    for field in ("baseline", "candidate"):
        path = getattr(plan, field)
        if path not in flag.paths:
            raise RolloutError(field, f"unknown path {path!r}; allowed: {', '.join(flag.paths)}")


def _first_line(message: str) -> str:
    return " ".join(message.split())[:300]
