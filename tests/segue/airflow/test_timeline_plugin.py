"""The order timeline page and its JSON twin, through FastAPI's TestClient on real PostgreSQL.

Only Airflow's auth dependencies are overridden (``get_user``, and ``dag_authorizer``: the
auth manager's answers per DAG). The sources are the library's own, over rows written by the
library (a route decision, a dead letter); the Airflow part reads through a reader that cannot
reach Airflow, so the page must show the rest and name the missing part.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from segue.airflow.plugin.access import dag_authorizer
from segue.airflow.plugin.app import URL_PREFIX, create_app
from segue.airflow.plugin.security import get_user
from segue.airflow.plugin.service import SagaService
from segue.airflow.plugin.timeline_service import TimelineService
from segue.airflow.timeline import RunFacts, TaskTry
from segue.rollout import FlagSpec, decide
from segue.store.dead_letters import record_dead_letter
from segue.store.engine import session_scope
from segue.timeline.sources import dead_letter_source, route_decision_source, saga_source
from segue.timeline.workflow import DagRunRef, WorkflowTimeline
from tests.segue.airflow.test_saga_plugin_api import DAGS, World

FLAG = FlagSpec(name="route", paths=("dag", "events"), baseline="dag")
ORDER = "ord-timeline-1"


def airflow_down(ref: DagRunRef) -> list[RunFacts]:
    raise ConnectionError("Airflow's metadata database is unreachable")


def build(engine: Engine) -> tuple[FastAPI, FastAPI]:
    workflow = WorkflowTimeline(
        sources=(route_decision_source(engine), dead_letter_source(engine)),
        dag_runs=lambda order_id: [DagRunRef(dag_id="payments", run_id=f"order__{order_id}")],
    )
    service = TimelineService(workflow, airflow_down)
    app = create_app(service_factory=lambda: None, timeline_factory=lambda: service)  # type: ignore[arg-type,return-value]
    root = FastAPI()
    root.mount(URL_PREFIX, app)
    return root, app


@pytest.fixture
def apps(clean_db: Engine) -> tuple[FastAPI, FastAPI]:
    with session_scope(clean_db) as session:
        decide(session, FLAG, ORDER, {"order_id": ORDER})
        record_dead_letter(
            session,
            workflow="payments",
            subject=ORDER,
            step="charge",
            error="GatewayUnavailable: HTTP 503",
            attempts=4,
            payload={},
        )
    return build(clean_db)


def logged_in(app: FastAPI, *, readable: str | None = None) -> None:
    """Logged in as ``ada``, who may read every DAG's runs, or only those of ``readable``."""
    user = SimpleAuthManagerUser(username="ada", role="viewer")
    app.dependency_overrides[get_user] = lambda: user

    def authorize(dag_id: str | None, method: str) -> bool:
        return method == "GET" and (readable is None or dag_id == readable)

    app.dependency_overrides[dag_authorizer] = lambda: authorize


@pytest.fixture
def client(apps: tuple[FastAPI, FastAPI]) -> Iterator[TestClient]:
    root, app = apps
    logged_in(app)
    with TestClient(root, base_url="http://testserver") as http:
        yield http


def test_anonymous_requests_are_refused(apps: tuple[FastAPI, FastAPI]) -> None:
    root, _ = apps
    with TestClient(root) as anonymous:
        for path in (
            "/segue/orders",
            f"/segue/orders/{ORDER}",
            f"/segue/api/orders/{ORDER}/timeline",
        ):
            assert anonymous.get(path).status_code == 401, path


def test_users_who_may_not_read_every_dags_runs_are_refused(apps: tuple[FastAPI, FastAPI]) -> None:
    root, app = apps
    logged_in(app, readable="payments")  # one DAG only, even when the query names it
    with TestClient(root) as http:
        assert http.get(f"/segue/orders/{ORDER}").status_code == 403
        refused = http.get(f"/segue/api/orders/{ORDER}/timeline", params={"dag_id": "payments"})
        assert refused.status_code == 403
        assert "read the runs of every DAG" in refused.json()["detail"]


def test_an_unknown_order_is_404_on_the_page_and_the_api(client: TestClient) -> None:
    page = client.get("/segue/orders/ord-nobody")
    assert page.status_code == 404 and "no such order" in page.text
    assert "text/html" in page.headers["content-type"]
    api = client.get("/segue/api/orders/ord-nobody/timeline")
    assert api.status_code == 404
    assert api.json() == {"detail": "no such order: 'ord-nobody' (could not read: airflow)"}


