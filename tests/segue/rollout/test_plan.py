"""Rollout plans as data: YAML or JSON in, a frozen plan out, or a refusal naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.rollout import FlagSpec, RolloutError
from segue.rollout.plan import Comparison, check_plan, parse_plan, plan_json
from segue.rollout.plans import latest_plan, latest_plans, save_plan

FLAG = FlagSpec(name="route", paths=("dag", "saga", "hybrid", "events"), baseline="dag")
QUERY = "SELECT 0.0 AS value, COUNT(*) AS sample FROM route_decisions WHERE path = :path"
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "rollout-plan.yaml"
QUICK = EXAMPLE.with_name("rollout-plan-quick.yaml")


def plan(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "events-rollout",
        "flag": "route",
        "baseline": "dag",
        "candidate": "events",
        "steps": [{"weight": 10, "bake_seconds": 60}, {"weight": 100, "bake_seconds": 60}],
        "checks": [
            {"name": "rate", "query": QUERY, "comparison": "absolute", "max": 0.05},
        ],
    }
    data.update(changes)
    return data


def check(**changes: Any) -> dict[str, Any]:
    return {"name": "rate", "query": QUERY, "comparison": "absolute", "max": 0.05, **changes}


def test_a_plan_from_yaml_and_from_json_is_the_same_frozen_value() -> None:
    from_yaml = parse_plan(yaml.safe_dump(plan()), FLAG)
    assert from_yaml == parse_plan(plan_json(from_yaml), FLAG)
    assert from_yaml.checks[0].comparison is Comparison.ABSOLUTE
    assert from_yaml.rollback_seconds() == 60  # interval 60 x failure_limit 1
    with pytest.raises(ValueError, match="frozen"):
        from_yaml.steps[0].weight = 50  # type: ignore[misc]


def test_the_example_plan_is_valid_for_the_payment_flag() -> None:
    example = parse_plan(EXAMPLE.read_text(), FLAG)
    assert [step.weight for step in example.steps] == [1, 5, 25, 50, 100]
    assert example.steps[2].approval
    assert {c.name for c in example.checks} == {
        "technical_failure_rate", "p95_latency_seconds", "stuck_orders"
    }  # fmt: skip


def test_the_quick_plan_is_valid_and_checks_as_the_example_does() -> None:
    """The README's try-it plan: short steps, and the example's own SQL for its two checks."""
    quick, example = parse_plan(QUICK.read_text(), FLAG), parse_plan(EXAMPLE.read_text(), FLAG)
    assert [(s.weight, s.bake_seconds) for s in quick.steps] == [(20, 120), (50, 120), (100, 120)]
    queries = {c.name: c.query for c in example.checks}
    assert {c.name: c.query for c in quick.checks} == {
        name: queries[name] for name in ("technical_failure_rate", "stuck_orders")
    }


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (plan(candidate="dag"), "candidate", "is the baseline"),
        (plan(candidate="lambda"), "candidate", "unknown path 'lambda'"),
        (plan(flag="other"), "flag", "not the workflow's flag"),
        (plan(steps=[]), "steps", "at least 1"),
        (plan(steps=[{"weight": 0, "bake_seconds": 1}]), "steps[0].weight", "greater than"),
        (plan(steps=[{"weight": 101, "bake_seconds": 1}]), "steps[0].weight", "less than"),
        (
            plan(steps=[{"weight": 50, "bake_seconds": 1}, {"weight": 20, "bake_seconds": 1}]),
            "steps[1].weight",
            "does not rise",
        ),
        (plan(steps=[{"weight": 50, "bake_seconds": -1}]), "steps[0].bake_seconds", "greater"),
        (
            plan(steps=[{"weight": 50, "bake_seconds": 1, "aproval": True}]),
            "steps[0].aproval",
            "Extra inputs",
        ),
        (plan(checks=[]), "checks", "at least 1"),
        (plan(checks=[check(comparison="relative")]), "checks[0].comparison", "absolute"),
        (plan(checks=[check(max=None)]), "checks[0]", "needs max"),
        (
            plan(checks=[check(comparison="vs_baseline", max=None)]),
            "checks[0]",
            "max_increase or max_ratio",
        ),
        (plan(checks=[check(), check()]), "checks[1].name", "used twice"),
        (
            plan(checks=[check(query="DELETE FROM orders WHERE path = :path")]),
            "checks[0].query",
            "SELECT",
        ),
        (
            plan(checks=[check(query="SELECT 1, 1 WHERE :path = :paht")]),
            "checks[0].query",
            "unknown bind parameter :paht",
        ),
        (plan(checks=[check(query="SELECT 1, 1")]), "checks[0].query", "filter by :path"),
        (plan(checks=[check(failure_limit=0)]), "checks[0].failure_limit", "greater"),
        (plan(interval_seconds=0), "interval_seconds", "greater"),
        (plan(name="no spaces please"), "name", "pattern"),
    ],
    ids=lambda value: value if isinstance(value, str) and "." in value else None,
)
def test_a_bad_plan_is_refused_naming_the_field(data: Any, field: str, words: str) -> None:
    with pytest.raises(RolloutError) as refused:
        check_plan(data, FLAG)
    assert refused.value.field == field, refused.value
    assert words in refused.value.message, refused.value


def test_text_that_is_not_a_plan_is_refused() -> None:
    for text, words in (("steps: [", "not YAML or JSON"), ("- 1\n- 2", "not list")):
        with pytest.raises(RolloutError) as refused:
            parse_plan(text, FLAG)
        assert refused.value.field == "plan" and words in refused.value.message


def test_params_are_bind_parameters_too() -> None:
    query = "SELECT 1, 1 WHERE :path = :path AND :limit > 0"
    assert check_plan(plan(checks=[check(query=query)], params={"limit": 5}), FLAG)
    with pytest.raises(RolloutError, match="unknown bind parameter :limit"):
        check_plan(plan(checks=[check(query=query)]), FLAG)


def test_plans_are_stored_in_versions_and_unchanged_plans_write_nothing(
    clean_db: Engine,
) -> None:
    with Session(clean_db) as session:
        first = save_plan(session, plan(), "alice", "first", FLAG)
        same = save_plan(session, plan(), "bob", "again", FLAG)
        second = save_plan(session, plan(interval_seconds=30), "bob", "faster", FLAG)
        with pytest.raises(RolloutError) as refused:
            save_plan(session, plan(candidate="dag"), "bob", "bad", FLAG)
        session.commit()
        assert refused.value.field == "candidate"
        assert (first.version, same.version, second.version) == (1, 1, 2)
        latest = latest_plan(session, "events-rollout")
        assert latest is not None and latest.plan.interval_seconds == 30
        assert latest.saved_by == "bob" and latest.reason == "faster"
        assert [p.version for p in latest_plans(session)] == [2]
