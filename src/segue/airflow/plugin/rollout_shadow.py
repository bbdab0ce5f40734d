"""The Rollout page's shadow section: the shadow switch in force and the comparison.

Kept apart from the page's own view code (one call from ``rollout_views``): the setting is read
from ``segue.shadow``, the comparison built from the workflow's observations
(``SEGUE_SHADOW_PAIRS``). A failing provider shows its error in the section, not a broken page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from segue.airflow.plugin.rollout_service import RolloutService
from segue.migrations import migrated
from segue.rollout.shadow.compare import ShadowReport, build_report, load_pairs_provider
from segue.rollout.shadow.switch import ShadowSetting, shadow_history, shadow_in_force
from segue.rollout.shadow.tables import COMPONENT
from segue.settings import get_settings

log = logging.getLogger(__name__)
PAIRS_READ = 1000
"""The newest mirrored subjects the page compares."""
MISMATCHES_SHOWN = 100


@dataclass(frozen=True)
class ShadowView:
    """What the section shows.

    :param setting: the shadow setting in force.
    :param history: its versions, newest first.
    :param report: the comparison (None when not configured or failed).
    :param error: why the comparison failed, if it did.
    :param configured: False when ``SEGUE_SHADOW_PAIRS`` is unset.
    """

    setting: ShadowSetting
    history: list[ShadowSetting]
    report: ShadowReport | None
    error: str | None = None
    configured: bool = True
    shown: int = MISMATCHES_SHOWN


def shadow_view(service: RolloutService) -> ShadowView:
    """The shadow section of ``service``'s flag.

    :param service: the page's rollout service (its business store and flag).
    """
    flag_name = service.flag().name
    engine = migrated(service.engine, [COMPONENT])
    with Session(engine) as session:
        setting = shadow_in_force(session, flag_name)
        history = shadow_history(session, flag_name)
        try:
            provider = load_pairs_provider(get_settings().shadow_pairs)
            if provider is None:
                return ShadowView(setting, history, None, configured=False)
            report = build_report(setting, provider(session, PAIRS_READ))
        except Exception as problem:  # the page still shows the split
            log.exception("shadow comparison failed", extra={"correlation_id": flag_name})
            return ShadowView(setting, history, None, error=f"{type(problem).__name__}: {problem}")
    return ShadowView(setting, history, report)
