"""The comparator: each real subject against its shadow, once both are terminal.

The workflow observes both sides (:class:`Observation`: outcome, the failure's category, amount
charged, items reserved, latency) and hands over :class:`Pair` s through a provider named by
``SEGUE_SHADOW_PAIRS`` (``(session, limit) -> pairs``); the comparison and the aggregate are
the library's. Latency is reported, never a mismatch: the two sides run on different paths.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from segue.rollout.shadow.switch import ShadowSetting

Outcome = Literal["completed", "failed", "pending"]
COMPARED_FIELDS = ("outcome", "reason", "amount_charged", "items_reserved")


class Observation(BaseModel):
    """One side of a pair as the workflow saw it.

    :param outcome: ``completed``, ``failed`` or ``pending`` (not terminal yet).
    :param reason: the failure's category (e.g. ``declined``, ``out_of_stock``), None unless failed.
    :param amount_charged: money kept at the end: charged minus refunded (exact).
    :param items_reserved: the stock held at the end, as sorted ``SKU x quantity`` lines.
    :param latency_ms: from acceptance to the terminal status (None while pending).
    """

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    reason: str | None = None
    amount_charged: Decimal = Decimal("0.00")
    items_reserved: tuple[str, ...] = ()
    latency_ms: float | None = None

    @property
    def terminal(self) -> bool:
        """True once completed or failed."""
        return self.outcome != "pending"


class Pair(BaseModel):
    """A real subject and its shadow.

    :param subject_id: the real subject (order) id.
    :param real_path: the path the real subject took.
    :param shadow_id: the shadow's id.
    :param shadow_path: the candidate path the shadow ran on.
    :param real: the real side.
    :param shadow: the shadow side.
    """

    model_config = ConfigDict(frozen=True)

    subject_id: str
    real_path: str
    shadow_id: str
    shadow_path: str
    real: Observation
    shadow: Observation


class Mismatch(BaseModel):
    """One field on which a real subject and its shadow differ, with both values.

    :param subject_id: the real subject.
    :param field: one of ``outcome``, ``reason``, ``amount_charged``, ``items_reserved``.
    :param real: the real side's value, as text.
    :param shadow: the shadow's value, as text.
    """

    model_config = ConfigDict(frozen=True)

    subject_id: str
    field: str
    real: str
    shadow: str


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(value) or "(none)"
    return "(none)" if value is None else str(value)


def compare_pair(pair: Pair) -> list[Mismatch]:
    """The fields on which ``pair``'s sides differ; empty while either side is pending.

    :param pair: a real subject and its shadow.
    """
    if not (pair.real.terminal and pair.shadow.terminal):
        return []
    mismatches = []
    for field in COMPARED_FIELDS:
        real, shadow = getattr(pair.real, field), getattr(pair.shadow, field)
        if real != shadow:
            mismatches.append(
                Mismatch(
                    subject_id=pair.subject_id, field=field, real=_text(real), shadow=_text(shadow)
                )
            )
    return mismatches


class SideFigures(BaseModel):
    """One side's aggregate over the compared pairs.

    :param outcomes: count per outcome (``failed:declined`` per failure category).
    :param amount_charged: total money kept.
    :param latency_p50_ms: median latency.
    :param latency_p95_ms: 95th percentile latency.
    """

    model_config = ConfigDict(frozen=True)

    outcomes: dict[str, int]
    amount_charged: Decimal
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class ShadowReport(BaseModel):
    """Per subject and in aggregate: what was mirrored, compared, matched and where they differ.

    :param setting: the shadow setting in force.
    :param mirrored: pairs read (at most the provider's limit).
    :param compared: pairs with both sides terminal.
    :param matching: compared pairs with no mismatch.
    :param pending: pairs with a side not terminal yet.
    :param mismatches: every mismatch, per subject and field.
    :param by_field: mismatches per field.
    :param real: the real sides' aggregate (compared pairs).
    :param shadow: the shadows' aggregate (compared pairs).
    :param pairs: every pair read, newest first.
    """

    model_config = ConfigDict(frozen=True)

    setting: ShadowSetting
    mirrored: int
    compared: int
    matching: int
    pending: int
    mismatches: tuple[Mismatch, ...]
    by_field: dict[str, int]
    real: SideFigures
    shadow: SideFigures
    pairs: tuple[Pair, ...] = ()


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(fraction * len(ordered))) - 1], 1)


def _side(observations: list[Observation]) -> SideFigures:
    outcomes = Counter(
        obs.outcome if obs.reason is None else f"{obs.outcome}:{obs.reason}" for obs in observations
    )
    latencies = [obs.latency_ms for obs in observations if obs.latency_ms is not None]
    return SideFigures(
        outcomes=dict(sorted(outcomes.items())),
        amount_charged=sum((obs.amount_charged for obs in observations), Decimal("0.00")),
        latency_p50_ms=_percentile(latencies, 0.5),
        latency_p95_ms=_percentile(latencies, 0.95),
    )


def build_report(setting: ShadowSetting, pairs: Sequence[Pair]) -> ShadowReport:
    """Compare every pair and aggregate.

    :param setting: the shadow setting in force (shown with the report).
    :param pairs: real subjects and their shadows, as the workflow observed them.
    """
    done = [pair for pair in pairs if pair.real.terminal and pair.shadow.terminal]
    mismatches = [mismatch for pair in done for mismatch in compare_pair(pair)]
    differing = {mismatch.subject_id for mismatch in mismatches}
    by_field = Counter(mismatch.field for mismatch in mismatches)
    return ShadowReport(
        setting=setting,
        mirrored=len(pairs),
        compared=len(done),
        matching=len(done) - len(differing),
        pending=len(pairs) - len(done),
        mismatches=tuple(mismatches),
        by_field={field: by_field[field] for field in COMPARED_FIELDS if by_field[field]},
        real=_side([pair.real for pair in done]),
        shadow=_side([pair.shadow for pair in done]),
        pairs=tuple(pairs),
    )


PairsProvider = Callable[[Session, int], Sequence[Pair]]
"""A workflow's observations: ``(session, limit) -> pairs``, newest first."""


def load_pairs_provider(path: str | None) -> PairsProvider | None:
    """The provider named ``module:attribute`` (None when ``path`` is empty: not configured).

    :param path: the value of ``SEGUE_SHADOW_PAIRS``.
    """
    if not path:
        return None
    from segue.imports import load_object

    provider = load_object(path)
    if not callable(provider):
        raise TypeError(f"SEGUE_SHADOW_PAIRS={path} is {type(provider).__name__}, not callable")
    return provider  # type: ignore[no-any-return]
