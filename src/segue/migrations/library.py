"""The library's own components: what a workflow built on all of Segue migrates."""

from __future__ import annotations

from segue.migrations.component import Component


def library_components() -> tuple[Component, ...]:
    """``segue.bus``, ``segue.dead_letters``, ``segue.statemachine``, ``segue.eventlog`` and
    ``segue.rollout`` and ``segue.shadow`` (the shadow switch)."""
    from segue.bus.tables import COMPONENT as BUS
    from segue.eventlog.store import COMPONENT as EVENTLOG
    from segue.rollout.shadow.tables import COMPONENT as SHADOW
    from segue.rollout.tables import COMPONENT as ROLLOUT
    from segue.statemachine.records import COMPONENT as STATEMACHINE
    from segue.store.dead_letters import COMPONENT as DEAD_LETTERS

    return (BUS, DEAD_LETTERS, STATEMACHINE, EVENTLOG, ROLLOUT, SHADOW)
