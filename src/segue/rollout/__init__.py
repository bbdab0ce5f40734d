"""The traffic split as a feature flag: which execution path each subject (order) takes.

A workflow declares its flag (:class:`FlagSpec`: name, allowed paths, baseline); people change
it through versioned, audited :func:`set_split` / :func:`kill`; every subject gets one sticky,
stored :func:`decide` decision, evaluated through OpenFeature with :class:`SegueProvider`.
Domain-free: paths are the names the workflow declares.

The guarded rollout moves the split by a plan (:mod:`segue.rollout.plan`, stored in versions by
:mod:`segue.rollout.plans`): :mod:`segue.rollout.guard` evaluates its checks
(:mod:`segue.rollout.measure`) and promotes, holds, asks for approval or aborts through
:func:`set_split` / :func:`kill`.
"""

from __future__ import annotations

from segue.rollout.decisions import RouteDecision, decide, decision_of
from segue.rollout.definition import (
    ConcurrentChange,
    FlagSpec,
    Operator,
    RolloutError,
    Rule,
    SplitDefinition,
)
from segue.rollout.provider import SegueProvider, provider_for, rollout_client
from segue.rollout.store import (
    Change,
    FlagVersion,
    current,
    diff,
    history,
    kill,
    latest_version,
    set_split,
)

__all__ = [
    "Change",
    "ConcurrentChange",
    "FlagSpec",
    "FlagVersion",
    "Operator",
    "RolloutError",
    "RouteDecision",
    "Rule",
    "SegueProvider",
    "SplitDefinition",
    "current",
    "decide",
    "decision_of",
    "diff",
    "history",
    "kill",
    "latest_version",
    "provider_for",
    "rollout_client",
    "set_split",
]
