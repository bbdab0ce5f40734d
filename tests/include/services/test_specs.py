"""The service specs: names, subscriptions, and one runnable module per consuming service."""

from __future__ import annotations

import importlib

import pytest

from include.payments.events import PAYMENT_EVENTS, PREFIX
from include.services import SERVICE_MODULES, payment_services

SUBSCRIPTIONS = {
    "validation": ["OrderPlaced"],
    "inventory": ["ChargeCompleted", "ChargeFailed", "OrderValidated"],
    "charge": ["ChargeRequested", "InventoryReservationFailed", "OrderValidated"],
    "receipt": ["InventoryUpdated"],
    "shipping": ["InventoryUpdated"],
}


def test_every_service_consumes_what_the_flow_says(gateway):
    specs = {spec.name: spec for spec in payment_services(gateway)}
    assert set(specs) == set(SERVICE_MODULES) == set(SUBSCRIPTIONS)
    for name, spec in specs.items():
        assert spec.routing_keys == [PREFIX + short for short in SUBSCRIPTIONS[name]]
        assert spec.registry is PAYMENT_EVENTS
        assert all(key in PAYMENT_EVENTS for key in spec.routing_keys)


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_each_service_module_has_a_main(name):
    module = importlib.import_module(SERVICE_MODULES[name])
    assert callable(module.main)
    assert name == module.NAME
