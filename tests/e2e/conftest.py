"""A real Airflow 3 for end-to-end tests: scheduler, dag-processor, triggerer and api-server.

Started once per session with ``airflow standalone`` (as ``make run`` does) on a fresh
PostgreSQL metadata database, pointed at the session's business database and gateway.
Retry delays are shortened to seconds so retry paths finish quickly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

from tests.otlp_receiver import Receiver, otlp_receiver
from tools.airflow_api import AirflowApi
from tools.airflow_stack import AirflowStack
from tools.gateway import GatewayProcess
from tools.sandbox import airflow_sandbox

E2E_RETRIES = 2
CHARGE_REPLY_TIMEOUT_SECONDS = 60
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,1300",
)


@pytest.fixture(scope="session")
def otlp() -> Iterator[Receiver]:
    """Where the e2e Airflow's task processes (ours and Airflow's own tracing) send spans."""
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory,
    pg_url: str,
    gateway_process: GatewayProcess,
    otlp: Receiver,
) -> Iterator[AirflowStack]:
    segue_env = {
        # Order traces from every task to the test's receiver (Airflow's own tracing, [traces]
        # otel_on, stays off: the whole e2e suite shares this Airflow).
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "SEGUE_RETRIES": str(E2E_RETRIES),
        "SEGUE_RETRY_DELAY_SECONDS": "1",
        "SEGUE_MAX_RETRY_DELAY_SECONDS": "2",
        # payment_hybrid's wait for the charge reply: long enough for a restart of the charge
        # service, short enough to test giving up.
        "SEGUE_CHARGE_REPLY_TIMEOUT_SECONDS": str(CHARGE_REPLY_TIMEOUT_SECONDS),
        # An admin and a viewer (no DAG-run edits): both passwords land in the generated file.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
    }
    home = tmp_path_factory.mktemp("airflow-home")
    with airflow_sandbox(home, pg_url, gateway_process, segue_env=segue_env) as stack:
        yield stack


@pytest.fixture(scope="session")
def airflow_api(airflow_stack: AirflowStack) -> Iterator[AirflowApi]:
    api = airflow_stack.api()
    api.wait_for_dag("payment_pipeline")
    yield api
    api.close()


@pytest.fixture
def artifacts() -> Path:
    """Where browser tests save screenshots for a human to look at (gitignored)."""
    folder = Path(__file__).resolve().parents[2] / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Debian's headless Chromium driven through chromedriver, with a fresh profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options
    )
    yield driver
    driver.quit()


def log_in(
    browser: WebDriver, airflow_stack: AirflowStack, username: str = "admin", page: str = "/"
) -> None:
    """Log ``username`` in through Airflow's own login page, opened by going to ``page`` (Airflow
    sends the browser there, and back to ``page`` afterwards); returns once Airflow set ``_token``.

    :param browser: the browser.
    :param airflow_stack: the Airflow whose generated password ``username`` has.
    :param username: one of its users (admin, viewer).
    :param page: the path to start from.
    """
    browser.get(f"{airflow_stack.url}{page}")
    field = WebDriverWait(browser, 30).until(login_field)
    field.send_keys(username)
    password = browser.find_element(By.NAME, "password")
    password.send_keys(airflow_stack.password_of(username))
    password.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: d.get_cookie("_token") is not None)


def login_field(browser: WebDriver) -> WebElement | bool:
    """The login form's username field, or False while it is not there yet.

    The page reaches the login form by a navigation in the browser: a lookup made while it is
    under way fails with chromedriver's "aborted by navigation", which means "not yet" too.
    """
    try:
        return browser.find_element(By.NAME, "username")
    except NoSuchElementException:
        return False
    except WebDriverException as exc:
        if "aborted by navigation" in str(exc.msg):
            return False
        raise


def text_of(browser: WebDriver, element_id: str) -> str:
    """The text of the element ``element_id``, once the page has it (up to 20 s).

    :param browser: the browser.
    :param element_id: the element's id.
    """
    located = ec.presence_of_element_located((By.ID, element_id))
    return WebDriverWait(browser, 20).until(located).text


def submit(browser: WebDriver, button_id: str, *, confirm: bool = False) -> None:
    """Press a form's submit button and wait for the page the post leads to.

    Until that page is there, the old one's elements are still found: a flash read too soon is
    the previous action's, or goes stale while it is read.

    :param browser: the browser.
    :param button_id: the submit button's id.
    :param confirm: accept the confirmation dialog the button opens first.
    """
    old_page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, button_id).click()
    if confirm:
        WebDriverWait(browser, 10).until(ec.alert_is_present()).accept()
    WebDriverWait(browser, 30).until(ec.staleness_of(old_page))
