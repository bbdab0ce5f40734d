"""BatchReadyTrigger: schedules a batched DAG (``AssetWatcher``) when a durable queue holds a batch.

The queue is the workflow's (a table, say); the trigger only asks it, through ``probe``
(``module:attribute`` of a function taking ``probe_kwargs`` and returning ``(ready items,
seconds the oldest has waited)``), from a worker thread so the triggerer's loop never blocks.
It fires once ``max_items`` are ready or the oldest waited ``max_wait_seconds``. The DAG run
claims its batch from the queue itself, so an event is only a wake-up: a duplicate (two
triggerers, a restart) makes a run that finds less or nothing, and a lost one is made up for
at the next poll, because the items are still in the queue.

Each firing promises a run that claims up to ``max_items``. While the oldest ready item was
ready already at the last firing (its run has not claimed yet) the trigger fires again only
when more items are ready than the runs promised can take (a backlog gets one event per batch)
or once ``claim_timeout_seconds`` passed (the event was lost, or merged with another into one
run by the scheduler). Once the oldest ready item is younger than the firing, the runs claimed
and the usual rule holds again.
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
        claim_timeout_seconds: float = 20.0,
    ) -> None:
        """A watch of one queue.

        :param probe: ``module:attribute`` of ``f(**probe_kwargs) -> (ready, oldest_wait_s)``.
        :param probe_kwargs: JSON-safe keyword arguments of the probe (e.g. the DAG id).
        :param max_items: a batch this big is due at once (the batch size N).
        :param max_wait_seconds: a smaller batch is due once its oldest item waited this long.
        :param poll_seconds: how often the queue is asked.
        :param claim_timeout_seconds: how long announced items may wait for a run to claim
            them before the trigger fires for them again.
        """
        super().__init__()
        self.probe = probe
        self.probe_kwargs = dict(probe_kwargs or {})
        self.max_items = max_items
        self.max_wait_seconds = max_wait_seconds
        self.poll_seconds = poll_seconds
        self.claim_timeout_seconds = claim_timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "probe": self.probe,
                "probe_kwargs": dict(self.probe_kwargs),
                "max_items": self.max_items,
                "max_wait_seconds": self.max_wait_seconds,
                "poll_seconds": self.poll_seconds,
                "claim_timeout_seconds": self.claim_timeout_seconds,
            },
        )

    def due(self, ready: int, oldest_wait: float, promised: int, since_fire: float) -> bool:
        """Whether to fire now, given the queue and the last firing.

        :param ready: items ready now.
        :param oldest_wait: seconds the oldest of them has been ready.
        :param promised: items the runs of the firings since the oldest was ready will take
            (``max_items`` per firing; 0: none).
        :param since_fire: seconds since the first of those firings.
        """
        if ready <= 0:
            return False
        if promised and oldest_wait >= since_fire:  # the promised runs have not claimed yet
            return ready > promised or since_fire >= self.claim_timeout_seconds
        return ready >= self.max_items or oldest_wait >= self.max_wait_seconds

    async def run(self) -> AsyncIterator[TriggerEvent]:
        probe = load_object(self.probe)
        promised, fired_at = 0, 0.0
        while True:
            try:
                ready, oldest_wait = await asyncio.to_thread(probe, **self.probe_kwargs)
            except Exception:  # a database blip must not end the watch: ask again later
                self.log.exception("probe %s failed; polling on", self.probe)
                await asyncio.sleep(max(self.poll_seconds, 1.0))
                continue
            since_fire = time.monotonic() - fired_at
            if promised and oldest_wait < since_fire:  # the promised runs claimed
                promised = 0
            if self.due(ready, oldest_wait, promised, since_fire):
                if not promised or since_fire >= self.claim_timeout_seconds:
                    promised, fired_at = 0, time.monotonic()
                promised += self.max_items
                yield TriggerEvent({"ready": ready, "oldest_wait_seconds": round(oldest_wait, 3)})
            await asyncio.sleep(self.poll_seconds)
