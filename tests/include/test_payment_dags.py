"""The DAGs' first tasks refuse a card number typed where the payment method token belongs;
the batched DAGs' queue watcher follows the settings."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.batch_dags import batch_asset
from include.payment_dags import checked_order_from_params, refuse_order_card_number
from include.payments.order_form import ORDER_FORM
from include.payments.settings import get_payment_settings


def context(**params: object) -> dict[str, object]:
    defaults = {name: spec["default"] for name, spec in ORDER_FORM.items()}
    return {"params": {**defaults, **params}, "run_id": "manual__1"}


def test_the_form_default_is_a_test_token_and_the_form_has_no_card_number_field() -> None:
    assert ORDER_FORM["payment_method"]["default"] == "pm_card_visa"
    assert "card_number" not in ORDER_FORM
    assert "pm_card_chargeDeclined" in ORDER_FORM["payment_method"]["description"]
    data = checked_order_from_params(context())
    assert data["payment_method"] == "pm_card_visa" and data["order_id"].startswith("ord-")


@pytest.mark.parametrize(
    "typed", ["4242424242424242", "4242 4242 4242 4242", "4000-0000-0000-0002"]
)
def test_a_card_number_fails_the_task_at_once_without_repeating_it(typed: str) -> None:
    with pytest.raises(AirflowFailException) as raised:
        checked_order_from_params(context(payment_method=typed))
    message = str(raised.value)
    assert "payment_method" in message and "pm_card_visa" in message
    assert typed not in message and "0000 0000" not in message and "4242 4242" not in message
    assert raised.value.__cause__ is None


def test_a_card_number_field_fails_the_task_too() -> None:
    with pytest.raises(AirflowFailException, match="card_number"):
        refuse_order_card_number({"payment_method": "pm_card_visa", "card_number": "4242"})


def test_the_batch_queue_watcher_takes_its_timings_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEGUE_BATCH_MAX_ORDERS", "50")
    monkeypatch.setenv("SEGUE_BATCH_MAX_WAIT_SECONDS", "1.5")
    monkeypatch.setenv("SEGUE_BATCH_CLAIM_TIMEOUT_SECONDS", "90")
    get_payment_settings.cache_clear()
    try:
        (watcher,) = batch_asset("payment_pipeline_batch").watchers
    finally:
        monkeypatch.undo()
        get_payment_settings.cache_clear()
    _, kwargs = watcher.trigger.serialize()
    assert kwargs["max_items"] == 50 and kwargs["max_wait_seconds"] == 1.5
    assert kwargs["claim_timeout_seconds"] == 90.0
    assert kwargs["probe_kwargs"] == {"dag_id": "payment_pipeline_batch"}
