"""Unit tests of the gateway settings (env, CLI) and of request-body validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from include.gateway.__main__ import parse_args
from include.gateway.schemas import ChargeRequest, RefundRequest
from include.gateway.settings import GatewaySettings


def test_defaults_are_the_baseline_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGUE_GATEWAY_FAILURE_RATE", raising=False)
    faults = GatewaySettings().fault_config()
    assert faults.failure_rate == 0.02
    assert faults.latency.distribution == "none"


def test_environment_then_cli_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGUE_GATEWAY_FAILURE_RATE", "0.25")
    monkeypatch.setenv("SEGUE_GATEWAY_SEED", "3")
    assert GatewaySettings().fault_config().failure_rate == 0.25
    flags = parse_args(
        ["--failure-rate", "0.5", "--latency-distribution", "lognormal", "--latency-mean-ms", "80"]
    )
    settings = GatewaySettings(**flags)
    faults = settings.fault_config()
    assert (faults.failure_rate, faults.seed) == (0.5, 3)
    assert (faults.latency.distribution, faults.latency.mean_ms) == ("lognormal", 80)


def test_invalid_startup_faults_fail_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(failure_rate=2)
    monkeypatch.setenv("SEGUE_GATEWAY_TIMEOUT_RATE", "-1")
    with pytest.raises(ValidationError):
        GatewaySettings()


def _charge(**overrides: object) -> dict[str, object]:
    return {"amount": "49.99", "currency": "USD", "payment_method": "pm_card_visa", **overrides}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("49.99", "49.99"), ("50", "50.00"), ("0.5", "0.50"), ("0.01", "0.01")],
)
def test_amounts_parse_exactly(raw: str, expected: str) -> None:
    amount = ChargeRequest.model_validate(_charge(amount=raw)).amount
    assert isinstance(amount, Decimal)
    assert str(amount) == expected


@pytest.mark.parametrize(
    "raw",
    ["0", "-1", "-0.01", "1.999", "49.990", "1e3", "NaN", "Infinity", " 5", "1_000", "", 49.99, 50],
)
def test_bad_amounts_are_rejected(raw: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        ChargeRequest.model_validate(_charge(amount=raw))
    assert excinfo.value.errors()[0]["loc"] == ("amount",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "usd"),
        ("currency", "USDX"),
        ("payment_method", ""),
        ("payment_method", "p" * 201),
        ("reference", "x" * 201),
    ],
)
def test_bad_charge_fields_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        ChargeRequest.model_validate(_charge(**{field: value}))
    assert excinfo.value.errors()[0]["loc"] == (field,)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        RefundRequest.model_validate({"charge_id": "ch_1", "amount": "1.00", "amout": "2.00"})
    refund = RefundRequest.model_validate({"charge_id": "ch_1", "amount": "1", "reason": ""})
    assert refund.amount == Decimal("1.00")
