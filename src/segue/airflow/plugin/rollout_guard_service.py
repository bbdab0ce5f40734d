"""What the Rollout page and API do with guarded rollouts: read the stored plans, the latest
rollouts and their measurements; start a plan, abort, resume.

Each change runs in a transaction of its own, committed only when accepted; a refused one raises
:class:`~segue.rollout.RolloutError` naming the field and writes nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from segue.rollout.definition import RolloutError
from segue.rollout.guard_model import Evaluation, RolloutState, evaluations, rollouts
from segue.rollout.plan import check_plan, parse_plan
from segue.rollout.plans import StoredPlan, latest_plan, latest_plans


class GuardedStatus(BaseModel):
    """The guarded rollouts of the flag, as the page shows them.

    :param plans: the newest version of every stored plan.
    :param rollouts: the latest rollouts, newest first.
    :param evaluations: the measurements of the newest rollout, oldest first.
    """

    model_config = ConfigDict(frozen=True)

    plans: tuple[StoredPlan, ...]
    rollouts: tuple[RolloutState, ...]
    evaluations: tuple[Evaluation, ...]

    @property
    def latest(self) -> RolloutState | None:
        """The newest rollout, if any."""
        return self.rollouts[0] if self.rollouts else None


class GuardService:
    """The guarded rollouts of one flag, over a :class:`RolloutService`'s store and flag."""

    def __init__(self, rollout: Any) -> None:
        """Guarded rollouts over ``rollout``'s engine and flag.

        :param rollout: the page's :class:`~segue.airflow.plugin.rollout_service.RolloutService`.
        """
        self.rollout = rollout

    def status(self) -> GuardedStatus:
        """The stored plans, the latest rollouts and the newest one's measurements."""
        flag = self.rollout.flag()
        with Session(self.rollout.engine) as session:
            found = rollouts(session, flag.name, limit=10)
            return GuardedStatus(
                plans=tuple(latest_plans(session)),
                rollouts=tuple(found),
                evaluations=tuple(evaluations(session, found[0].id)) if found else (),
            )

    def start(
        self,
        actor: str,
        *,
        plan_name: str | None = None,
        plan: dict[str, Any] | None = None,
        plan_text: str | None = None,
    ) -> RolloutState:
        """Start a rollout of a stored plan (its newest version), a plan given as JSON, or
        YAML/JSON text.

        :param actor: who (the Airflow user).
        :param plan_name: a stored plan's name.
        :param plan: a plan's JSON form.
        :param plan_text: a plan's YAML or JSON text.
        """
        from segue.rollout.guard import start

        flag = self.rollout.flag()
        with Session(self.rollout.engine) as session:
            if plan_text is not None and plan_text.strip():
                chosen = parse_plan(plan_text, flag)
            elif plan is not None:
                chosen = check_plan(plan, flag)
            elif plan_name:
                stored = latest_plan(session, plan_name)
                if stored is None:
                    raise RolloutError("plan_name", f"no stored plan {plan_name!r}")
                chosen = stored.plan
            else:
                raise RolloutError("plan", "name a stored plan or give one")
            state = start(session, flag, chosen, actor, now=self.rollout.clock())
            session.commit()
        return state

    def abort(self, rollout_id: int, actor: str, reason: str) -> str:
        """Abort rollout ``rollout_id`` through the kill switch; returns what was done.

        :param rollout_id: the rollout.
        :param actor: who.
        :param reason: why (required).
        """
        from segue.rollout.guard import abort

        with Session(self.rollout.engine) as session:
            decision = abort(session, rollout_id, actor, reason, now=self.rollout.clock())
            session.commit()
        return decision.reason

    def resume(self, rollout_id: int, actor: str) -> str:
        """Resume held rollout ``rollout_id``; returns what was done.

        :param rollout_id: the rollout.
        :param actor: who.
        """
        from segue.rollout.guard import resume

        with Session(self.rollout.engine) as session:
            state = resume(session, rollout_id, actor, now=self.rollout.clock())
            session.commit()
        return state.reason
