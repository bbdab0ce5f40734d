"""SagaProgressTrigger: serializes to kwargs that rebuild it, and fires on a timer or on a move."""

from __future__ import annotations

import asyncio
import importlib
from datetime import timedelta

import pytest

from segue.airflow.triggers.saga import SagaProgressTrigger
from segue.statemachine.store import Instance, Move, SagaStore
from segue.store.engine import utcnow


def test_serialized_kwargs_rebuild_the_trigger():
    trigger = SagaProgressTrigger("ord-1", 7, "2026-01-01T00:00:00+00:00", poll_seconds=0.5)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "instance_id": "ord-1",
        "seen_version": 7,
        "wake_at": "2026-01-01T00:00:00+00:00",
        "poll_seconds": 0.5,
    }


@pytest.fixture
def waiting_instance(clean_db, monkeypatch, pg_url):
    monkeypatch.setenv("SEGUE_DATABASE_URL", pg_url)
    from segue.settings import get_settings

    get_settings.cache_clear()
    store = SagaStore(clean_db)
    instance = Instance("saga-1", "m", 1, "A", "waiting", {}, {}, 1)
    store.create(instance, "test")
    yield store, store.load("saga-1")
    get_settings.cache_clear()


async def first_event(trigger, timeout=10):
    return await asyncio.wait_for(anext(trigger.run()), timeout)


def test_fires_when_the_timer_is_due(waiting_instance):
    _, instance = waiting_instance
    wake = (utcnow() + timedelta(seconds=0.3)).isoformat()
    event = asyncio.run(first_event(SagaProgressTrigger("saga-1", instance.version, wake, 5)))
    assert event.payload == {"instance_id": "saga-1", "reason": "timer"}


def test_fires_when_someone_else_moved_the_instance(waiting_instance):
    store, instance = waiting_instance

    async def scenario():
        trigger = SagaProgressTrigger("saga-1", instance.version, None, poll_seconds=0.1)
        task = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(0.3)
        assert not task.done()  # nothing happened yet: still waiting
        move = Move("B", "running", "approved", 1, {}, {})
        await asyncio.to_thread(store.apply, instance, move, "ops")
        return await task

    assert asyncio.run(scenario()).payload["reason"] == "moved"
