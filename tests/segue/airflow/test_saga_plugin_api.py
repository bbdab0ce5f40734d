"""The saga pages and their JSON twins, through FastAPI's TestClient on the real PostgreSQL.

A tiny machine (reserve → charge → done, with a compensation) makes every situation easy to
reach: a saga parked in a backoff, a succeeded one, one whose compensation fails. Only the
auth dependencies are overridden, and one test checks that without overrides the app refuses.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from segue.airflow.plugin import SeguePlugin
from segue.airflow.plugin.access import dag_authorizer
from segue.airflow.plugin.app import URL_PREFIX, create_app
from segue.airflow.plugin.diagram_svg import render_svg
from segue.airflow.plugin.security import get_user
from segue.airflow.plugin.service import SagaService
from segue.statemachine.definition import RetryPolicy, State, StateMachineDefinition, Transition
from segue.statemachine.machine import ActionContext, Machine
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import INSTANCES, SagaStore

MACHINE = "ui_test_saga"
OTHER_MACHINE = "other_test_saga"
# Which DAG runs which machine (as register(..., dag_ids=...) records it).
DAGS = {MACHINE: ("dag_a",), OTHER_MACHINE: ("dag_b",)}


class Knobs:
    """What the test machine's actions do next (tests flip these)."""

    def __init__(self) -> None:
        self.charge_fails = False
        self.release_fails = False
        self.released: list[str] = []


def build_machine(knobs: Knobs) -> Machine:
    def reserve(ctx: ActionContext) -> dict[str, Any]:
        return {"reserved": True}

    def release(ctx: ActionContext) -> None:
        if knobs.release_fails:
            raise RuntimeError("stock service unavailable")
        knobs.released.append(ctx.instance_id)

    def charge(ctx: ActionContext) -> dict[str, Any]:
        if knobs.charge_fails:
            raise RuntimeError("gateway unavailable")
        return {"charge_id": f"ch-{ctx.instance_id}"}

    definition = StateMachineDefinition(
        name=MACHINE,
        initial="RESERVE",
        states=(
            State(
                name="RESERVE",
                kind="task",
                action="reserve",
                compensation="release",
                transitions=(
                    Transition(event="done", target="CHARGE"),
                    Transition(event="failed", target="FAILED"),
                ),
            ),
            State(
                name="CHARGE",
                kind="task",
                action="charge",
                pivot=True,
                retry=RetryPolicy(max_attempts=3, backoff_seconds=3600),
                transitions=(
                    Transition(event="done", target="DONE"),
                    Transition(event="failed", target="FAILED"),
                ),
            ),
            State(name="DONE", kind="succeed"),
            State(name="FAILED", kind="fail"),
        ),
    )
    actions = {"reserve": reserve, "release": release, "charge": charge}
    return Machine(definition, actions)


class World:
    """The store, the runner of the test machine and its knobs, plus helpers to make sagas."""

    def __init__(self, engine: Engine) -> None:
        self.knobs = Knobs()
        self.machine = build_machine(self.knobs)
        self.store = SagaStore(engine)
        self.engine = SagaRunner(self.machine, self.store)

    def lookup(self, name: str) -> Machine:
        if name != MACHINE:
            raise KeyError(f"no saga machine named {name!r}")
        return self.machine

    def saga(self, *, charge_fails: bool = False, **data: Any) -> str:
        instance_id = f"saga-{uuid.uuid4().hex[:10]}"
        self.knobs.charge_fails = charge_fails
        self.engine.start(instance_id, {"order_id": instance_id, **data})
        self.engine.run(instance_id)
        self.knobs.charge_fails = False
        return instance_id


@pytest.fixture
def world(clean_db: Engine) -> World:
    return World(clean_db)


def mounted(world: World) -> tuple[FastAPI, FastAPI]:
    """(Airflow-like root app, our app mounted under /segue as the api-server does)."""
    app = create_app(
        service_factory=lambda: SagaService(world.store, world.lookup, lambda m: DAGS.get(m, ()))
    )
    root = FastAPI()
    root.mount(URL_PREFIX, app)
    return root, app


