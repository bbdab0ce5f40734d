"""Versioned flag storage and route decisions on real PostgreSQL: every refusal names the field
and leaves the version in force, history shows old -> new, decisions are sticky and commit (or
roll back) with the caller's transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from segue.rollout import (
    ConcurrentChange,
    FlagSpec,
    RolloutError,
    current,
    decide,
    decision_of,
    history,
    kill,
    latest_version,
    provider_for,
    set_split,
)
from segue.rollout.tables import RouteDecisionRow

SPLIT = {"weights": {"dag": 90, "events": 10}, "baseline": "dag"}


def wait_for_version(engine: Engine, flag: FlagSpec, version: int) -> None:
    """Let this process's provider see ``version`` now rather than within 0.25 s."""
    provider = provider_for(engine)
    provider._cache.pop(flag.name, None)
    assert provider.compiled(flag.name, flag.baseline).version == version


def test_no_version_sends_everything_to_the_baseline(
    engine: Engine, flag: FlagSpec, subject: Callable[..., str]
) -> None:
    with Session(engine) as session:
        assert current(session, flag).version == 0
        assert current(session, flag).definition.weights == {"dag": 100}
        decisions = [
            decide(session, flag, order_id, {"order_id": order_id})
            for order_id in (subject() for _ in range(50))
        ]
        session.commit()
    assert {d.path for d in decisions} == {"dag"}
    assert {d.reason for d in decisions} == {"default"}
    assert {d.flag_version for d in decisions} == {0}


def test_a_change_is_a_new_version_and_history_shows_old_to_new(
    engine: Engine, flag: FlagSpec
) -> None:
    with Session(engine) as session:
        set_split(session, flag, SPLIT, "ada", "start the event path")
        set_split(
            session,
            flag,
            {
                **SPLIT,
                "weights": {"dag": 75, "events": 25},
                "rules": [{"attribute": "amount", "operator": ">", "value": "500", "path": "dag"}],
            },
            "grace",
            "events looks healthy",
        )
        kill(session, flag, "linus", "incident 42")
        session.commit()
    with Session(engine) as session:
        changes = history(session, flag)
        assert current(session, flag).version == 3
    assert [(c.version, c.changed_by, c.reason) for c in changes] == [
        (1, "ada", "start the event path"),
        (2, "grace", "events looks healthy"),
        (3, "linus", "incident 42"),
    ]
    assert changes[0].old is None
    assert changes[0].changes == ("weights.dag: 100 -> 90", "weights.events: 0 -> 10")
    assert changes[1].old == changes[0].new
    assert changes[1].changes == (
        "weights.dag: 90 -> 75",
        "weights.events: 10 -> 25",
        "rules: [none] -> [amount>500=dag]",
    )
    assert changes[2].changes == ("killed: False -> True",)
    assert changes[2].new.weights == {
        "dag": 75,
        "events": 25,
    }  # the kill keeps the split to come back to
    assert all(c.changed_at is not None for c in changes)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("sum", {**SPLIT, "weights": {"dag": 90, "events": 5}}, "weights"),
    ("negative", {**SPLIT, "weights": {"dag": 110, "events": -10}}, "weights"),
    ("not-int", {**SPLIT, "weights": {"dag": "ninety", "events": 10}}, "weights.dag"),
    ("unknown-path", {**SPLIT, "weights": {"dag": 90, "lambda": 10}}, "weights.lambda"),
    ("baseline-unknown", {**SPLIT, "baseline": "cron"}, "baseline"),
    ("baseline-missing", {"weights": {"dag": 100}}, "baseline"),
    (
        "rule-operator",
        {
            **SPLIT,
            "rules": [{"attribute": "amount", "operator": "~=", "value": "1", "path": "dag"}],
        },
        "rules[0].operator",
    ),
    (
        "rule-number",
        {
            **SPLIT,
            "rules": [{"attribute": "amount", "operator": ">", "value": "lots", "path": "dag"}],
        },
        "rules[0].value",
    ),
    (
        "rule-in-one",
        {
            **SPLIT,
            "rules": [{"attribute": "currency", "operator": "in", "value": "JPY", "path": "dag"}],
        },
        "rules[0].value",
    ),
    (
        "rule-list-eq",
        {
            **SPLIT,
            "rules": [{"attribute": "currency", "operator": "==", "value": ["JPY"], "path": "dag"}],
        },
        "rules[0].value",
    ),
    (
        "rule-path",
        {
            **SPLIT,
            "rules": [{"attribute": "amount", "operator": ">", "value": "5", "path": "cron"}],
        },
        "rules[0].path",
    ),
    (
        "rule-attribute",
        {**SPLIT, "rules": [{"attribute": "", "operator": ">", "value": "5", "path": "dag"}]},
        "rules[0].attribute",
    ),
    (
        "rule-missing",
        {**SPLIT, "rules": [{"attribute": "amount", "operator": ">", "value": "5"}]},
        "rules[0].path",
    ),
    ("sticky", {**SPLIT, "sticky_key": "not a name"}, "sticky_key"),
    ("extra", {**SPLIT, "percent": 5}, "percent"),
]


