"""Judging one check's readings: limits are inclusive, too few subjects or no value is
inconclusive (never a failure), and vs_baseline compares by increase, by ratio or both."""

from __future__ import annotations

import pytest

from segue.rollout.measure import Outcome, Reading, judge
from segue.rollout.plan import Check

QUERY = "SELECT 1, 1 WHERE :path = :path"


def check(**limits: object) -> Check:
    return Check.model_validate({"name": "c", "query": QUERY, "min_sample": 10, **limits})


def r(value: float | None, sample: int = 10) -> Reading:
    return Reading(value=value, sample=sample)


ABSOLUTE = {"comparison": "absolute", "max": 0.05}
INCREASE = {"comparison": "vs_baseline", "max_increase": 0.02}
RATIO = {"comparison": "vs_baseline", "max_ratio": 1.5}
BOTH = {"comparison": "vs_baseline", "max_increase": 0.5, "max_ratio": 1.5}


@pytest.mark.parametrize(
    ("limits", "candidate", "baseline", "outcome"),
    [
        (ABSOLUTE, r(0.05), None, Outcome.PASS),  # the limit itself passes
        (ABSOLUTE, r(0.0501), None, Outcome.FAIL),
        (ABSOLUTE, r(0.9, sample=9), None, Outcome.INCONCLUSIVE),  # too few, however bad
        (ABSOLUTE, r(None), None, Outcome.INCONCLUSIVE),
        (INCREASE, r(0.07), r(0.05), Outcome.PASS),
        (INCREASE, r(0.0701), r(0.05), Outcome.FAIL),
        (INCREASE, r(0.9), r(0.05, sample=3), Outcome.INCONCLUSIVE),  # the baseline too few
        (INCREASE, r(0.9), r(None), Outcome.INCONCLUSIVE),
        (RATIO, r(3.0), r(2.0), Outcome.PASS),
        (RATIO, r(3.01), r(2.0), Outcome.FAIL),
        (RATIO, r(0.01), r(0.0), Outcome.FAIL),  # anything above a zero baseline
        (BOTH, r(1.4), r(1.0), Outcome.PASS),
        (BOTH, r(1.51), r(1.0), Outcome.FAIL),  # the increase (0.51 > 0.5) fails first
        (BOTH, r(0.7), r(0.4), Outcome.FAIL),  # the ratio (0.7 > 0.6) fails
    ],
)
def test_judge(
    limits: dict[str, object], candidate: Reading, baseline: Reading | None, outcome: Outcome
) -> None:
    measured = judge(check(**limits), candidate, baseline)
    assert measured.outcome is outcome, measured.detail
    assert measured.detail.startswith("c: ")
