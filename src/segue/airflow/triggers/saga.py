"""Trigger that wakes a deferred saga task when its instance can move again.

Fires when the instance's version changes (someone sent it an event, or an operator in the UI
retried or compensated it) or when its timer/backoff moment arrives. Polls the saga store from a
worker thread so the triggerer's event loop never blocks.
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


class SagaProgressTrigger(BaseTrigger):
    """Fires when a saga instance has moved past a version or its timer is due."""

    def __init__(
        self, instance_id: str, seen_version: int, wake_at: str | None, poll_seconds: float = 2.0
    ) -> None:
        """A watch of one saga instance.

        :param instance_id: the saga instance.
        :param seen_version: the version the task last saw.
        :param wake_at: ISO time the instance's timer or backoff expires, if any.
        :param poll_seconds: how often the store is read.
        """
        super().__init__()
        self.instance_id = instance_id
        self.seen_version = seen_version
        self.wake_at = wake_at
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "instance_id": self.instance_id,
                "seen_version": self.seen_version,
                "wake_at": self.wake_at,
                "poll_seconds": self.poll_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        wake_at = datetime.fromisoformat(self.wake_at) if self.wake_at else None
        store = SagaStore(shared_engine(get_settings().database_url))
        while True:
            if wake_at is not None and utcnow() >= wake_at:
                yield TriggerEvent({"instance_id": self.instance_id, "reason": "timer"})
                return
            instance = await asyncio.to_thread(store.load, self.instance_id)
            if instance.version != self.seen_version:
                yield TriggerEvent({"instance_id": self.instance_id, "reason": "moved"})
                return
            delay = self.poll_seconds
            if wake_at is not None:
                delay = min(delay, max((wake_at - utcnow()).total_seconds(), 0.05))
            await asyncio.sleep(delay)
