"""The OpenFeature provider of Segue's flags: versions from the business database, evaluated in
process, seen by every process within a second of a change.

Each provider keeps the compiled version of each flag it evaluated and, at most every
``refresh_seconds`` (0.25 s) per flag, asks the database ``SELECT max(version)``; a new version
is loaded and compiled then. So there is no per-process state but this cache, a change (the kill
switch included) reaches every process within ``refresh_seconds`` plus one query, and an
evaluation between checks touches no database. LISTEN/NOTIFY would save the polling query
(about 4 cheap queries a second per process and flag) at the cost of a dedicated connection and
PostgreSQL-only code; polling works on SQLite as well.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import TargetingKeyMissingError, TypeMismatchError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from segue.rollout.definition import RolloutError, SplitDefinition
from segue.rollout.evaluate import CompiledFlag, Evaluation
from segue.rollout.layout import Layout
from segue.rollout.tables import FlagVersionRow

log = logging.getLogger(__name__)

DOMAIN_PREFIX = "segue.rollout"
REFRESH_SECONDS = 0.25

_REASONS = {"killed": Reason.DISABLED, "weight": Reason.SPLIT, "default": Reason.DEFAULT}


class _Cached:
    __slots__ = ("changed_at", "checked_at", "compiled")

    def __init__(
        self, compiled: CompiledFlag | None, checked_at: float, changed_at: datetime | None = None
    ) -> None:
        self.compiled = compiled
        self.checked_at = checked_at
        self.changed_at = changed_at  # of the stored version: with its number, which one it is


# The latest version's number and time of change. Both identify it: a number alone is not
# enough once the versions were reset (a restored or emptied table starts again at 1, and a
# provider would keep serving the old version 1 it had cached).
_LATEST = (
    select(FlagVersionRow.version, FlagVersionRow.changed_at)
    .where(FlagVersionRow.flag_name == bindparam("flag"))
    .order_by(FlagVersionRow.version.desc())
    .limit(1)
)


class SegueProvider(AbstractProvider):
    """Resolves string flags (the path) from ``flag_versions`` in ``engine``'s database.

    The value is the path; ``variant`` too; ``flag_metadata`` carries ``version``,
    ``segue_reason`` (``killed``, ``rule:...``, ``weight``, ``default``) and ``bucket``. With no
    version stored, the caller's default value is the baseline and gets everything.

    :param engine: the business store holding the ``segue.rollout`` tables.
    :param refresh_seconds: how stale a flag may get before the next version check.
    """

    def __init__(self, engine: Engine, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        super().__init__()
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, _Cached] = {}
        self._defaults: dict[tuple[str, str], CompiledFlag] = {}
        self._lock = threading.Lock()

    def get_metadata(self) -> Metadata:
        """The provider's name for OpenFeature."""
        return Metadata(name="segue-rollout")

    def evaluate(self, flag_key: str, baseline: str, context: Mapping[str, Any]) -> Evaluation:
        """Evaluate ``flag_key`` for ``context`` without the OpenFeature client around it.

        :param flag_key: the flag's name.
        :param baseline: the workflow's baseline, used while no version is stored.
        :param context: the subject's attributes.
        """
        return self.compiled(flag_key, baseline).evaluate(context)

    def compiled(self, flag_key: str, baseline: str) -> CompiledFlag:
        """The version of ``flag_key`` in force, refreshed when older than ``refresh_seconds``.

        :param flag_key: the flag's name.
        :param baseline: the workflow's baseline, used while no version is stored.
        """
        now = time.monotonic()
        cached = self._cache.get(flag_key)
        if cached is None or now - cached.checked_at >= self.refresh_seconds:
            cached = self._refresh(flag_key, cached, now)
        if cached.compiled is not None:
            return cached.compiled
        default = self._defaults.get((flag_key, baseline))
        if default is None:
            default = CompiledFlag(
                flag_key,
                0,
                SplitDefinition(weights={baseline: 100}, baseline=baseline),
                Layout.single(baseline),
            )
            self._defaults[(flag_key, baseline)] = default
        return default

    def _refresh(self, flag_key: str, cached: _Cached | None, now: float) -> _Cached:
        try:
            return self._load(flag_key, cached, now)
        except SQLAlchemyError as error:
            if cached is None:
                raise
            # Keep evaluating the version known (it was in force a moment ago) and check again
            # after refresh_seconds; a decision's own insert fails anyway while the store is down.
            log.warning(
                "flag %s: version check failed (%s); still on version %s",
                flag_key,
                type(error).__name__,
                cached.compiled.version if cached.compiled else 0,
                extra={"correlation_id": f"flag:{flag_key}", "flag": flag_key},
            )
            cached.checked_at = now
            return cached

    def _load(self, flag_key: str, cached: _Cached | None, now: float) -> _Cached:
        with self._lock, Session(self.engine) as session:
            latest = session.execute(_LATEST, {"flag": flag_key}).first()
            if latest is None:
                fresh = _Cached(None, now)
            elif (
                cached is not None
                and cached.compiled is not None
                and (cached.compiled.version, cached.changed_at) == tuple(latest)
            ):
                fresh = _Cached(cached.compiled, now, cached.changed_at)
            else:
                row = session.get(FlagVersionRow, (flag_key, latest.version))
                assert row is not None
                fresh = _Cached(
                    CompiledFlag(
                        flag_key,
                        row.version,
                        SplitDefinition.model_validate(row.definition),
                        Layout.model_validate(row.layout),
                    ),
                    now,
                    row.changed_at,
                )
            self._cache[flag_key] = fresh
            return fresh

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """The path for the subject in ``evaluation_context`` (OpenFeature's string flag).

        :param flag_key: the flag's name.
        :param default_value: the baseline (used while no version is stored).
        :param evaluation_context: the subject's attributes.
        """
        attributes = evaluation_context.attributes if evaluation_context else {}
        try:
            result = self.evaluate(flag_key, default_value, attributes)
        except RolloutError as error:
            raise TargetingKeyMissingError(f"{error.field}|{error.message}") from None
        metadata: dict[str, int | str] = {"version": result.version, "segue_reason": result.reason}
        if result.bucket is not None:
            metadata["bucket"] = result.bucket
        return FlagResolutionDetails(
            result.path,
            reason=_REASONS.get(result.reason, Reason.TARGETING_MATCH),
            variant=result.path,
            flag_metadata=metadata,
        )

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Segue's flags are string flags (paths): a boolean request is a type mismatch.

        :param flag_key: the flag's name.
        """
        raise TypeMismatchError(f"flag {flag_key!r} is a string flag (a path)")

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        """Segue's flags are string flags (paths): an integer request is a type mismatch.

        :param flag_key: the flag's name.
        """
        raise TypeMismatchError(f"flag {flag_key!r} is a string flag (a path)")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Segue's flags are string flags (paths): a float request is a type mismatch.

        :param flag_key: the flag's name.
        """
        raise TypeMismatchError(f"flag {flag_key!r} is a string flag (a path)")

    def resolve_object_details(  # type: ignore[override]
        self, flag_key: str, default_value: Any, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[Any]:
        """Segue's flags are string flags (paths): an object request is a type mismatch.

        :param flag_key: the flag's name.
        """
        raise TypeMismatchError(f"flag {flag_key!r} is a string flag (a path)")


_providers: weakref.WeakKeyDictionary[Engine, tuple[SegueProvider, str]] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()


def provider_for(engine: Engine) -> SegueProvider:
    """This process's provider for ``engine``, registered with OpenFeature on first use.

    :param engine: the business store.
    """
    return _registered(engine)[0]


def rollout_client(engine: Engine) -> OpenFeatureClient:
    """An OpenFeature client bound to the Segue provider of ``engine`` (its own domain).

    :param engine: the business store.
    """
    return api.get_client(domain=_registered(engine)[1])


def _registered(engine: Engine) -> tuple[SegueProvider, str]:
    with _registry_lock:
        found = _providers.get(engine)
        if found is None:
            provider = SegueProvider(engine)
            domain = f"{DOMAIN_PREFIX}:{id(engine)}"
            api.set_provider(provider, domain=domain)
            found = _providers[engine] = (provider, domain)
        return found
