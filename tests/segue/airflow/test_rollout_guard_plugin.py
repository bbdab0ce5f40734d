"""The guarded rollout on the Rollout page and in its REST API (TestClient, real PostgreSQL):
start a stored or pasted plan as the Airflow user, a chart per check after evaluations, abort and
resume; bad plans refused naming the field; changing needs DAG-run edit permission."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.rollout import current, history
from segue.rollout.guard import evaluate
from segue.rollout.guard_model import rollouts
from segue.rollout.plans import save_plan
from segue.rollout.tables import RouteDecisionRow
from tests.segue.airflow.test_rollout_plugin import FLAG, NOW, build, logged_in, page_token
from tests.segue.rollout.test_plan import plan


@pytest.fixture
def client(clean_db: Engine) -> Iterator[TestClient]:
    """Logged in as ``ada``, allowed to edit DAG runs; no figures provider."""
    root, app = build(clean_db, None)
    logged_in(app)
    with TestClient(root, base_url="http://testserver") as http:
        yield http


COUNT = (
    "SELECT CAST(COUNT(*) AS FLOAT) AS value, COUNT(*) AS sample FROM route_decisions "
    "WHERE flag_name = :flag AND path = :path AND decided_at >= :since AND decided_at < :until"
)


def counting_plan(**changes: object) -> dict[str, object]:
    check = {"name": "orders", "query": COUNT, "comparison": "absolute", "max": 3,
             "min_sample": 1, "failure_limit": 2}  # fmt: skip
    return plan(checks=[check], interval_seconds=10, **changes)


def routed(engine: Engine, path: str, n: int, when: object) -> None:
    with Session(engine) as session:
        for index in range(n):
            session.add(RouteDecisionRow(subject_id=f"{path}-{when}-{index}", flag_name="route",
                path=path, flag_version=1, bucket=1, reason="t", decided_at=when))  # fmt: skip
        session.commit()


def test_start_a_stored_plan_from_the_page_then_see_a_chart_per_check_and_abort(
    clean_db: Engine, client: TestClient
) -> None:
    with Session(clean_db) as session:
        save_plan(session, counting_plan(), "make run", "example", FLAG)
        session.commit()
    page = client.get("/segue/rollout").text
    assert 'id="guarded-none"' in page and '<option value="events-rollout"' in page
    shown = re.search(r'<details class="stored-plan" data-plan="events-rollout">.*?</details>',
                      page, re.S)  # fmt: skip
    assert shown and "saved by make run" in shown.group(0)
    assert "&#34;max&#34;: 3.0" in shown.group(0)  # the plan itself, as JSON
    start = client.post("/segue/rollout/guarded/start", follow_redirects=False,
        data={"csrf_token": page_token(client), "plan_name": "events-rollout"})  # fmt: skip
    assert start.status_code == 303, start.text
    with Session(clean_db) as session:
        [state] = rollouts(session, "route")
        assert state.started_by == "ada" and state.weight == 10
        assert current(session, FLAG).definition.weights == {"dag": 90, "events": 10}
    for second, events in ((10, 1), (20, 5)):  # a pass, then a failure (5 > max 3)
        routed(clean_db, "events", events, NOW + timedelta(seconds=second - 5))
        with Session(clean_db) as session:
            evaluate(session, actor="controller", now=NOW + timedelta(seconds=second))
            session.commit()
    page = client.get("/segue/rollout").text
    assert f'data-rollout="{state.id}" data-state="running"' in page
    assert "holding, failing: orders: candidate 6 over 6 &gt; 3 (1 of limit 2)" in page
    chart = re.search(r'<svg class="check-chart" data-check="orders".*?</svg>', page, re.S)
    assert chart, "a chart for the check"
    assert re.findall(r'data-outcome="(\w+)"', chart.group(0)) == ["pass", "fail"]
    assert 'class="limit"' in chart.group(0) and ">10%</text>" in chart.group(0)
    assert 'id="start-form"' not in page  # one rollout at a time
    abort = client.post(f"/segue/rollout/guarded/{state.id}/abort", follow_redirects=False,
        data={"csrf_token": page_token(client), "abort_reason": "seen enough"})  # fmt: skip
    assert abort.status_code == 303
    with Session(clean_db) as session:
        last = history(session, FLAG)[-1]
    assert last.changed_by == "ada" and last.reason.endswith("seen enough")
    assert last.new.killed


def test_a_pasted_bad_plan_is_refused_on_the_page_naming_the_field(
    clean_db: Engine, client: TestClient
) -> None:
    bad = yaml.safe_dump(counting_plan(steps=[{"weight": 10, "bake_seconds": 1},
                                              {"weight": 5, "bake_seconds": 1}]))  # fmt: skip
    page = client.post("/segue/rollout/guarded/start",
        data={"csrf_token": page_token(client), "plan_name": "", "plan_text": bad})  # fmt: skip
    assert page.status_code == 422
    assert 'data-field="steps[1].weight"' in page.text and "does not rise" in page.text
    with Session(clean_db) as session:
        assert rollouts(session, "route") == [] and current(session, FLAG).version == 0


def test_api_starts_reads_and_aborts_as_the_airflow_user(
    clean_db: Engine, client: TestClient
) -> None:
    started = client.post("/segue/api/rollout/guarded", json={"plan": counting_plan()})
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    assert (started.json()["state"], started.json()["weight"]) == ("running", 10)
    again = client.post("/segue/api/rollout/guarded", json={"plan": counting_plan()})
    assert again.status_code == 422 and again.json()["field"] == "flag"
    bad = client.post("/segue/api/rollout/guarded", json={"plan": counting_plan(candidate="x")})
    assert bad.status_code == 422 and bad.json()["field"] == "candidate"
    status = client.get("/segue/api/rollout/guarded").json()
    assert [r["id"] for r in status["rollouts"]] == [rollout_id]
    assert [p["name"] for p in status["plans"]] == ["events-rollout"]
    no_reason = client.post(f"/segue/api/rollout/guarded/{rollout_id}/abort", json={})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    aborted = client.post(f"/segue/api/rollout/guarded/{rollout_id}/abort",
                          json={"reason": "api says stop"})  # fmt: skip
    assert aborted.status_code == 200 and "api says stop" in aborted.json()["done"]
    with Session(clean_db) as session:
        assert current(session, FLAG).changed_by == "ada"


def test_a_viewer_reads_the_guarded_rollout_but_cannot_start_or_abort(clean_db: Engine) -> None:
    root, app = build(clean_db, None)
    logged_in(app, "viewer", may_edit=False)
    with TestClient(root) as http:
        assert http.get("/segue/api/rollout/guarded").status_code == 200
        refused = http.post("/segue/api/rollout/guarded", json={"plan": counting_plan()})
        assert refused.status_code == 403
        assert http.post("/segue/api/rollout/guarded/1/abort", json={"reason": "x"}).status_code \
            == 403  # fmt: skip
    with Session(clean_db) as session:
        assert rollouts(session, "route") == []