def test_the_page_lists_the_entries_and_names_the_missing_part(client: TestClient) -> None:
    page = client.get(f"/segue/orders/{ORDER}")
    assert page.status_code == 200
    assert 'href="/segue/orders"' in page.text  # the nav's link to the search
    assert page.text.count('<tr class="entry') == 3
    assert 'data-source="route" data-kind="decision"' in page.text
    assert "routed to dag by flag route v0" in page.text
    assert "payments gave up on step charge after 4 attempt(s)" in page.text
    assert "GatewayUnavailable: HTTP 503" in page.text
    assert 'id="missing-parts"' in page.text and "could not be read: airflow" in page.text


def test_the_api_answers_the_timeline_as_json(client: TestClient) -> None:
    answer = client.get(f"/segue/api/orders/{ORDER}/timeline")
    assert answer.status_code == 200
    data = answer.json()
    assert data["order_id"] == ORDER and data["missing"] == ["airflow"]
    kinds = [(e["source"], e["kind"]) for e in data["entries"]]
    assert kinds == [("route", "decision"), ("dead_letters", "dead letter"), ("airflow", "missing")]
    first, second, missing = data["entries"]
    assert first["details"]["reason"] == "default" and first["since_first_seconds"] == 0.0
    assert (
        second["since_previous_seconds"] >= 0 and second["error"] == "GatewayUnavailable: HTTP 503"
    )
    assert missing["missing"] and "unreachable" in missing["error"]


def test_the_search_box_leads_to_the_orders_page(client: TestClient) -> None:
    form = client.get("/segue/orders")
    assert form.status_code == 200 and 'name="order_id"' in form.text
    found = client.get("/segue/orders", params={"order_id": f" {ORDER} "}, follow_redirects=False)
    assert found.status_code == 303
    assert found.headers["location"] == f"/segue/orders/{ORDER}"


def test_a_dag_orders_page_shows_its_tasks_and_the_step_it_is_at(clean_db: Engine) -> None:
    start = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def one_run(ref: DagRunRef) -> list[RunFacts]:
        ran = [("validate", "success"), ("charge", "running")]
        tries = [
            TaskTry(
                task_id=task,
                try_number=1,
                state=state,
                start_date=start + timedelta(seconds=i),
                end_date=start + timedelta(seconds=i + 0.5),
            )
            for i, (task, state) in enumerate(ran)
        ]
        tries.append(TaskTry(task_id="send_receipt", try_number=0))
        assert ref.run_id is not None
        return [
            RunFacts(
                dag_id=ref.dag_id,
                run_id=ref.run_id,
                state="running",
                start_date=start,
                tries=tuple(tries),
            )
        ]

    workflow = WorkflowTimeline(
        sources=(route_decision_source(clean_db),),
        dag_runs=lambda order_id: [DagRunRef(dag_id="payments", run_id=f"order__{order_id}")],
    )
    service = TimelineService(workflow, one_run)
    app = create_app(service_factory=lambda: None, timeline_factory=lambda: service)  # type: ignore[arg-type,return-value]
    root = FastAPI()
    root.mount(URL_PREFIX, app)
    logged_in(app)
    with TestClient(root) as http:
        page = http.get(f"/segue/orders/{ORDER}")
        data = http.get(f"/segue/api/orders/{ORDER}/timeline").json()
    assert page.status_code == 200
    assert 'id="path-steps"' in page.text and 'id="missing-parts"' not in page.text
    assert '<span class="step running current" title="running">charge</span>' in page.text
    assert '<span class="step " title="">send_receipt</span>' in page.text
    assert page.text.count('data-kind="task try"') == 2
    assert [(s["name"], s["current"]) for s in data["steps"]] == [
        ("validate", False), ("charge", True), ("send_receipt", False)
    ]  # fmt: skip


def test_a_saga_orders_page_shows_the_sagas_diagram_at_its_state(clean_db: Engine) -> None:
    world = World(clean_db)
    order_id = world.saga(charge_fails=True)  # CHARGE fails once, then waits for its retry
    workflow = WorkflowTimeline(sources=(saga_source(clean_db),))
    app = create_app(
        service_factory=lambda: SagaService(world.store, world.lookup, lambda m: DAGS.get(m, ())),
        timeline_factory=lambda: TimelineService(workflow, None),
    )
    root = FastAPI()
    root.mount(URL_PREFIX, app)
    logged_in(app)
    with TestClient(root) as http:
        page = http.get(f"/segue/orders/{order_id}")
    assert page.status_code == 200
    assert 'id="saga-diagram"' in page.text and 'class="saga-diagram"' in page.text
    assert re.search(r"<g class=\"[^\"]*current[^\"]*\" id=\"state-CHARGE\"", page.text)
    assert '<span class="step  current" title="">CHARGE</span>' in page.text
    assert "gateway unavailable" in page.text  # the failed try's error, on its transition
