"""BatchReadyTrigger: schedules a batched DAG (``AssetWatcher``) when a durable queue holds a batch.

The queue is the workflow's (a table, say); the trigger only asks it, through ``probe``
(``module:attribute`` of a function taking ``probe_kwargs`` and returning ``(ready items,
seconds the oldest has waited)``), from a worker thread so the triggerer's loop never blocks.
It fires once ``max_items`` are ready or the oldest waited ``max_wait_seconds``. The DAG run
claims its batch from the queue itself, so an event is only a wake-up: a duplicate (two
triggerers, a restart) makes a run that finds less or nothing, and a lost one is made up for
at the next poll, because the items are still in the queue. After firing it waits
``cooldown_seconds`` for the run to claim, unless another full batch arrives meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from segue.imports import load_object


class BatchReadyTrigger(BaseEventTrigger):
    """Fire a TriggerEvent (``ready``, ``oldest_wait_seconds``) whenever a batch is due."""

    def __init__(
        self,
        *,
        probe: str,
        probe_kwargs: dict[str, Any] | None = None,
        max_items: int = 200,
        max_wait_seconds: float = 2.0,
        poll_seconds: float = 0.5,
        cooldown_seconds: float = 4.0,
    ) -> None:
        """A watch of one queue.

        :param probe: ``module:attribute`` of ``f(**probe_kwargs) -> (ready, oldest_wait_s)``.
        :param probe_kwargs: JSON-safe keyword arguments of the probe (e.g. the DAG id).
        :param max_items: a batch this big is due at once (the batch size N).
        :param max_wait_seconds: a smaller batch is due once its oldest item waited this long.
        :param poll_seconds: how often the queue is asked.
        :param cooldown_seconds: after firing, how long to leave the run to claim its batch
            before firing again for items still waiting (sooner for a further full batch).
        """
        super().__init__()
        self.probe = probe
        self.probe_kwargs = dict(probe_kwargs or {})
        self.max_items = max_items
        self.max_wait_seconds = max_wait_seconds
        self.poll_seconds = poll_seconds
        self.cooldown_seconds = cooldown_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "probe": self.probe,
                "probe_kwargs": dict(self.probe_kwargs),
                "max_items": self.max_items,
                "max_wait_seconds": self.max_wait_seconds,
                "poll_seconds": self.poll_seconds,
                "cooldown_seconds": self.cooldown_seconds,
            },
        )

    def due(self, ready: int, oldest_wait: float, announced: int, since_fire: float) -> bool:
        """Whether to fire now, given the queue and the last firing.

        :param ready: items ready now.
        :param oldest_wait: seconds the oldest of them has waited.
        :param announced: items ready at the last firing within the cooldown (0: none).
        :param since_fire: seconds since that firing.
        """
        if ready <= 0 or (ready < self.max_items and oldest_wait < self.max_wait_seconds):
            return False
        if announced == 0 or since_fire >= self.cooldown_seconds:
            return True
        return ready >= announced + self.max_items  # a further full batch came meanwhile

    async def run(self) -> AsyncIterator[TriggerEvent]:
        probe = load_object(self.probe)
        announced, fired_at = 0, 0.0
        while True:
            ready, oldest_wait = await asyncio.to_thread(probe, **self.probe_kwargs)
            since_fire = time.monotonic() - fired_at
            if announced and since_fire >= self.cooldown_seconds:
                announced = 0
            if self.due(ready, oldest_wait, announced, since_fire):
                announced, fired_at = ready, time.monotonic()
                yield TriggerEvent({"ready": ready, "oldest_wait_seconds": round(oldest_wait, 3)})
            await asyncio.sleep(self.poll_seconds)
