"""The shadow switch: which candidate path a share of a flag's subjects is mirrored to.

Versioned and audited like the split (every change a new row: who, when, why, old -> new), and
sticky by the split's own bucket (``segue.rollout.layout.bucket_of``): a subject in bucket ``b``
is mirrored when ``b < percent * 100``, so a given order is mirrored or not deterministically,
and raising the percent only adds subjects. Subjects the split already sends to the candidate
are not mirrored (the caller checks). Bad input raises RolloutError naming the field.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segue.rollout.definition import ConcurrentChange, FlagSpec, RolloutError
from segue.rollout.layout import PER_PERCENT
from segue.rollout.shadow.tables import ShadowSettingRow
from segue.store.engine import session_scope


class ShadowSetting(BaseModel):
    """One version of a flag's shadow setting (version 0: never set, off).

    :param flag_name: the flag whose subjects are mirrored.
    :param version: 1, 2, ... (0 when never set).
    :param path: the candidate path, or None when off.
    :param percent: the share of buckets mirrored, 0..100.
    :param changed_by: who set it.
    :param changed_at: when (None when never set).
    :param reason: why.
    """

    model_config = ConfigDict(frozen=True)

    flag_name: str
    version: int = 0
    path: str | None = None
    percent: int = 0
    changed_by: str = ""
    changed_at: datetime | None = None
    reason: str = ""

    @property
    def on(self) -> bool:
        """True when some subjects are mirrored."""
        return self.path is not None and self.percent > 0

    def mirrors(self, bucket: int | None) -> bool:
        """True when a subject in ``bucket`` is mirrored (never without a bucket).

        :param bucket: the subject's bucket from its route decision, 0..9,999.
        """
        return self.on and bucket is not None and bucket < self.percent * PER_PERCENT

    def describe(self) -> str:
        """``events at 10%`` or ``off``, for a reader."""
        return f"{self.path} at {self.percent}%" if self.on else "off"


def _setting(row: ShadowSettingRow) -> ShadowSetting:
    return ShadowSetting(
        flag_name=row.flag_name,
        version=row.version,
        path=row.path,
        percent=row.percent,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        reason=row.reason,
    )


def shadow_in_force(session: Session, flag_name: str) -> ShadowSetting:
    """The latest version of ``flag_name``'s shadow setting (version 0, off, if never set).

    :param session: an open session on the store holding ``shadow_settings``.
    :param flag_name: the flag.
    """
    row = session.scalars(
        select(ShadowSettingRow)
        .where(ShadowSettingRow.flag_name == flag_name)
        .order_by(ShadowSettingRow.version.desc())
        .limit(1)
    ).first()
    return ShadowSetting(flag_name=flag_name) if row is None else _setting(row)


def shadow_history(session: Session, flag_name: str) -> list[ShadowSetting]:
    """Every version of ``flag_name``'s shadow setting, newest first.

    :param session: an open session.
    :param flag_name: the flag.
    """
    rows = session.scalars(
        select(ShadowSettingRow)
        .where(ShadowSettingRow.flag_name == flag_name)
        .order_by(ShadowSettingRow.version.desc())
    )
    return [_setting(row) for row in rows]


def set_shadow(
    session: Session,
    flag: FlagSpec,
    *,
    path: str | None,
    percent: int,
    actor: str,
    reason: str,
    expected_version: int | None = None,
) -> ShadowSetting:
    """Write a new version of the shadow setting (``path=None`` or ``percent=0``: off).

    :param session: the caller's transaction (the version commits with it).
    :param flag: the flag, whose paths the candidate must be one of (not its baseline).
    :param path: the candidate path, or None to switch shadow mode off.
    :param percent: the share of buckets to mirror, a whole number 0..100.
    :param actor: who changes it (recorded).
    :param reason: why (recorded, required).
    :param expected_version: refuse (ConcurrentChange) unless this version is in force.
    :raises RolloutError: bad input, naming the field; nothing is written.
    """
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise RolloutError("percent", f"must be a whole number from 0 to 100, got {percent!r}")
    if path is not None and path not in flag.paths:
        raise RolloutError("path", f"{path!r} is not one of {', '.join(flag.paths)}")
    if path is not None and path == flag.baseline:
        raise RolloutError("path", f"the baseline {path!r} cannot be the shadow candidate")
    if not reason or not reason.strip():
        raise RolloutError("reason", "say why (it is recorded)")
    if not actor or not actor.strip():
        raise RolloutError("actor", "say who")
    if path is None or percent == 0:
        path, percent = None, 0
    in_force = shadow_in_force(session, flag.name)
    if expected_version is not None and expected_version != in_force.version:
        raise ConcurrentChange(
            "expected_version",
            f"version {in_force.version} is in force, not {expected_version}; nothing changed",
        )
    row = ShadowSettingRow(
        flag_name=flag.name,
        version=in_force.version + 1,
        path=path,
        percent=percent,
        changed_by=actor.strip()[:200],
        reason=reason.strip(),
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise ConcurrentChange(
            "expected_version", f"another change wrote version {row.version} first"
        ) from None
    return _setting(row)


class ShadowSwitch:
    """The setting in force, read at most every ``ttl_seconds`` (the front door's hot path).

    :param engine: the store holding ``shadow_settings``.
    :param flag_name: the flag.
    :param ttl_seconds: how stale a read may be; a change reaches every reader within it.
    """

    def __init__(self, engine: Engine, flag_name: str, *, ttl_seconds: float = 0.25) -> None:
        self._engine, self._flag, self._ttl = engine, flag_name, ttl_seconds
        self._lock = threading.Lock()
        self._setting = ShadowSetting(flag_name=flag_name)
        self._read_at = float("-inf")

    def current(self) -> ShadowSetting:
        """The setting in force, at most ``ttl_seconds`` old."""
        with self._lock:
            if time.monotonic() - self._read_at >= self._ttl:
                with session_scope(self._engine) as session:
                    self._setting = shadow_in_force(session, self._flag)
                self._read_at = time.monotonic()
            return self._setting
