"""Live figures per execution path, as the Rollout page shows them; the workflow computes them.

The library defines what a path's figures are (:class:`PathFigures`) and the windows the page
offers; which orders count as accepted, completed or failed is the workflow's business, so a
workflow names a :data:`FiguresProvider` in ``SEGUE_ROLLOUT_FIGURES`` (``module:attribute``),
called as ``provider(session, since=..., until=..., stuck_after=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from segue.rollout.definition import RolloutError

WINDOWS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
}
"""The windows the page and the API offer (query parameter ``window``)."""

DEFAULT_WINDOW = "1h"


class PathFigures(BaseModel):
    """What happened to the subjects one path accepted in a window.

    :param path: the execution path.
    :param accepted: subjects routed to the path in the window.
    :param completed: of those, finished successfully.
    :param failed_business: failed for a business reason (card declined, out of stock).
    :param failed_technical: failed for a technical reason (dead-lettered, or stuck: not
        finished within the time limit).
    :param in_flight: not finished yet, still within the time limit.
    :param p50_ms: median time from acceptance to a terminal state (None: nothing finished).
    :param p95_ms: 95th percentile of the same.
    :param p99_ms: 99th percentile of the same.
    :param measured: how the figures were measured, in a sentence for the reader.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    accepted: int = Field(ge=0)
    completed: int = Field(ge=0)
    failed_business: int = Field(ge=0)
    failed_technical: int = Field(ge=0)
    in_flight: int = Field(ge=0)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    measured: str = ""


class FiguresProvider(Protocol):
    """A workflow's figures: per path, the subjects accepted in ``[since, until)``."""

    def __call__(
        self, session: Session, *, since: datetime, until: datetime, stuck_after: timedelta
    ) -> Mapping[str, PathFigures]:
        """Figures per path of the subjects accepted from ``since`` to ``until``.

        :param session: a read session on the business store.
        :param since: start of the window (inclusive, aware UTC).
        :param until: end of the window (exclusive) and the moment "stuck" is judged at.
        :param stuck_after: a subject not terminal this long after acceptance is stuck.
        """
        ...


def window_of(name: str) -> timedelta:
    """The length of window ``name`` (``15m``, ``1h``, ``24h``); RolloutError naming ``window``.

    :param name: the query parameter's value.
    """
    try:
        return WINDOWS[name]
    except KeyError:
        raise RolloutError("window", f"{name!r} is not one of {', '.join(WINDOWS)}") from None


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ascending ``sorted_values`` (None when empty).

    :param sorted_values: the measurements, ascending.
    :param fraction: 0 < fraction <= 1 (0.95 for p95).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


def load_figures_provider(path: str | None) -> FiguresProvider | None:
    """The provider named ``module:attribute`` (None when ``path`` is empty: not configured).

    :param path: the value of ``SEGUE_ROLLOUT_FIGURES``.
    """
    if not path:
        return None
    from segue.imports import load_object

    provider = load_object(path)
    if not callable(provider):
        raise TypeError(f"SEGUE_ROLLOUT_FIGURES={path} is {type(provider).__name__}, not callable")
    return provider  # type: ignore[no-any-return]