@pytest.mark.parametrize(
    ("data", "field"), [(data, field) for _, data, field in BAD], ids=[name for name, _, _ in BAD]
)
def test_bad_input_is_refused_naming_the_field_and_the_version_stays(
    engine: Engine, flag: FlagSpec, data: dict[str, Any], field: str
) -> None:
    with Session(engine) as session:
        set_split(session, flag, SPLIT, "ada", "first")
        session.commit()
    with Session(engine) as session:
        with pytest.raises(RolloutError) as caught:
            set_split(session, flag, data, "ada", "bad")
        assert caught.value.field == field, str(caught.value)
        session.commit()
    with Session(engine) as session:
        assert latest_version(session, flag.name) == 1
        assert current(session, flag).definition.weights == {"dag": 90, "events": 10}


@pytest.mark.parametrize(
    ("actor", "reason", "field"), [("", "why", "actor"), ("ada", "  ", "reason")]
)
def test_a_change_needs_an_actor_and_a_reason(
    engine: Engine, flag: FlagSpec, actor: str, reason: str, field: str
) -> None:
    with Session(engine) as session:
        with pytest.raises(RolloutError) as caught:
            set_split(session, flag, SPLIT, actor, reason)
        assert caught.value.field == field
        assert latest_version(session, flag.name) == 0


def test_two_changes_based_on_one_version_cannot_both_land(engine: Engine, flag: FlagSpec) -> None:
    with Session(engine) as session:
        set_split(session, flag, SPLIT, "ada", "first")
        session.commit()
    written = threading.Event()

    def first_change() -> None:
        with Session(engine) as first:
            set_split(first, flag, {**SPLIT, "weights": {"dag": 80, "events": 20}}, "ada", "more")
            written.set()
            time.sleep(0.5)  # the second change reads version 1 meanwhile and waits on the row
            first.commit()

    thread = threading.Thread(target=first_change)
    thread.start()
    assert written.wait(10)
    with Session(engine) as second:
        with pytest.raises(ConcurrentChange) as caught:
            set_split(
                second, flag, {**SPLIT, "weights": {"dag": 50, "events": 50}}, "bob", "much more"
            )
        assert caught.value.field == "version"
        second.commit()  # the caller's transaction survives the refused change
    thread.join(10)
    with Session(engine) as session:
        assert current(session, flag).definition.weights == {"dag": 80, "events": 20}
        with pytest.raises(ConcurrentChange) as caught:
            set_split(session, flag, SPLIT, "bob", "stale screen", expected_version=1)
        assert caught.value.field == "version"
        assert latest_version(session, flag.name) == 2


