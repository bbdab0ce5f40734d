"""How the plugin finds the rollout: built lazily from the settings, overridable in tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from segue.airflow.plugin.rollout_service import RolloutService


def default_rollout() -> RolloutService:
    """The flag of ``SEGUE_ROLLOUT_*`` on ``SEGUE_DATABASE_URL``, with the figures provider
    ``SEGUE_ROLLOUT_FIGURES`` names (none when unset); the rollout's tables upgraded to head."""
    from segue.migrations import migrated
    from segue.rollout.definition import flag_from_settings
    from segue.rollout.figures import load_figures_provider
    from segue.rollout.tables import COMPONENT
    from segue.settings import get_settings
    from segue.store.engine import shared_engine

    settings = get_settings()
    engine = migrated(shared_engine(settings.database_url), [COMPONENT])
    return RolloutService(
        engine,
        flag_from_settings,
        load_figures_provider(settings.rollout_figures),
        stuck_after=timedelta(seconds=settings.rollout_stuck_after_seconds),
    )


def rollout_service(request: Request) -> RolloutService:
    """The app's rollout service (built on first use; see ``create_app``).

    :param request: the current request.
    """
    return request.app.state.segue_rollout()


RolloutDep = Annotated[RolloutService, Depends(rollout_service)]


class LazyRollout:
    """Builds the rollout service once, on first use, from any thread of the server's pool."""

    def __init__(self, factory: Callable[[], RolloutService]) -> None:
        """A service built on its first call, once, however many requests race for it.

        :param factory: builds the service (opens the business store).
        """
        self._factory = factory
        self._service: RolloutService | None = None
        self._lock = threading.Lock()

    def __call__(self) -> RolloutService:
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = self._factory()
        return self._service
