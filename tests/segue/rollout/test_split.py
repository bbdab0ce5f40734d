"""The split evaluated in process: shares over 10,000 ids, stickiness, rules before weights, and
how a new layout moves subjects (only off shrinking paths, only onto growing ones)."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest
from pydantic import ValidationError

from segue.rollout import FlagSpec, RolloutError, SplitDefinition
from segue.rollout.evaluate import CompiledFlag
from segue.rollout.layout import BUCKETS, Layout, bucket_of, rebalance

PATHS = ("dag", "saga", "hybrid", "events")
SPEC = FlagSpec(name="route", paths=PATHS, baseline="dag")
# A fixed set (ids as an intake counter makes them): 1 point at 10,000 ids is about two standard
# deviations of a fair split, so a fresh random set would miss now and then by chance alone.
ORDER_IDS = [f"ord-{n:06d}" for n in range(10_000)]


def compiled(
    weights: dict[str, int], previous: Layout | None = None, version: int = 1, **more: object
) -> CompiledFlag:
    definition = SPEC.check({"weights": weights, "baseline": "dag", **more})
    layout = rebalance(previous or Layout.single("dag"), definition.weights, PATHS)
    return CompiledFlag("route", version, definition, layout)


def paths_of(flag: CompiledFlag, ids: list[str]) -> dict[str, str]:
    return {order_id: flag.evaluate({"order_id": order_id}).path for order_id in ids}


@pytest.mark.parametrize(
    "weights",
    [
        {"dag": 90, "events": 10},
        {"dag": 40, "saga": 20, "hybrid": 15, "events": 25},
        {"dag": 1, "saga": 1, "hybrid": 1, "events": 97},
    ],
    ids=["90-10", "four-paths", "one-percent"],
)
def test_observed_share_is_within_one_point_of_each_weight(weights: dict[str, int]) -> None:
    flag = compiled(weights)
    counts = Counter(paths_of(flag, ORDER_IDS).values())
    for path in PATHS:
        observed = 100 * counts[path] / len(ORDER_IDS)
        assert abs(observed - weights.get(path, 0)) < 1.0, (path, observed, weights)


def test_raising_events_from_10_to_25_moves_nobody_off_events() -> None:
    before = compiled({"dag": 90, "events": 10})
    after = compiled({"dag": 75, "events": 25}, previous=before.layout, version=2)
    old, new = paths_of(before, ORDER_IDS), paths_of(after, ORDER_IDS)
    moved = {order_id for order_id in ORDER_IDS if old[order_id] != new[order_id]}
    assert all(new[order_id] == "events" for order_id in ORDER_IDS if old[order_id] == "events")
    assert moved and all(new[order_id] == "events" for order_id in moved)
    assert all(old[order_id] == "dag" for order_id in moved)
    assert abs(100 * len(moved) / len(ORDER_IDS) - 15) < 1.0  # about the 15 points added


def test_growing_paths_keep_their_buckets_whatever_else_changes() -> None:
    """Random sequences of splits: a path that does not shrink keeps every bucket it had, and
    buckets only move from paths that shrank to paths that grew (fixed cumulative ranges fail
    this: raising events and saga together shifts saga's range)."""
    rng = random.Random(11)
    layout = Layout.single("dag")
    weights = {"dag": 100}
    for _ in range(60):
        cuts = sorted(rng.randint(0, 100) for _ in range(3))
        new = dict(
            zip(PATHS, [cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], 100 - cuts[2]], strict=True)
        )
        next_layout = rebalance(layout, new, PATHS)
        assert next_layout.counts() == {p: w * 100 for p, w in new.items() if w}
        for bucket in range(0, BUCKETS, 11):
            was, now = layout.path_of(bucket), next_layout.path_of(bucket)
            if was != now:
                assert new.get(was, 0) < weights.get(was, 0), (was, weights, new)
                assert new[now] > weights.get(now, 0), (now, weights, new)
        layout, weights = next_layout, new


