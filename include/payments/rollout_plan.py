"""The payment workflow's guarded-rollout plan: the event path replaces the DAG path, watched by
checks over route_decisions, orders and dead_letters (``rollout_plan.yaml``, next to this file;
``examples/rollout-plan.yaml`` links to it).

The checks judge an order as the Rollout page's figures do
(:mod:`include.payments.rollout_figures`): a dead letter, or no terminal status
``stuck_after_seconds`` after the route decision, is a technical failure; a decline or an
out-of-stock order (status ``failed``, no dead letter) is a business outcome and never
trips a check.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from include.workflow import ROLLOUT_BASELINE, ROLLOUT_FLAG, ROLLOUT_PATHS
from segue.rollout import FlagSpec
from segue.rollout.plan import RolloutPlan, parse_plan
from segue.rollout.plans import StoredPlan, save_plan

PLAN_FILE = Path(__file__).with_name("rollout_plan.yaml")
FLAG = FlagSpec(name=ROLLOUT_FLAG, paths=ROLLOUT_PATHS, baseline=ROLLOUT_BASELINE)


def default_plan() -> RolloutPlan:
    """The plan in ``rollout_plan.yaml``, checked against the payment flag."""
    return parse_plan(PLAN_FILE.read_text(), FLAG)


def install_default_plan(session: Session, actor: str = "segue up") -> StoredPlan:
    """Store the default plan (a new version only when the file changed); the caller commits.

    :param session: the business store.
    :param actor: who installs it (recorded).
    """
    return save_plan(session, default_plan(), actor, "the payment workflow's example plan", FLAG)
