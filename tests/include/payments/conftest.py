"""Fixtures for the payment saga: the machine bound to the test store and gateway."""

from __future__ import annotations

import pytest

from include.payments.saga import payment_machine
from segue.statemachine.machine import Machine
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore


@pytest.fixture
def saga_store(clean_db) -> SagaStore:
    return SagaStore(clean_db)


@pytest.fixture
def saga(deps, saga_store):
    """A factory of engines over the payment machine; ``failing`` replaces actions by name."""

    def make(actor: str = "test", **failing) -> SagaRunner:
        machine = payment_machine(deps)
        if failing:
            machine = Machine(machine.definition, {**machine.actions, **failing})
        return SagaRunner(machine, saga_store, actor=actor)

    return make