def test_sticky_by_customer_keeps_one_customers_orders_on_one_path() -> None:
    flag = compiled({"dag": 50, "events": 50}, sticky_key="customer_email")
    for customer in (f"c{n}@example.com" for n in range(200)):
        paths = {
            flag.evaluate({"order_id": f"{customer}-{n}", "customer_email": customer}).path
            for n in range(10)
        }
        assert len(paths) == 1, customer
    spread = Counter(
        flag.evaluate({"customer_email": f"c{n}@example.com"}).path for n in range(2000)
    )
    assert spread["dag"] > 800 and spread["events"] > 800  # customers, not orders, are split


def test_the_bucket_depends_on_the_flag_and_the_value_only() -> None:
    assert bucket_of("route", "ord-1") == bucket_of("route", "ord-1")
    assert 0 <= bucket_of("route", "ord-1") < BUCKETS
    same = sum(bucket_of("route", i) == bucket_of("other", i) for i in ORDER_IDS[:1000])
    assert same < 10  # two flags bucket independently


def test_rules_win_over_weights_first_match_first() -> None:
    flag = compiled(
        {"events": 100},
        rules=[
            {"attribute": "amount", "operator": ">", "value": "500", "path": "dag"},
            {"attribute": "currency", "operator": "in", "value": ["JPY", "KRW"], "path": "saga"},
            {
                "attribute": "customer_email",
                "operator": "in",
                "value": ["qa@example.com"],
                "path": "hybrid",
            },
        ],
    )

    def route(**context: object) -> tuple[str, str]:
        result = flag.evaluate({"order_id": "ord-1", **context})
        return result.path, result.reason

    assert route(amount="500.01", currency="JPY") == ("dag", "rule:amount>500=dag")
    assert route(amount="500.00", currency="JPY") == ("saga", "rule:currency in [JPY,KRW]=saga")
    assert route(amount=Decimal("12"), customer_email="qa@example.com") == (
        "hybrid",
        "rule:customer_email in [qa@example.com]=hybrid",
    )
    assert route(amount="12", currency="USD") == ("events", "weight")
    assert route(amount="not a number") == (
        "events",
        "weight",
    )  # a rule that cannot compare does not match


@pytest.mark.parametrize(
    ("operator", "value", "amount", "matches"),
    [
        (">", "500", "500", False),
        (">=", "500", "500.00", True),
        ("<", "0.1", 0.09, True),
        ("<=", "10", "10.000", True),
        ("==", "500", "500.00", True),
        ("==", "500", 500, True),
        ("==", "JPY", "jpy", False),
        ("in", ["1", "2"], "2.0", True),
    ],
)
def test_numbers_compare_as_decimal(
    operator: str, value: object, amount: object, matches: bool
) -> None:
    flag = compiled(
        {"events": 100},
        rules=[{"attribute": "amount", "operator": operator, "value": value, "path": "dag"}],
    )
    assert (flag.evaluate({"order_id": "o", "amount": amount}).path == "dag") is matches


def test_killed_sends_everything_to_the_baseline_rules_too() -> None:
    flag = compiled(
        {"events": 100},
        killed=True,
        rules=[{"attribute": "amount", "operator": ">", "value": "1", "path": "saga"}],
    )
    results = {
        flag.evaluate({"order_id": order_id, "amount": "5"}).path for order_id in ORDER_IDS[:500]
    }
    assert results == {"dag"}
    assert flag.evaluate({"order_id": "o"}).reason == "killed"


def test_a_missing_sticky_key_is_an_error_naming_it() -> None:
    flag = compiled({"dag": 50, "events": 50}, sticky_key="customer_email")
    with pytest.raises(RolloutError) as caught:
        flag.evaluate({"order_id": "o"})
    assert caught.value.field == "context.customer_email"


def test_definition_is_a_frozen_value() -> None:
    definition = SPEC.default_definition()
    assert definition == SplitDefinition(weights={"dag": 100}, baseline="dag")
    with pytest.raises(ValidationError):
        definition.baseline = "events"  # type: ignore[misc]
