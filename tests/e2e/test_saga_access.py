"""Who may use the saga pages inside a real Airflow: nobody anonymous, a viewer reads only.

The api-server runs the simple auth manager with an ``admin`` and a ``viewer`` user
(``tools.airflow_stack.AUTH_USERS``). Every route of the plugin's app is listed from the app
itself, so a route added later is covered here without editing this test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute

from include.payments.deps import PaymentDeps
from include.payments.gateway_client import GatewayClient
from include.payments.saga import payment_machine
from segue.airflow.plugin.app import URL_PREFIX, create_app
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from tools.airflow_api import AirflowApi
from tools.airflow_stack import VIEWER_USER

pytestmark = pytest.mark.e2e


def plugin_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route of the plugin's app."""
    routes = [
        (method, route.path)
        for route in create_app().routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods)
    ]
    assert ("POST", "/sagas/{instance_id}/retry") in routes  # the list is really the app's
    return routes


ACTIONS = [(m, p) for m, p in plugin_routes() if m not in ("GET", "HEAD")]


@pytest.fixture
def parked_saga(airflow_stack, engine, gateway_url, order_data, gateway_admin) -> Iterator[str]:
    """A payment saga waiting out a gateway backoff: Retry and Compensate both apply."""
    client = GatewayClient(gateway_url, timeout_seconds=2.0)
    store = SagaStore(engine)
    runner = SagaRunner(payment_machine(PaymentDeps(engine=engine, gateway=client)), store)
    instance_id = f"saga-access-{uuid.uuid4().hex[:8]}"
    gateway_admin.set_faults(fail_next=1)
    runner.start(instance_id, order_data())
    runner.run(instance_id)
    gateway_admin.set_faults(fail_next=0)
    assert not store.load(instance_id).final
    yield instance_id
    if not store.load(instance_id).final:
        runner.compensate_now(instance_id, actor="test-teardown")
    client.close()


@pytest.fixture(scope="module")
def viewer_token(airflow_stack) -> Iterator[str]:
    api = AirflowApi(airflow_stack.url, VIEWER_USER, airflow_stack.password_of(VIEWER_USER))
    yield api.token()
    api.close()


def url_of(airflow_stack, path: str, instance_id: str) -> str:
    return f"{airflow_stack.url}{URL_PREFIX}{path.replace('{instance_id}', instance_id)}"


def test_an_anonymous_caller_gets_401_on_every_plugin_route(airflow_stack, engine, parked_saga):
    with httpx.Client(timeout=30, follow_redirects=False) as anonymous:
        for method, path in plugin_routes():
            response = anonymous.request(method, url_of(airflow_stack, path, parked_saga))
            assert response.status_code == 401, (method, path, response.text[:200])
    assert SagaStore(engine).load(parked_saga).status == "running"


def test_a_viewer_reads_the_saga_pages(airflow_stack, parked_saga, viewer_token):
    headers = {"Authorization": f"Bearer {viewer_token}"}
    base = f"{airflow_stack.url}{URL_PREFIX}"
    with httpx.Client(timeout=30, headers=headers) as viewer:
        listed = viewer.get(f"{base}/api/sagas", params={"status": "running"})
        assert listed.status_code == 200, listed.text
        assert parked_saga in {i["id"] for i in listed.json()["instances"]}
        assert viewer.get(f"{base}/api/sagas/{parked_saga}").status_code == 200
        assert parked_saga in viewer.get(f"{base}/sagas").text
        page = viewer.get(f"{base}/sagas/{parked_saga}")
        assert page.status_code == 200
        assert "Read-only for viewer" in page.text
        for button in ("retry-button", "compensate-button"):
            tag = re.search(rf'<button[^>]*id="{button}"[^>]*>', page.text)
            assert tag and "disabled" in tag.group(0), button


def test_every_action_answers_403_to_a_viewer(airflow_stack, engine, parked_saga, viewer_token):
    store = SagaStore(engine)
    before = store.load(parked_saga)
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        for method, path in ACTIONS:
            url = url_of(airflow_stack, path, parked_saga)
            by_token = http.request(
                method, url, headers={"Authorization": f"Bearer {viewer_token}"}
            )
            assert by_token.status_code == 403, (method, path, by_token.text[:200])
            if "/sagas" in path:  # the Sagas actions name the saga's DAG; Rollout's need any
                assert "permission to edit the runs of DAG payment_state_machine" in by_token.text
        # As the browser does it: the UI's _token cookie, the page's CSRF token, same origin.
        http.cookies.set("_token", viewer_token)
        page = http.get(url_of(airflow_stack, "/sagas/{instance_id}", parked_saga))
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text[:300]
        for method, path in ACTIONS:
            by_form = http.request(
                method, url_of(airflow_stack, path, parked_saga), data={"csrf_token": token[1]}
            )
            assert by_form.status_code == 403, (method, path, by_form.text[:200])
            if "/sagas" in path:
                assert "permission to edit the runs" in by_form.text
    after = store.load(parked_saga)
    assert (after.state, after.status, after.version) == (
        before.state,
        before.status,
        before.version,
    )