@pytest.fixture
def apps(world: World) -> tuple[FastAPI, FastAPI]:
    return mounted(world)


@pytest.fixture
def client(apps: tuple[FastAPI, FastAPI]) -> Iterator[TestClient]:
    """Logged in as ``ada``, allowed to read and edit the runs of every DAG."""
    root, app = apps
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="ada", role="admin")
    allow(app, lambda dag_id, method: True)
    with TestClient(root, base_url="http://testserver") as http:
        yield http


def allow(app: FastAPI, decide: Any) -> list[tuple[str | None, str]]:
    """Let ``decide(dag_id, method)`` answer the auth manager's questions; the questions asked."""
    asked: list[tuple[str | None, str]] = []

    def authorizer():  # type: ignore[no-untyped-def]
        def allowed(dag_id: str | None, method: str) -> bool:
            asked.append((dag_id, method))
            return bool(decide(dag_id, method))

        return allowed

    app.dependency_overrides[dag_authorizer] = authorizer
    return asked


def csrf(client: TestClient, instance_id: str) -> str:
    """Open the instance page as a browser would, and return the form's token."""
    page = client.get(f"/segue/sagas/{instance_id}")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the action forms carry a CSRF token"
    return match.group(1)


def post_action(client: TestClient, instance_id: str, action: str, **kwargs: Any):
    token = csrf(client, instance_id)
    return client.post(f"/segue/sagas/{instance_id}/{action}", data={"csrf_token": token}, **kwargs)


# --- auth ------------------------------------------------------------------------------


def test_every_endpoint_refuses_an_anonymous_request(world):
    instance_id = world.saga()
    root, _ = mounted(world)
    with TestClient(root) as anonymous:
        for path in (
            "/segue/",
            "/segue/sagas",
            f"/segue/sagas/{instance_id}",
            "/segue/api/sagas",
            f"/segue/api/sagas/{instance_id}",
        ):
            response = anonymous.get(path, follow_redirects=False)
            assert response.status_code == 401, path
        for action in ("retry", "compensate"):
            response = anonymous.post(f"/segue/sagas/{instance_id}/{action}")
            assert response.status_code == 401, action
        assert anonymous.get("/segue/docs").status_code in (401, 404)
        assert anonymous.get("/segue/openapi.json").status_code in (401, 404)
    assert world.store.load(instance_id).status == "succeeded"


def test_unauthenticated_page_is_html_and_api_is_json(world):
    root, _ = mounted(world)
    with TestClient(root) as anonymous:
        page = anonymous.get("/segue/sagas")
        assert page.headers["content-type"].startswith("text/html")
        assert "Not authenticated" in page.text
        assert anonymous.get("/segue/api/sagas").json() == {"detail": "Not authenticated"}


def test_actions_need_permission_to_edit_the_runs_of_the_sagas_dag(world, apps, client):
    instance_id = world.saga(charge_fails=True)
    _, app = apps
    asked = allow(app, lambda dag_id, method: method == "GET")
    for action in ("retry", "compensate"):
        response = post_action(client, instance_id, action)
        assert response.status_code == 403
        assert "permission to edit the runs of DAG dag_a" in response.text
    bearer = {"Authorization": "Bearer x"}  # no CSRF check: the DAG check alone refuses
    assert client.post(f"/segue/sagas/{instance_id}/retry", headers=bearer).status_code == 403
    page = client.get(f"/segue/sagas/{instance_id}")
    assert page.status_code == 200  # reading is fine, the buttons are off
    assert not re.search(r'<button[^>]*type="submit"(?![^>]*disabled)', page.text)
    assert ("dag_a", "PUT") in asked and ("dag_a", "GET") in asked
    instance = world.store.load(instance_id)
    assert (instance.state, instance.status) == ("CHARGE", "running")


def move_to_machine(world: World, instance_id: str, machine: str) -> None:
    with world.store.engine.begin() as connection:
        connection.execute(
            update(INSTANCES).where(INSTANCES.c.id == instance_id).values(machine=machine)
        )


