"""Trigger that wakes a deferred batch of saga instances when any of them can move again.

Fires when one watched instance's version changes (an event arrived, someone retried or
compensated it in the UI) or when the earliest timer/backoff of the batch is due. One query per
poll for the whole batch, from a worker thread so the triggerer's event loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from segue.settings import get_settings
from segue.statemachine.store import SagaStore
from segue.store.engine import shared_engine, utcnow


class SagaBatchProgressTrigger(BaseTrigger):
    """Fires when any of a batch of waiting saga instances moved or the earliest wake is due."""

    def __init__(
        self, seen_versions: dict[str, int], wake_at: str | None, poll_seconds: float = 2.0
    ) -> None:
        """A watch of several saga instances.

        :param seen_versions: instance id → the version the task last saw.
        :param wake_at: ISO time of the earliest timer or backoff among them, if any.
        :param poll_seconds: how often the store is read.
        """
        super().__init__()
        self.seen_versions = dict(seen_versions)
        self.wake_at = wake_at
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "seen_versions": dict(self.seen_versions),
                "wake_at": self.wake_at,
                "poll_seconds": self.poll_seconds,
            },
        )

    def moved(self, versions: dict[str, int]) -> list[str]:
        """The watched instances whose stored version differs from the one seen.

        :param versions: instance id → version now.
        """
        return [i for i, seen in self.seen_versions.items() if versions.get(i, seen) != seen]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        wake_at = datetime.fromisoformat(self.wake_at) if self.wake_at else None
        store = SagaStore(shared_engine(get_settings().database_url))
        while True:
            if wake_at is not None and utcnow() >= wake_at:
                yield TriggerEvent({"reason": "timer", "moved": []})
                return
            loaded = await asyncio.to_thread(store.load_many, list(self.seen_versions))
            moved = self.moved({i: instance.version for i, instance in loaded.items()})
            if moved:
                yield TriggerEvent({"reason": "moved", "moved": moved})
                return
            delay = self.poll_seconds
            if wake_at is not None:
                delay = min(delay, max((wake_at - utcnow()).total_seconds(), 0.05))
            await asyncio.sleep(delay)
