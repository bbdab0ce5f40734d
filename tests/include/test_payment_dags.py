"""The DAGs' first tasks refuse a card number typed where the payment method token belongs."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.payment_dags import checked_order_from_params, refuse_order_card_number
from include.payments.order_form import ORDER_FORM


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