def test_a_user_sees_only_the_sagas_of_dags_they_may_read(world, apps, client):
    mine = world.saga()
    theirs = world.saga()
    move_to_machine(world, theirs, OTHER_MACHINE)
    _, app = apps
    allow(app, lambda dag_id, method: dag_id == "dag_a")

    listed = client.get("/segue/sagas")
    assert mine in listed.text and theirs not in listed.text
    body = client.get("/segue/api/sagas").json()
    assert [i["id"] for i in body["instances"]] == [mine]
    assert client.get(f"/segue/sagas/{mine}").status_code == 200
    for path in (f"/segue/sagas/{theirs}", f"/segue/api/sagas/{theirs}"):
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert "permission to read the runs of DAG dag_b" in refused.text


def test_a_machine_without_dags_needs_access_to_every_dag(world, apps, client):
    orphan = world.saga()
    move_to_machine(world, orphan, "unregistered_saga")
    _, app = apps
    asked = allow(app, lambda dag_id, method: dag_id is not None)  # no access to "all DAGs"
    assert client.get(f"/segue/api/sagas/{orphan}").status_code == 403
    assert orphan not in client.get("/segue/sagas").text
    assert (None, "GET") in asked
    allow(app, lambda dag_id, method: True)
    assert client.get(f"/segue/api/sagas/{orphan}").status_code == 200


def test_the_plugin_registers_the_app_and_a_nav_view():
    (entry,) = SeguePlugin.fastapi_apps
    assert entry["url_prefix"] == "/segue" and entry["name"] == "Segue sagas"
    # Sagas, Rollout, then the workflow's report pages (SEGUE_REPORT_PAGES: Operations).
    view, rollout, *reports = SeguePlugin.external_views
    assert view["href"] == "/segue/sagas"
    assert (view["destination"], view["url_route"]) == ("nav", "sagas")
    assert (rollout["href"], rollout["destination"]) == ("/segue/rollout", "nav")
    assert [report["href"] for report in reports] == ["/segue/reports/operations"]


# --- list ------------------------------------------------------------------------------


def test_list_shows_instances_and_filters_by_state_and_status(world, client):
    done = world.saga()
    parked = world.saga(charge_fails=True)

    everything = client.get("/segue/sagas")
    assert everything.status_code == 200
    assert done in everything.text and parked in everything.text
    assert f'href="/segue/sagas/{parked}"' in everything.text

    by_state = client.get("/segue/sagas", params={"state": "CHARGE"})
    assert parked in by_state.text and done not in by_state.text
    assert "gateway unavailable" in by_state.text  # the error column

    by_status = client.get("/segue/sagas", params={"status": "succeeded"})
    assert done in by_status.text and parked not in by_status.text

    nothing = client.get("/segue/sagas", params={"state": "DONE", "status": "running"})
    assert done not in nothing.text and parked not in nothing.text
    assert "No saga instances match these filters" in nothing.text


def test_list_escapes_what_it_shows(world, client):
    instance_id = world.saga(charge_fails=False)
    page = client.get("/segue/sagas", params={"state": "<script>alert(1)</script>"})
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert instance_id not in page.text


def test_json_list_and_filter(world, client):
    done = world.saga()
    parked = world.saga(charge_fails=True)
    body = client.get("/segue/api/sagas").json()
    assert {i["id"] for i in body["instances"]} == {done, parked}
    assert body["count"] == 2
    running = client.get("/segue/api/sagas", params={"status": "running"}).json()
    (only,) = running["instances"]
    assert (only["id"], only["state"], only["final"]) == (parked, "CHARGE", False)
    assert only["wake_at"] is not None
    assert client.get("/segue/api/sagas", params={"limit": 0}).status_code == 422


# --- instance --------------------------------------------------------------------------


