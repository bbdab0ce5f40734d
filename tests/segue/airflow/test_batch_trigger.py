"""BatchReadyTrigger: serializes to kwargs that rebuild it; fires for a full batch or a batch
whose oldest item waited; leaves ready items to the runs promised until they claim, but fires
once per batch of a backlog and again when a claim never came."""

from __future__ import annotations

import asyncio
import importlib

import pytest

from segue.airflow.triggers.batch import BatchReadyTrigger

QUEUE: list[tuple[int, float]] = []


def probe(name: str) -> tuple[int, float]:
    """The test queue: the next (ready, oldest wait) it was given."""
    assert name == "q"
    return QUEUE.pop(0) if len(QUEUE) > 1 else QUEUE[0]


def trigger(**options: float) -> BatchReadyTrigger:
    return BatchReadyTrigger(
        probe=f"{__name__}:probe",
        probe_kwargs={"name": "q"},
        max_items=10,
        max_wait_seconds=2.0,
        **options,
    )


def test_serialized_kwargs_rebuild_the_trigger():
    classpath, kwargs = trigger(poll_seconds=0.1).serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["probe_kwargs"] == {"name": "q"} and kwargs["max_items"] == 10


@pytest.mark.parametrize(
    ("ready", "oldest", "promised", "since", "due"),
    [
        (0, 0.0, 0, 99.0, False),  # nothing to do
        (3, 1.0, 0, 99.0, False),  # a small batch, young: wait for more
        (3, 2.5, 0, 99.0, True),  # ... until its oldest waited max_wait
        (10, 0.1, 0, 99.0, True),  # a full batch: at once
        (3, 5.0, 10, 4.0, False),  # a run was promised 4 s ago and has not claimed yet
        (10, 5.0, 10, 4.0, False),  # more arrived: that run takes them too
        (12, 5.0, 10, 4.0, True),  # more than it can take: one more wake-up per batch
        (25, 5.0, 30, 4.0, False),  # a backlog of 25: three runs promised
        (3, 25.0, 10, 21.0, True),  # never claimed in claim_timeout: again
        (3, 2.5, 10, 4.0, True),  # the oldest arrived after the firing: the usual rule
    ],
)
def test_when_a_batch_is_due(ready, oldest, promised, since, due):
    assert trigger().due(ready, oldest, promised, since) is due


def test_run_fires_once_per_batch_of_a_backlog_then_waits_for_claims():
    QUEUE[:] = [(25, 3.0)] * 6 + [(0, 0.0)]
    events = []

    async def collect() -> None:
        async for event in trigger(poll_seconds=0.01).run():
            events.append(event.payload)
            if len(events) == 3:
                return

    asyncio.run(asyncio.wait_for(collect(), timeout=5))
    assert [e["ready"] for e in events] == [25, 25, 25]  # three runs of 10 promised for 25
    assert len(QUEUE) == 4  # after the third firing no poll fired again right away
