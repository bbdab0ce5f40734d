"""A person's path through the Airflow UI in a real headless Chromium: log in, open
payment_pipeline, fill the trigger form, trigger, and the order is recorded as they typed it.

Screenshots land in test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

from include.payments.tables import OrderRow
from segue.store.engine import session_scope
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def button(driver: WebDriver, text: str, timeout: float = 20):
    def find(d):
        matches = [b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == text]
        return matches[-1] if matches and matches[-1].is_enabled() else False

    # The React UI re-renders while loading: elements found a moment ago may go stale.
    wait = WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(find)


def fill(driver: WebDriver, element_id: str, value: str) -> None:
    field = WebDriverWait(driver, 20).until(ec.element_to_be_clickable((By.ID, element_id)))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value)


def test_order_placed_from_the_trigger_form(
    browser, artifacts, airflow_stack, airflow_api, engine, gateway_url
):
    log_in(browser, airflow_stack, page="/dags/payment_pipeline")

    button(browser, "Trigger", timeout=40).click()
    card = WebDriverWait(browser, 20).until(
        ec.presence_of_element_located((By.ID, "element_payment_method"))
    )
    assert card.get_attribute("value") == "pm_card_visa"
    assert browser.find_element(By.ID, "element_amount").get_attribute("value") == "49.99"
    order_id = f"ord-ui-{uuid.uuid4().hex[:10]}"
    fill(browser, "element_order_id", order_id)
    fill(browser, "element_amount", "12.34")
    browser.save_screenshot(str(artifacts / "trigger-form.png"))
    button(browser, "Trigger").click()

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with session_scope(engine) as session:
            order = session.get(OrderRow, order_id)
            if order is not None and order.status in ("completed", "failed"):
                break
        time.sleep(1)
    assert order is not None, "the form's run never recorded the order"
    assert (order.status, order.amount) == ("completed", Decimal("12.34"))

    browser.get(f"{airflow_stack.url}/dags/payment_pipeline/runs")
    WebDriverWait(browser, 30).until(
        lambda d: "Success" in d.find_element(By.TAG_NAME, "body").text
    )
    browser.save_screenshot(str(artifacts / "runs.png"))