def test_instance_page_shows_diagram_with_current_state_and_the_trail(world, client):
    instance_id = world.saga(charge_fails=True, card_number="4242424242424242")
    page = client.get(f"/segue/sagas/{instance_id}")
    assert page.status_code == 200
    html = page.text

    current = re.search(r'<g class="([^"]*)" id="state-CHARGE"', html)
    assert current and "current" in current.group(1).split()
    reserve = re.search(r'<g class="([^"]*)" id="state-RESERVE"', html)
    assert reserve and "visited" in reserve.group(1).split()
    assert "current" not in reserve.group(1).split()
    done = re.search(r'<g class="([^"]*)" id="state-DONE"', html)
    assert done and not {"current", "visited"} & set(done.group(1).split())
    assert 'id="state-UNDO_RESERVE"' in html  # the compensation lane
    assert re.search(r'class="edge taken" data-from="RESERVE" data-to="CHARGE"', html)
    mermaid = html[html.index('id="mermaid"') :]
    assert "stateDiagram-v2" in mermaid and "class CHARGE current" in mermaid

    trail = html[html.index('id="trail"') :]
    for text in ("start", "done", "retry", "RuntimeError: gateway unavailable", "engine"):
        assert text in trail
    assert "4242424242424242" not in html and "••••4242" in html
    assert 'id="retry-button">' in html  # enabled: the saga waits out a backoff
    assert 'id="compensate-button">' in html


def test_instance_json_has_instance_and_trail(world, client):
    instance_id = world.saga(charge_fails=True, card_number="4242424242424242")
    body = client.get(f"/segue/api/sagas/{instance_id}").json()
    assert body["instance"]["id"] == instance_id
    assert body["instance"]["data"]["card_number"].endswith("4242")
    assert "4242424242424242" not in str(body)
    events = [(row["from_state"], row["to_state"], row["event"]) for row in body["trail"]]
    assert events == [
        (None, "RESERVE", "start"),
        ("RESERVE", "CHARGE", "done"),
        ("CHARGE", "CHARGE", "retry"),
    ]
    assert body["trail"][-1]["error"] == "CHARGE: RuntimeError: gateway unavailable"
    assert body["visited"] == ["RESERVE", "CHARGE"]


def test_unknown_instance_is_404_everywhere(client):
    page = client.get("/segue/sagas/no-such-saga")
    assert page.status_code == 404
    assert "no saga instance &#39;no-such-saga&#39;" in page.text
    assert client.get("/segue/api/sagas/no-such-saga").json() == {
        "detail": "no saga instance 'no-such-saga'"
    }
    assert client.get("/segue/api/sagas/no-such-saga").status_code == 404
    for action in ("retry", "compensate"):
        response = client.post(
            f"/segue/sagas/no-such-saga/{action}", headers={"Authorization": "Bearer t"}
        )
        assert response.status_code == 404


def test_instance_of_an_unknown_machine_still_shows_its_trail(world, client):
    instance_id = world.saga(charge_fails=True)
    with world.store.engine.begin() as connection:
        connection.execute(
            update(INSTANCES).where(INSTANCES.c.id == instance_id).values(machine="retired_saga")
        )
    page = client.get(f"/segue/sagas/{instance_id}")
    assert page.status_code == 200
    assert "no saga machine named &#39;retired_saga&#39;" in page.text
    response = post_action(client, instance_id, "compensate")
    assert response.status_code == 409
    assert "retired_saga" in response.text


# --- actions ---------------------------------------------------------------------------


def test_retry_resumes_a_parked_saga_now_and_records_the_user(world, client):
    instance_id = world.saga(charge_fails=True)
    response = post_action(client, instance_id, "retry")
    assert response.status_code == 200  # after the redirect
    assert response.url.path == f"/segue/sagas/{instance_id}"
    assert "Retried from the current state by ada: now DONE (succeeded)." in response.text

    instance = world.store.load(instance_id)
    assert (instance.state, instance.status) == ("DONE", "succeeded")
    trail = world.store.audit_trail(instance_id)
    assert ("retry_now", "ada") in [(row["event"], row["actor"]) for row in trail]
    events = [row["event"] for row in trail]
    caused = trail[events.index("retry_now") :]
    assert len(caused) > 1, "the retry ran further transitions"
    assert {row["actor"] for row in caused} == {"ada"}, "every transition the retry ran"
    assert client.get(f"/segue/sagas/{instance_id}").text.count('id="flash"') == 0  # one-time


