"""Versioned, audited flag storage: every change is a new version, kept forever.

A change (:func:`set_split`, :func:`kill`) writes version N+1 in the caller's session, after
checking it against the workflow's :class:`~segue.rollout.definition.FlagSpec`; a refused change
raises :class:`~segue.rollout.definition.RolloutError` and writes nothing, so the version in force
stays. Two changes based on the same version cannot both land (the primary key is the
optimistic lock: the second gets :class:`~segue.rollout.definition.ConcurrentChange`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segue.rollout.definition import ConcurrentChange, FlagSpec, RolloutError, SplitDefinition
from segue.rollout.layout import Layout, rebalance
from segue.rollout.tables import FlagVersionRow

log = logging.getLogger(__name__)


class FlagVersion(BaseModel):
    """One version of a flag as stored (version 0: the default, nothing stored yet).

    :param flag: the flag's name.
    :param version: 1, 2, ... (0 for the default).
    :param definition: the split.
    :param layout: which buckets go to which path.
    :param changed_by: who made the change (``default`` for version 0).
    :param changed_at: when (None for version 0).
    :param reason: why.
    """

    model_config = ConfigDict(frozen=True)

    flag: str
    version: int
    definition: SplitDefinition
    layout: Layout
    changed_by: str
    changed_at: datetime | None
    reason: str


class Change(BaseModel):
    """One entry of a flag's history: who changed what, when and why.

    :param version: the version the change made.
    :param changed_by: who.
    :param changed_at: when.
    :param reason: why.
    :param old: the definition before (None for the first version).
    :param new: the definition after.
    :param changes: the differences, one line each (``weights.events: 10 -> 25``).
    """

    model_config = ConfigDict(frozen=True)

    version: int
    changed_by: str
    changed_at: datetime
    reason: str
    old: SplitDefinition | None
    new: SplitDefinition
    changes: tuple[str, ...]


def default_version(flag: FlagSpec) -> FlagVersion:
    """The version in force before any change: 100% to the workflow's baseline.

    :param flag: the workflow's declaration of the flag.
    """
    return FlagVersion(
        flag=flag.name,
        version=0,
        definition=flag.default_definition(),
        layout=Layout.single(flag.baseline),
        changed_by="default",
        changed_at=None,
        reason="no version stored: everything to the baseline",
    )


def latest_version(session: Session, name: str) -> int:
    """The newest version number of flag ``name`` (0 when none is stored).

    :param session: where to read.
    :param name: the flag's name.
    """
    query = select(func.max(FlagVersionRow.version)).where(FlagVersionRow.flag_name == name)
    return session.execute(query).scalar() or 0


def current(session: Session, flag: FlagSpec) -> FlagVersion:
    """The version of ``flag`` in force (the default when none is stored).

    :param session: where to read.
    :param flag: the workflow's declaration of the flag.
    """
    row = session.execute(
        select(FlagVersionRow)
        .where(FlagVersionRow.flag_name == flag.name)
        .order_by(FlagVersionRow.version.desc())
        .limit(1)
    ).scalar_one_or_none()
    return default_version(flag) if row is None else _version(row)


def set_split(
    session: Session,
    flag: FlagSpec,
    definition: SplitDefinition | dict[str, Any],
    actor: str,
    reason: str,
    *,
    expected_version: int | None = None,
) -> FlagVersion:
    """Write ``definition`` as the next version of ``flag``; the caller commits.

    Subjects already decided keep their path (their decisions are stored); for new ones, a path
    whose weight grew keeps all of its buckets (:func:`segue.rollout.layout.rebalance`).

    :param session: where the version is written.
    :param flag: the workflow's declaration (allowed paths, baseline).
    :param definition: the new split, or its JSON form; checked against ``flag``.
    :param actor: who makes the change (recorded).
    :param reason: why (recorded, required).
    :param expected_version: the version the change is based on; another one in force raises
        :class:`ConcurrentChange` (default: whatever is in force now).
    """
    checked = flag.check(definition)
    return _write(session, flag, checked, actor, reason, expected_version)


def kill(
    session: Session,
    flag: FlagSpec,
    actor: str,
    reason: str,
    *,
    expected_version: int | None = None,
) -> FlagVersion:
    """Turn the kill switch on: every new decision goes to the baseline; made ones stay.

    A later :func:`set_split` with ``killed`` false turns it off again; the layout is kept, so
    subjects bucket as they did before the kill.

    :param session: where the version is written.
    :param flag: the workflow's declaration.
    :param actor: who (recorded).
    :param reason: why (recorded, required).
    :param expected_version: as for :func:`set_split`.
    """
    in_force = current(session, flag).definition
    killed = in_force.model_copy(update={"killed": True})
    return _write(session, flag, flag.check(killed), actor, reason, expected_version)


def history(session: Session, flag: FlagSpec) -> list[Change]:
    """Every change of ``flag``, oldest first, with what each one changed.

    :param session: where to read.
    :param flag: the workflow's declaration.
    """
    rows = session.execute(
        select(FlagVersionRow)
        .where(FlagVersionRow.flag_name == flag.name)
        .order_by(FlagVersionRow.version)
    ).scalars()
    changes: list[Change] = []
    previous: SplitDefinition | None = None
    for row in rows:
        new = SplitDefinition.model_validate(row.definition)
        changes.append(
            Change(
                version=row.version,
                changed_by=row.changed_by,
                changed_at=row.changed_at,
                reason=row.reason,
                old=previous,
                new=new,
                changes=diff(previous or flag.default_definition(), new),
            )
        )
        previous = new
    return changes


def diff(old: SplitDefinition, new: SplitDefinition) -> tuple[str, ...]:
    """What changed from ``old`` to ``new``, one ``field: old -> new`` line each.

    :param old: the definition before.
    :param new: the definition after.
    """
    lines: list[str] = []
    for path in sorted(set(old.weights) | set(new.weights)):
        if old.share(path) != new.share(path):
            lines.append(f"weights.{path}: {old.share(path)} -> {new.share(path)}")
    for name in ("baseline", "sticky_key", "killed"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            lines.append(f"{name}: {before} -> {after}")
    if old.rules != new.rules:
        before = ", ".join(rule.describe() for rule in old.rules) or "none"
        after = ", ".join(rule.describe() for rule in new.rules) or "none"
        lines.append(f"rules: [{before}] -> [{after}]")
    return tuple(lines)


def _write(
    session: Session,
    flag: FlagSpec,
    definition: SplitDefinition,
    actor: str,
    reason: str,
    expected_version: int | None,
) -> FlagVersion:
    if not actor or not actor.strip():
        raise RolloutError("actor", "say who makes the change")
    if not reason or not reason.strip():
        raise RolloutError("reason", "say why the flag changes")
    in_force = current(session, flag)
    if expected_version is not None and expected_version != in_force.version:
        raise ConcurrentChange(
            "version",
            f"the change is based on version {expected_version} but {in_force.version} is in "
            "force; look at it and try again",
        )
    layout = rebalance(in_force.layout, definition.weights, flag.paths)
    row = FlagVersionRow(
        flag_name=flag.name,
        version=in_force.version + 1,
        definition=definition.model_dump(mode="json"),
        layout=layout.model_dump(mode="json"),
        changed_by=actor.strip()[:200],
        reason=reason.strip(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise ConcurrentChange(
            "version",
            f"version {row.version} of {flag.name!r} was written by someone else meanwhile; "
            "look at it and try again",
        ) from None
    written = _version(row)
    log.info(
        "flag %s version %s by %s: %s",
        flag.name,
        written.version,
        written.changed_by,
        "; ".join(diff(in_force.definition, definition)) or "no change",
        extra={"correlation_id": f"flag:{flag.name}:{written.version}", "flag": flag.name},
    )
    return written


def _version(row: FlagVersionRow) -> FlagVersion:
    return FlagVersion(
        flag=row.flag_name,
        version=row.version,
        definition=SplitDefinition.model_validate(row.definition),
        layout=Layout.model_validate(row.layout),
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        reason=row.reason,
    )