def test_decide_twice_returns_the_first_decision_after_a_weight_change(
    engine: Engine, flag: FlagSpec, subject: Callable[..., str]
) -> None:
    with Session(engine) as session:
        set_split(session, flag, {**SPLIT, "weights": {"events": 100}}, "ada", "all events")
        session.commit()
    wait_for_version(engine, flag, 1)
    order_id = subject()
    with Session(engine) as session:
        first = decide(session, flag, order_id, {"order_id": order_id})
        session.commit()
    assert (first.path, first.reason, first.flag_version, first.new) == (
        "events",
        "weight",
        1,
        True,
    )
    with Session(engine) as session:
        set_split(session, flag, {**SPLIT, "weights": {"dag": 100}}, "ada", "all back")
        kill(session, flag, "ada", "and killed")
        session.commit()
    wait_for_version(engine, flag, 3)
    with Session(engine) as session:
        again = decide(session, flag, order_id, {"order_id": order_id, "amount": "900"})
        fresh = decide(session, flag, subject(), {"order_id": "other"})
    assert again.model_dump(exclude={"new", "decided_at"}) == first.model_dump(
        exclude={"new", "decided_at"}
    )
    assert again.decided_at == first.decided_at and again.new is False
    assert (fresh.path, fresh.reason) == ("dag", "killed")


def test_a_decision_commits_or_rolls_back_with_the_callers_transaction(
    engine: Engine, flag: FlagSpec, subject: Callable[..., str]
) -> None:
    order_id = subject()
    with Session(engine) as session:
        decision = decide(session, flag, order_id, {"order_id": order_id})
        assert decision_of(session, order_id) is not None  # visible inside the transaction
        session.rollback()
    with Session(engine) as session:
        assert decision_of(session, order_id) is None
        decide(session, flag, order_id, {"order_id": order_id})
        session.commit()
    with Session(engine) as session:
        count = session.execute(
            select(func.count())
            .select_from(RouteDecisionRow)
            .where(RouteDecisionRow.subject_id == order_id)
        ).scalar()
        assert count == 1
        stored = decision_of(session, order_id)
    assert stored is not None and stored.path == decision.path and stored.bucket == decision.bucket


def test_a_decision_records_the_rule_and_the_bucket(
    engine: Engine, flag: FlagSpec, subject: Callable[..., str]
) -> None:
    rules = [{"attribute": "amount", "operator": ">", "value": "500", "path": "saga"}]
    with Session(engine) as session:
        set_split(
            session,
            flag,
            {**SPLIT, "weights": {"events": 100}, "rules": rules},
            "ada",
            "big ones to the saga",
        )
        session.commit()
    wait_for_version(engine, flag, 1)
    with Session(engine) as session:
        big = decide(session, flag, subject(), {"order_id": "o-1", "amount": "500.01"})
        small = decide(session, flag, subject(), {"order_id": "o-1", "amount": "499.99"})
        session.commit()
    assert (big.path, big.reason) == ("saga", "rule:amount>500=saga")
    assert (small.path, small.reason) == ("events", "weight")
    assert big.bucket == small.bucket is not None  # same sticky value, same bucket


def test_a_context_without_the_sticky_key_is_refused_and_nothing_is_written(
    engine: Engine, flag: FlagSpec, subject: Callable[..., str]
) -> None:
    with Session(engine) as session:
        set_split(session, flag, {**SPLIT, "sticky_key": "customer_email"}, "ada", "by customer")
        session.commit()
    wait_for_version(engine, flag, 1)
    order_id = subject()
    with Session(engine) as session:
        with pytest.raises(RolloutError) as caught:
            decide(session, flag, order_id, {"order_id": order_id})
        assert caught.value.field == "context.customer_email"
        session.commit()
        assert decision_of(session, order_id) is None


def test_two_transactions_deciding_one_subject_keep_one_decision(
    engine: Engine, flag: FlagSpec, subject: Callable[..., str]
) -> None:
    order_id = subject()
    decided = threading.Event()
    first: list[Any] = []

    def first_intake() -> None:
        with Session(engine) as session:
            first.append(decide(session, flag, order_id, {"order_id": order_id}))
            decided.set()
            time.sleep(0.3)  # the other transaction's insert waits on this one
            session.commit()

    thread = threading.Thread(target=first_intake)
    thread.start()
    assert decided.wait(10)
    with Session(engine) as session:
        second = decide(session, flag, order_id, {"order_id": order_id})
        session.commit()
    thread.join(10)
    assert first[0].new is True and second.new is False
    assert second.decided_at == first[0].decided_at and second.path == first[0].path