def test_compensate_abandons_the_saga_and_undoes_completed_steps(world, client):
    instance_id = world.saga(charge_fails=True)
    response = post_action(client, instance_id, "compensate", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/segue/sagas/{instance_id}"

    instance = world.store.load(instance_id)
    assert (instance.state, instance.status) == ("COMPENSATED", "compensated")
    assert world.knobs.released == [instance_id]
    trail = world.store.audit_trail(instance_id)
    requested = next(row for row in trail if row["event"] == "compensate_now")
    assert requested["actor"] == "ada"
    caused = trail[[row["event"] for row in trail].index("compensate_now") :]
    assert len(caused) > 1, "the compensation ran its steps"
    assert {row["actor"] for row in caused} == {"ada"}, "every compensation step it ran"
    assert requested["error"] == "compensation requested by ada"
    page = client.get(f"/segue/sagas/{instance_id}").text
    assert "Compensation requested by ada: now COMPENSATED (compensated)." in page
    assert re.search(r'<g class="[^"]*current[^"]*" id="state-COMPENSATED"', page)


def test_retry_resumes_a_failed_compensation(world, client):
    instance_id = world.saga(charge_fails=True)
    world.knobs.release_fails = True
    world.engine.compensate_now(instance_id, actor="ops")
    for _ in range(5):  # compensation retries are backoffs: skip them
        instance = world.store.load(instance_id)
        if instance.status == "compensation_failed":
            break
        world.engine.retry_now(instance_id, actor="ops")
    assert world.store.load(instance_id).status == "compensation_failed"

    world.knobs.release_fails = False
    post_action(client, instance_id, "retry")
    instance = world.store.load(instance_id)
    assert (instance.state, instance.status) == ("COMPENSATED", "compensated")


def test_engine_refusal_is_409_with_its_message(world, client):
    instance_id = world.saga()  # succeeded
    for action, words in (("compensate", "cannot compensate now"), ("retry", "nothing to retry")):
        response = post_action(client, instance_id, action)
        assert response.status_code == 409
        assert f"{instance_id} is succeeded: {words}" in response.text
        assert f'href="/segue/sagas/{instance_id}"' in response.text  # a way back
    assert world.store.load(instance_id).status == "succeeded"


def test_finished_saga_has_its_buttons_disabled(world, client):
    page = client.get(f"/segue/sagas/{world.saga()}").text
    assert re.search(r'id="retry-button" disabled', page)
    assert re.search(r'id="compensate-button" disabled', page)


# --- CSRF ------------------------------------------------------------------------------


def test_cookie_post_without_the_form_token_is_refused(world, client):
    instance_id = world.saga(charge_fails=True)
    csrf(client, instance_id)  # the browser has the cookie ...
    response = client.post(f"/segue/sagas/{instance_id}/compensate", data={})
    assert response.status_code == 403  # ... but a forged form lacks the field
    response = client.post(f"/segue/sagas/{instance_id}/compensate", data={"csrf_token": "guessed"})
    assert response.status_code == 403
    assert world.store.load(instance_id).status == "running"


def test_cross_origin_post_is_refused(world, client):
    instance_id = world.saga(charge_fails=True)
    token = csrf(client, instance_id)
    response = client.post(
        f"/segue/sagas/{instance_id}/compensate",
        data={"csrf_token": token},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert world.store.load(instance_id).status == "running"


def test_bearer_token_scripts_need_no_form_token(world, client):
    instance_id = world.saga(charge_fails=True)
    response = client.post(
        f"/segue/sagas/{instance_id}/compensate",
        headers={"Authorization": "Bearer from-auth-token"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert world.store.load(instance_id).status == "compensated"


# --- diagram ---------------------------------------------------------------------------


def test_diagram_marks_each_state_once_and_escapes_names(world):
    svg = render_svg(world.machine.definition, current="CHARGE", visited=["RESERVE", "CHARGE"])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('aria-current="step"') == 1
    for name in ("RESERVE", "CHARGE", "DONE", "FAILED", "UNDO_RESERVE", "COMPENSATED"):
        assert svg.count(f'id="state-{name}"') == 1
    assert 'data-from="CHARGE" data-to="FAILED"' in svg
