"""The saga pages inside a real Airflow api-server, driven by a person in headless Chromium.

Payment sagas are made in the business database with the real payment machine and gateway:
one succeeded, two parked in a gateway backoff (the gateway's ``fail_next`` knob). Then a user
logs in, filters the list, opens a parked saga, sees its diagram and trail, retries it (the
api-server's engine charges the card and finishes it), and compensates the other one.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from include.payments.deps import PaymentDeps
from include.payments.gateway_client import GatewayClient
from include.payments.saga import payment_machine
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from tests.e2e.conftest import log_in, submit, text_of

pytestmark = pytest.mark.e2e


@dataclass
class Sagas:
    store: SagaStore
    succeeded: str
    to_retry: str
    to_compensate: str


@pytest.fixture
def sagas(airflow_stack, engine, gateway_url, order_data, gateway_admin) -> Iterator[Sagas]:
    client = GatewayClient(gateway_url, timeout_seconds=2.0)
    store = SagaStore(engine)
    saga_engine = SagaRunner(payment_machine(PaymentDeps(engine=engine, gateway=client)), store)
    tag = uuid.uuid4().hex[:8]

    def run(name: str) -> str:
        instance_id = f"saga-ui-{name}-{tag}"
        saga_engine.start(instance_id, order_data())
        saga_engine.run(instance_id)
        return instance_id

    succeeded = run("ok")
    gateway_admin.set_faults(fail_next=2)  # one failed charge for each of the next two sagas
    parked = [run("retry"), run("compensate")]
    gateway_admin.set_faults(fail_next=0)
    yield Sagas(store, succeeded, *parked)
    for instance_id in parked:  # leave no saga parked forever in the session's database
        if not store.load(instance_id).final:
            saga_engine.compensate_now(instance_id, actor="test-teardown")
    client.close()


def snapshot(browser: WebDriver, path: Path) -> None:
    """A screenshot of the whole page (diagram, data and trail), not just the viewport."""
    size = browser.get_window_size()
    width, height = size["width"], size["height"]
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, max(height, full + 140))
    browser.save_screenshot(str(path))
    browser.set_window_size(width, height)


def listed_ids(browser: WebDriver) -> set[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#sagas tbody tr[data-id]")
    return {row.get_attribute("data-id") for row in rows}


def test_plugin_is_loaded_without_import_errors(airflow_stack, airflow_api):
    plugins = airflow_api.get("/plugins")["plugins"]
    segue = next((p for p in plugins if p["name"] == "segue"), None)
    assert segue is not None, f"segue plugin not loaded: {airflow_stack.log_tail()}"
    assert [app["url_prefix"] for app in segue["fastapi_apps"]] == ["/segue"]
    view, rollout, *reports = segue["external_views"]
    assert (view["name"], view["href"], view["url_route"]) == ("Sagas", "/segue/sagas", "sagas")
    assert (rollout["name"], rollout["href"]) == ("Rollout", "/segue/rollout")
    assert [report["href"] for report in reports] == ["/segue/reports/operations"]
    errors = airflow_api.get("/plugins/importErrors")["import_errors"]
    ours = ("segue_plugin.py", "/segue/airflow/plugin/")
    assert not [e for e in errors if any(part in e["source"] for part in ours)], errors


def test_every_endpoint_refuses_requests_without_a_token(airflow_stack, sagas):
    base = f"{airflow_stack.url}/segue"
    with httpx.Client(timeout=30, follow_redirects=False) as anonymous:
        for path in (
            "/",
            "/sagas",
            f"/sagas/{sagas.to_retry}",
            "/api/sagas",
            f"/api/sagas/{sagas.to_retry}",
        ):
            assert anonymous.get(base + path).status_code in (401, 403), path
        for action in ("retry", "compensate"):
            response = anonymous.post(f"{base}/sagas/{sagas.to_compensate}/{action}")
            assert response.status_code in (401, 403), action
        bogus = anonymous.get(f"{base}/api/sagas", headers={"Authorization": "Bearer nope"})
        assert bogus.status_code in (401, 403)
    assert sagas.store.load(sagas.to_compensate).status == "running"


def test_json_twins_with_a_bearer_token(airflow_stack, airflow_api, sagas):
    headers = {"Authorization": f"Bearer {airflow_api.token()}"}
    base = f"{airflow_stack.url}/segue/api"
    running = httpx.get(f"{base}/sagas", params={"status": "running"}, headers=headers).json()
    ids = {i["id"] for i in running["instances"]}
    assert {sagas.to_retry, sagas.to_compensate} <= ids and sagas.succeeded not in ids
    detail = httpx.get(f"{base}/sagas/{sagas.to_retry}", headers=headers).json()
    assert detail["instance"]["state"] == "CHARGING"
    assert [row["event"] for row in detail["trail"]][-1] == "retry"
    missing = httpx.get(f"{base}/sagas/no-such-saga", headers=headers)
    assert missing.status_code == 404


def test_a_person_filters_inspects_retries_and_compensates(
    browser, artifacts, airflow_stack, sagas, gateway_url
):
    url = f"{airflow_stack.url}/segue"

    browser.get(f"{url}/sagas")
    assert "Not authenticated" in text_of(browser, "error-message")
    log_in(browser, airflow_stack)

    browser.get(f"{url}/sagas")
    WebDriverWait(browser, 20).until(lambda d: sagas.succeeded in listed_ids(d))
    assert {sagas.succeeded, sagas.to_retry, sagas.to_compensate} <= listed_ids(browser)
    browser.save_screenshot(str(artifacts / "saga-list.png"))

    Select(browser.find_element(By.ID, "filter-status")).select_by_value("running")
    browser.find_element(By.ID, "filter-state").send_keys("CHARGING")
    browser.find_element(By.ID, "filter-button").click()
    WebDriverWait(browser, 20).until(lambda d: "status=running" in d.current_url)
    shown = listed_ids(browser)
    assert {sagas.to_retry, sagas.to_compensate} <= shown and sagas.succeeded not in shown
    browser.save_screenshot(str(artifacts / "saga-list-filtered.png"))

    browser.find_element(By.LINK_TEXT, sagas.to_retry).click()
    assert text_of(browser, "instance-id") == sagas.to_retry
    current = browser.find_element(By.CSS_SELECTOR, "#diagram g.state.current")
    assert current.get_attribute("data-state") == "CHARGING"
    visited = browser.find_elements(By.CSS_SELECTOR, "#diagram g.state.visited")
    assert {"ORDER_RECEIVED", "VALIDATING"} <= {v.get_attribute("data-state") for v in visited}
    trail = text_of(browser, "trail")
    assert "retry" in trail and "CHARGING: " in trail  # the gateway's 503, as the runner saw it
    snapshot(browser, artifacts / "saga-instance-parked.png")

    submit(browser, "retry-button")
    flash = text_of(browser, "flash")
    assert flash == "Retried from the current state by admin: now SUCCEEDED (succeeded)."
    assert text_of(browser, "status") == "succeeded"
    assert "retry_now" in text_of(browser, "trail") and "admin" in text_of(browser, "trail")
    snapshot(browser, artifacts / "saga-instance-retried.png")
    instance = sagas.store.load(sagas.to_retry)
    assert (instance.state, instance.status) == ("SUCCEEDED", "succeeded")

    browser.get(f"{url}/sagas/{sagas.to_compensate}")
    submit(browser, "compensate-button", confirm=True)
    flash = text_of(browser, "flash")
    assert flash.startswith("Compensation requested by admin: now ")
    instance = sagas.store.load(sagas.to_compensate)
    assert instance.final and instance.status in ("failed", "compensated")
    assert instance.status in flash
    trail = sagas.store.audit_trail(sagas.to_compensate)
    assert ("compensate_now", "admin") in [(row["event"], row["actor"]) for row in trail]
    assert browser.find_element(By.ID, "compensate-button").get_attribute("disabled")
    snapshot(browser, artifacts / "saga-instance-compensated.png")

    browser.get(f"{airflow_stack.url}/plugin/sagas")  # the "Sagas" entry of Airflow's nav
    WebDriverWait(browser, 30).until(
        ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe"))
    )
    WebDriverWait(browser, 20).until(lambda d: sagas.succeeded in listed_ids(d))
    browser.switch_to.default_content()
    browser.save_screenshot(str(artifacts / "saga-list-in-airflow-nav.png"))
