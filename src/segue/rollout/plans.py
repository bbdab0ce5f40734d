"""Stored rollout plans: every saved plan is a new version, kept forever, with who and why.

Saving a plan identical to its latest version writes nothing and returns that version, so
``make run`` can install the example plan on every start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segue.rollout.definition import ConcurrentChange, FlagSpec, RolloutError
from segue.rollout.plan import RolloutPlan, check_plan
from segue.rollout.tables import RolloutPlanRow


class StoredPlan(BaseModel):
    """One version of a plan as stored.

    :param name: the plan's name.
    :param version: 1, 2, ...
    :param plan: the plan.
    :param saved_by: who saved it.
    :param saved_at: when.
    :param reason: why.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    plan: RolloutPlan
    saved_by: str
    saved_at: datetime
    reason: str


def save_plan(
    session: Session,
    plan: RolloutPlan | dict[str, Any],
    actor: str,
    reason: str,
    flag: FlagSpec | None = None,
) -> StoredPlan:
    """Store ``plan`` as the next version of its name (no new version when unchanged).

    :param session: where to write; the caller commits.
    :param plan: the plan or its JSON form (checked; RolloutError naming the field).
    :param actor: who saves it.
    :param reason: why.
    :param flag: the workflow's flag, to check the plan against.
    """
    checked = check_plan(plan, flag)
    if not actor.strip():
        raise RolloutError("actor", "say who saves the plan")
    if not reason.strip():
        raise RolloutError("reason", "say why the plan is saved")
    latest = latest_plan(session, checked.name)
    if latest is not None and latest.plan == checked:
        return latest
    row = RolloutPlanRow(
        name=checked.name,
        version=(latest.version if latest else 0) + 1,
        plan=checked.model_dump(mode="json"),
        saved_by=actor.strip()[:200],
        reason=reason.strip(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise ConcurrentChange(
            "version", f"plan {checked.name!r} version {row.version} was saved meanwhile"
        ) from None
    return _stored(row)


def latest_plan(session: Session, name: str) -> StoredPlan | None:
    """The newest version of plan ``name`` (None when never saved).

    :param session: where to read.
    :param name: the plan's name.
    """
    row = session.scalars(
        select(RolloutPlanRow)
        .where(RolloutPlanRow.name == name)
        .order_by(RolloutPlanRow.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _stored(row)


def plan_version(session: Session, name: str, version: int) -> StoredPlan:
    """Version ``version`` of plan ``name``; RolloutError naming ``plan`` when there is none.

    :param session: where to read.
    :param name: the plan's name.
    :param version: its version.
    """
    row = session.get(RolloutPlanRow, (name, version))
    if row is None:
        raise RolloutError("plan", f"no version {version} of plan {name!r}")
    return _stored(row)


def latest_plans(session: Session) -> list[StoredPlan]:
    """The newest version of every stored plan, by name.

    :param session: where to read.
    """
    newest = (
        select(RolloutPlanRow.name, func.max(RolloutPlanRow.version).label("version"))
        .group_by(RolloutPlanRow.name)
        .subquery()
    )
    rows = session.scalars(
        select(RolloutPlanRow)
        .join(
            newest,
            (RolloutPlanRow.name == newest.c.name) & (RolloutPlanRow.version == newest.c.version),
        )
        .order_by(RolloutPlanRow.name)
    )
    return [_stored(row) for row in rows]


def _stored(row: RolloutPlanRow) -> StoredPlan:
    return StoredPlan(
        name=row.name,
        version=row.version,
        plan=RolloutPlan.model_validate(row.plan),
        saved_by=row.saved_by,
        saved_at=row.saved_at,
        reason=row.reason,
    )
