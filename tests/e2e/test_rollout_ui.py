"""The Rollout page inside a real Airflow api-server, driven by people in headless Chromium.

An admin logs in through Airflow's login page, opens the Rollout page, sends 10% of new orders
to ``events`` with a reason and sees the new version in the history, then pulls the kill switch
and sees 100% to the baseline. A viewer (Airflow role ``viewer``: no DAG-run edit permission)
sees the page but is refused (403) by the form and by the REST API with a bearer token. An admin
starts a guarded rollout from a pasted plan, sees it running with a chart per check, and aborts
it. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy.orm import Session

from include.workflow import ROLLOUT_BASELINE, ROLLOUT_FLAG, ROLLOUT_PATHS
from segue.rollout import FlagSpec, current
from tests.e2e.conftest import log_in, submit, text_of
from tools.airflow_api import AirflowApi

pytestmark = pytest.mark.e2e
FLAG = FlagSpec(name=ROLLOUT_FLAG, paths=ROLLOUT_PATHS, baseline=ROLLOUT_BASELINE)


def fill(browser: WebDriver, element_id: str, value: str) -> None:
    element = browser.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(value)


def version_in_db(engine) -> int:
    with Session(engine) as session:
        return current(session, FLAG).version


def test_admin_changes_the_split_and_kills_it_and_a_viewer_only_reads(
    browser, artifacts, airflow_stack, engine
):
    page = f"{airflow_stack.url}/segue/rollout"
    reason = f"canary {uuid.uuid4().hex[:6]}: 10% to events"
    log_in(browser, airflow_stack, "admin")

    browser.get(page)
    before = int(text_of(browser, "version"))
    assert before == version_in_db(engine)
    for path, weight in (("dag", "90"), ("saga", "0"), ("hybrid", "0"), ("events", "10")):
        fill(browser, f"weight-{path}", weight)
    fill(browser, "reason", reason)
    submit(browser, "split-button")
    assert text_of(browser, "flash").startswith(f"Version {before + 1} by admin")
    assert text_of(browser, "version") == str(before + 1)
    assert text_of(browser, "share-events") == "10%" and text_of(browser, "share-dag") == "90%"
    newest = browser.find_element(By.CSS_SELECTOR, "#history tbody tr")
    assert newest.get_attribute("data-version") == str(before + 1)
    assert "admin" in newest.text and reason in newest.text and "weights.events" in newest.text
    assert browser.find_elements(By.ID, "figures"), "the payment workflow's figures are shown"
    browser.save_screenshot(str(artifacts / "rollout-events-10.png"))

    fill(browser, "kill-reason", "events path misbehaving")
    submit(browser, "kill-button", confirm=True)
    assert "Killed by admin" in text_of(browser, "flash")
    assert text_of(browser, "version") == str(before + 2)
    assert text_of(browser, "killed-state").startswith("ON")
    assert text_of(browser, "share-dag") == "100%" and text_of(browser, "share-events") == "0%"
    browser.save_screenshot(str(artifacts / "rollout-killed.png"))
    with Session(engine) as session:
        version = current(session, FLAG)
    assert (version.version, version.changed_by, version.definition.killed) == (
        before + 2,
        "admin",
        True,
    )

    browser.delete_all_cookies()
    log_in(browser, airflow_stack, "viewer")
    browser.get(page)
    assert text_of(browser, "version") == str(before + 2)  # reading is allowed
    fill(browser, "weight-dag", "50")
    fill(browser, "weight-events", "50")
    fill(browser, "reason", "a viewer tries")
    submit(browser, "split-button")
    assert text_of(browser, "error-title") == "403"
    browser.save_screenshot(str(artifacts / "rollout-viewer-refused.png"))

    viewer = AirflowApi(airflow_stack.url, "viewer", airflow_stack.password_of("viewer"))
    try:
        headers = {"Authorization": f"Bearer {viewer.token()}"}
        api = f"{airflow_stack.url}/segue/api/rollout"
        with httpx.Client(timeout=30, headers=headers) as http:
            status = http.get(api)
            assert status.status_code == 200
            assert status.json()["version"]["version"] == before + 2
            put = http.put(f"{api}/split", json={"weights": {"dag": 100}, "reason": "viewer"})
            assert put.status_code == 403
            assert http.post(f"{api}/kill", json={"reason": "viewer"}).status_code == 403
    finally:
        viewer.close()
    assert version_in_db(engine) == before + 2


def test_admin_starts_a_guarded_rollout_from_the_page_and_aborts_it(
    browser, artifacts, airflow_stack, clean_db
):
    from include.payments.rollout_plan import default_plan

    plan = default_plan().model_dump(mode="json")
    steps = [{"weight": 20, "bake_seconds": 600}, {"weight": 100, "bake_seconds": 600}]
    plan.update(name=f"ui-{uuid.uuid4().hex[:6]}", steps=steps)
    log_in(browser, airflow_stack, "admin")
    browser.get(f"{airflow_stack.url}/segue/rollout")
    assert text_of(browser, "guarded-none") == "No guarded rollout yet."
    browser.find_element(By.ID, "plan-text").send_keys(json.dumps(plan))
    submit(browser, "start-button")
    assert "started by admin: events at 20%" in text_of(browser, "flash")
    assert text_of(browser, "guarded-state").startswith("running step 1 of 2")
    assert text_of(browser, "share-events") == "20%"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.check-chart")
    assert len(charts) == len(plan["checks"])
    browser.save_screenshot(str(artifacts / "rollout-guarded-running.png"))

    fill(browser, "abort-reason", "tried it from the page")
    submit(browser, "abort-button")
    assert "aborted at step 1 (20%)" in text_of(browser, "flash")
    assert text_of(browser, "guarded-state").startswith("aborted")
    assert text_of(browser, "killed-state").startswith("ON")
    browser.save_screenshot(str(artifacts / "rollout-guarded-aborted.png"))
    with Session(clean_db) as session:
        version = current(session, FLAG)
    assert version.changed_by == "admin" and version.reason.endswith("tried it from the page")
