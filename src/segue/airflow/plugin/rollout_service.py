"""What the Rollout page and its API do: read the split, its history and the figures; change it.

Every change goes through :func:`segue.rollout.set_split` / :func:`segue.rollout.kill` in a
transaction of its own, committed only when the change was accepted; a refused one raises
:class:`~segue.rollout.RolloutError` (or :class:`~segue.rollout.ConcurrentChange`) and writes
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.airflow.plugin.rollout_guard_service import GuardService
from segue.rollout.definition import FlagSpec, RolloutError, SplitDefinition
from segue.rollout.figures import FiguresProvider, PathFigures, window_of
from segue.rollout.store import Change, FlagVersion, current, history, kill, set_split
from segue.store.engine import utcnow

log = logging.getLogger(__name__)


class RolloutStatus(BaseModel):
    """The split in force and, when a provider is configured, the figures of one window.

    :param flag: the workflow's flag (name, paths, baseline).
    :param version: the version in force.
    :param window: the window's name (``15m``, ``1h``, ``24h``).
    :param since: the window's start.
    :param until: the window's end (now).
    :param figures: per path, in the flag's path order (None: no provider configured).
    :param figures_error: why the figures could not be computed, if they could not.
    """

    model_config = ConfigDict(frozen=True)

    flag: FlagSpec
    version: FlagVersion
    window: str
    since: datetime
    until: datetime
    figures: tuple[PathFigures, ...] | None
    figures_error: str | None = None


class RolloutService:
    """The rollout of one flag on one business store, as the plugin serves it."""

    def __init__(
        self,
        engine: Engine,
        flag: Callable[[], FlagSpec],
        figures: FiguresProvider | None,
        *,
        stuck_after: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """A service over ``engine`` for the flag ``flag()`` returns.

        :param engine: the business store (flag versions, route decisions, the workflow's
            tables the figures provider reads).
        :param flag: returns the workflow's flag; may raise RolloutError (misconfigured).
        :param figures: the workflow's figures provider, or None (not configured).
        :param stuck_after: a subject not terminal this long after acceptance is stuck.
        :param clock: now (tests fix it).
        """
        self.engine = engine
        self._flag = flag
        self.figures = figures
        self.stuck_after = stuck_after
        self.clock = clock

    def guard(self) -> GuardService:
        """The guarded rollouts of this flag on this store."""
        return GuardService(self)

    def flag(self) -> FlagSpec:
        """The workflow's flag (RolloutError naming the setting when misconfigured)."""
        return self._flag()

    def status(self, window: str) -> RolloutStatus:
        """The version in force and the figures of the last ``window``.

        :param window: ``15m``, ``1h`` or ``24h`` (RolloutError naming ``window`` otherwise).
        """
        length = window_of(window)
        flag = self.flag()
        until = self.clock()
        since = until - length
        figures: tuple[PathFigures, ...] | None = None
        error: str | None = None
        with Session(self.engine) as session:
            version = current(session, flag)
            if self.figures is not None:
                try:
                    found = self.figures(
                        session, since=since, until=until, stuck_after=self.stuck_after
                    )
                    figures = _in_path_order(flag, found, since)
                except Exception as problem:  # the page still shows the split
                    log.exception("rollout figures failed", extra={"correlation_id": flag.name})
                    error = f"{type(problem).__name__}: {problem}"
        return RolloutStatus(
            flag=flag,
            version=version,
            window=window,
            since=since,
            until=until,
            figures=figures,
            figures_error=error,
        )

    def history(self) -> list[Change]:
        """Every change of the flag, newest first."""
        flag = self.flag()
        with Session(self.engine) as session:
            return list(reversed(history(session, flag)))

    def set_split(
        self,
        changes: Mapping[str, Any],
        actor: str,
        reason: str,
        *,
        expected_version: int | None = None,
    ) -> FlagVersion:
        """A new version: ``changes`` over the definition in force; turns the kill switch off.

        :param changes: any of ``weights`` (required), ``baseline``, ``sticky_key``, ``rules``;
            fields left out keep their value in force.
        :param actor: who (the Airflow user).
        :param reason: why (required).
        :param expected_version: refuse with ConcurrentChange unless this version is in force.
        """
        if "weights" not in changes:
            raise RolloutError("weights", "give the percent of every path that gets traffic")
        flag = self.flag()
        with Session(self.engine) as session:
            in_force = current(session, flag).definition
            data = _merged(in_force, changes)
            version = set_split(
                session, flag, data, actor, reason, expected_version=expected_version
            )
            session.commit()
        return version

    def kill(self, actor: str, reason: str, *, expected_version: int | None = None) -> FlagVersion:
        """The kill switch: every new decision to the baseline.

        :param actor: who (the Airflow user).
        :param reason: why (required).
        :param expected_version: refuse with ConcurrentChange unless this version is in force.
        """
        flag = self.flag()
        with Session(self.engine) as session:
            version = kill(session, flag, actor, reason, expected_version=expected_version)
            session.commit()
        return version


def _merged(in_force: SplitDefinition, changes: Mapping[str, Any]) -> dict[str, Any]:
    data = in_force.model_dump(mode="json")
    for name in ("weights", "baseline", "sticky_key", "rules"):
        if changes.get(name) is not None:
            data[name] = changes[name]
    data["killed"] = False
    return data


def _in_path_order(
    flag: FlagSpec, found: Mapping[str, PathFigures], since: datetime
) -> tuple[PathFigures, ...]:
    """Every declared path (zeros when the provider had nothing), then any others it gave."""
    ordered = [found.get(path) or _nothing(path, since) for path in flag.paths]
    ordered += [figures for path, figures in found.items() if path not in flag.paths]
    return tuple(ordered)


def _nothing(path: str, since: datetime) -> PathFigures:
    return PathFigures(
        path=path,
        accepted=0,
        completed=0,
        failed_business=0,
        failed_technical=0,
        in_flight=0,
        measured=f"no subject routed to {path} since {since:%Y-%m-%d %H:%M:%S} UTC",
    )
