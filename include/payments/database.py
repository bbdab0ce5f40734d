"""The payment workflow's business store: its migration components, and one engine per URL
migrated to head on first use in a process."""

from __future__ import annotations

from sqlalchemy import Engine

from include.payments import followups, reconciliation_tables, routing, shadow, tables
from segue.bus.tables import COMPONENT as BUS
from segue.eventlog.store import COMPONENT as EVENTLOG
from segue.migrations import Component, migrated
from segue.rollout.shadow.tables import COMPONENT as SHADOW_SWITCH
from segue.rollout.tables import COMPONENT as ROLLOUT
from segue.statemachine.records import COMPONENT as STATEMACHINE
from segue.store.dead_letters import COMPONENT as DEAD_LETTERS
from segue.store.engine import shared_engine

# Every table the payment workflow uses, in upgrade order: the library's parts it runs on (the
# bus for the services, dead letters for the DAG path, the saga store, the event log, the
# rollout's flag versions and route decisions), then its own. `segue db ...` (tools.cli) and
# every runtime path use this one list.
COMPONENTS: tuple[Component, ...] = (
    BUS,
    DEAD_LETTERS,
    STATEMACHINE,
    EVENTLOG,
    ROLLOUT,
    SHADOW_SWITCH,
    tables.COMPONENT,
    followups.COMPONENT,
    routing.COMPONENT,
    reconciliation_tables.COMPONENT,
    shadow.COMPONENT,
)


def payments_engine(url: str) -> Engine:
    """The shared engine of ``url`` in this process, every component upgraded to head."""
    return migrated(shared_engine(url), COMPONENTS)
