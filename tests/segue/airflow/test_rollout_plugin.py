"""The Rollout page and its REST API, through FastAPI's TestClient on the real PostgreSQL.

As in test_saga_plugin_api.py only Airflow's auth dependencies are overridden (``get_user``,
``may_edit_dag_runs``); the flag versions are written by the real ``segue.rollout`` store. The
figures come from a test provider that records how it was called: the page is the library's,
the figures are the workflow's (tests/include/payments/test_rollout_figures.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.airflow.plugin.access import dag_authorizer
from segue.airflow.plugin.app import URL_PREFIX, create_app
from segue.airflow.plugin.rollout_service import RolloutService
from segue.airflow.plugin.security import get_user, may_edit_dag_runs
from segue.rollout import FlagSpec, current, history, set_split
from segue.rollout.figures import PathFigures

FLAG = FlagSpec(name="route", paths=("dag", "saga", "hybrid", "events"), baseline="dag")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Figures:
    """A figures provider that remembers its calls and answers known numbers for two paths."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, session: Session, *, since: datetime, until: datetime, stuck_after: timedelta
    ) -> dict[str, PathFigures]:
        self.calls.append({"since": since, "until": until, "stuck_after": stuck_after})
        return {
            "dag": PathFigures(
                path="dag",
                accepted=41,
                completed=30,
                failed_business=5,
                failed_technical=4,
                in_flight=2,
                p50_ms=1234.0,
                p95_ms=5678.0,
                p99_ms=9012.0,
                measured="test provider",
            ),
            "events": PathFigures(
                path="events",
                accepted=7,
                completed=7,
                failed_business=0,
                failed_technical=0,
                in_flight=0,
                p50_ms=81.0,
                p95_ms=95.0,
                p99_ms=99.0,
                measured="test provider",
            ),
        }


def build(engine: Engine, figures: Figures | None) -> tuple[FastAPI, FastAPI]:
    service = RolloutService(
        engine, lambda: FLAG, figures, stuck_after=timedelta(minutes=7), clock=lambda: NOW
    )
    app = create_app(service_factory=lambda: None, rollout_factory=lambda: service)  # type: ignore[arg-type,return-value]
    root = FastAPI()
    root.mount(URL_PREFIX, app)
    return root, app


@pytest.fixture
def figures() -> Figures:
    return Figures()


@pytest.fixture
def apps(clean_db: Engine, figures: Figures) -> tuple[FastAPI, FastAPI]:
    return build(clean_db, figures)


def logged_in(app: FastAPI, name: str = "ada", *, may_edit: bool = True) -> None:
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username=name, role="admin")
    if may_edit:
        app.dependency_overrides[may_edit_dag_runs] = lambda: None
    else:

        def forbidden() -> None:
            raise HTTPException(403, "Forbidden")

        app.dependency_overrides[may_edit_dag_runs] = forbidden


@pytest.fixture
def client(apps: tuple[FastAPI, FastAPI]) -> Iterator[TestClient]:
    """Logged in as ``ada``, allowed to edit DAG runs."""
    root, app = apps
    logged_in(app)
    with TestClient(root, base_url="http://testserver") as http:
        yield http


def version_now(engine: Engine) -> int:
    with Session(engine) as session:
        return current(session, FLAG).version


def seed_versions(engine: Engine) -> None:
    with Session(engine) as session:
        set_split(session, FLAG, {"weights": {"dag": 90, "events": 10}, "baseline": "dag"},
                  "grace", "first canary")  # fmt: skip
        set_split(
            session,
            FLAG,
            {
                "weights": {"dag": 70, "saga": 5, "events": 25},
                "baseline": "dag",
                "sticky_key": "customer_email",
                "rules": [{"attribute": "amount", "operator": ">", "value": "500", "path": "dag"}],
            },
            "linus",
            "more events, big orders stay",
        )
        session.commit()


def page_token(client: TestClient) -> str:
    page = client.get("/segue/rollout")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the forms carry a CSRF token"
    return match.group(1)


def post_split(client: TestClient, **fields: str) -> Any:
    data = {"csrf_token": page_token(client), **fields}
    return client.post("/segue/rollout/split", data=data, follow_redirects=False)


def cells(html: str, path: str) -> dict[str, str]:
    row = re.search(rf'<tr data-path="{path}" title="[^"]*">(.*?)</tr>', html, re.S)
    assert row, f"no figures row for {path}"
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', row.group(1)))


# --- the page ------------------------------------------------------------------------------


def test_page_shows_the_split_its_history_and_the_figures(clean_db, client, figures):
    seed_versions(clean_db)
    page = client.get("/segue/rollout", params={"window": "15m"})
    assert page.status_code == 200
    html = page.text
    assert '<strong id="version">2</strong> by linus' in html
    shares = dict(re.findall(r'id="share-(\w+)">(\d+)%', html))
    assert shares == {"dag": "70", "saga": "5", "hybrid": "0", "events": "25"}
    assert '<code id="sticky-key">customer_email</code>' in html
    assert "amount&gt;500=dag" in html
    assert '<span class="badge succeeded">off</span>' in html
    history_rows = re.findall(r'<tr data-version="(\d+)">(.*?)</tr>', html, re.S)
    assert [version for version, _ in history_rows] == ["2", "1"]  # newest first
    newest, first = history_rows[0][1], history_rows[1][1]
    assert "linus" in newest and "more events, big orders stay" in newest
    assert (
        "weights.events: 10 -&gt; 25" in newest
        and "sticky_key: order_id -&gt; customer_email" in newest
    )
    assert "grace" in first and "weights.dag: 100 -&gt; 90" in first
    assert cells(html, "dag") == {
        "accepted": "41",
        "completed": "30",
        "failed_business": "5",
        "failed_technical": "4",
        "in_flight": "2",
        "p50_ms": "1234 ms",
        "p95_ms": "5678 ms",
        "p99_ms": "9012 ms",
    }
    assert cells(html, "saga")["accepted"] == "0"  # a path with nothing routed is still shown
    assert cells(html, "saga")["p50_ms"] == "—"
    assert figures.calls == [
        {"since": NOW - timedelta(minutes=15), "until": NOW, "stuck_after": timedelta(minutes=7)}
    ]
    assert '<a href="/segue/rollout?window=24h">24h</a>' in html


def test_page_without_a_figures_provider_shows_the_split_and_says_so(clean_db):
    seed_versions(clean_db)
    root, app = build(clean_db, None)
    logged_in(app)
    with TestClient(root) as http:
        page = http.get("/segue/rollout")
        status = http.get("/segue/api/rollout").json()
    assert page.status_code == 200
    assert 'id="figures-not-configured"' in page.text and 'id="figures"' not in page.text
    assert '<strong id="version">2</strong>' in page.text
    assert status["figures"] is None and status["figures_configured"] is False
    assert status["version"]["version"] == 2


def test_an_unknown_window_is_refused_naming_the_parameter(client, figures):
    page = client.get("/segue/rollout", params={"window": "7d"})
    assert page.status_code == 422
    assert 'data-field="window"' in page.text and "7d" in page.text
    api = client.get("/segue/api/rollout", params={"window": "7d"})
    assert api.status_code == 422 and api.json()["field"] == "window"


# --- changes through the forms -------------------------------------------------------------


def test_the_split_form_writes_a_version_as_the_airflow_user(clean_db, client):
    response = post_split(
        client,
        weight_dag="90",
        weight_saga="",
        weight_hybrid="0",
        weight_events="10",
        sticky_key="order_id",
        reason="canary: 10% to events",
        expected_version="0",
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/segue/rollout"
    page = client.get("/segue/rollout").text
    assert 'id="flash"' in page and "Version 1 by ada" in page
    assert '<strong id="version">1</strong> by ada' in page
    with Session(clean_db) as session:
        (change,) = history(session, FLAG)
    assert (change.changed_by, change.reason) == ("ada", "canary: 10% to events")
    assert change.new.weights == {"dag": 90, "events": 10} and not change.new.killed


def test_the_kill_switch_sends_everything_to_the_baseline(clean_db, client):
    seed_versions(clean_db)
    token = page_token(client)
    response = client.post(
        "/segue/rollout/kill",
        data={"csrf_token": token, "kill_reason": "events path erroring", "expected_version": "2"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = client.get("/segue/rollout").text
    assert '<span class="badge failed">ON</span>' in page
    shares = dict(re.findall(r'id="share-(\w+)">(\d+)%', page))
    assert shares == {"dag": "100", "saga": "0", "hybrid": "0", "events": "0"}
    with Session(clean_db) as session:
        version = current(session, FLAG)
    assert (version.version, version.changed_by, version.definition.killed) == (3, "ada", True)
    assert version.reason == "events path erroring"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"weight_dag": "90", "weight_events": "5", "reason": "sum"}, "weights"),
        ({"weight_dag": "90", "weight_events": "ten", "reason": "typo"}, "weights.events"),
        ({"weight_dag": "90", "weight_events": "10", "reason": "  "}, "reason"),
        ({"weight_dag": "90", "weight_events": "10", "sticky_key": "no spaces", "reason": "k"},
         "sticky_key"),
    ],
    ids=["weights-sum", "not-a-number", "no-reason", "bad-sticky-key"],
)  # fmt: skip
def test_the_form_refuses_bad_input_naming_the_field_and_changes_nothing(
    clean_db, client, fields, field
):
    seed_versions(clean_db)
    response = post_split(client, **fields)
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.text and "nothing changed" in response.text
    assert f'value="{fields["weight_events"]}"' in response.text  # the form as it was sent
    assert version_now(clean_db) == 2


def test_a_form_based_on_an_old_version_is_refused_with_409(clean_db, client):
    seed_versions(clean_db)
    response = post_split(
        client, weight_dag="50", weight_events="50", reason="stale", expected_version="1"
    )
    assert response.status_code == 409 and 'data-field="version"' in response.text
    assert version_now(clean_db) == 2


def test_the_kill_switch_needs_a_reason(clean_db, client):
    seed_versions(clean_db)
    response = client.post(
        "/segue/rollout/kill", data={"csrf_token": page_token(client), "kill_reason": ""}
    )
    assert response.status_code == 422 and 'data-field="kill_reason"' in response.text
    assert version_now(clean_db) == 2


def test_forms_without_the_csrf_token_or_from_another_site_are_refused(clean_db, client):
    token = page_token(client)
    fields = {"weight_dag": "50", "weight_events": "50", "reason": "csrf"}
    assert client.post("/segue/rollout/split", data=fields).status_code == 403
    assert client.post("/segue/rollout/kill", data={"kill_reason": "csrf"}).status_code == 403
    cross = client.post(
        "/segue/rollout/split",
        data={**fields, "csrf_token": token},
        headers={"origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    assert version_now(clean_db) == 0


# --- the REST API --------------------------------------------------------------------------


def test_api_changes_the_split_and_kills_as_the_airflow_user(clean_db, client):
    put = client.put(
        "/segue/api/rollout/split",
        json={"weights": {"dag": 90, "events": 10}, "reason": "canary", "expected_version": 0},
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert (body["version"], body["changed_by"], body["reason"]) == (1, "ada", "canary")
    assert body["definition"]["weights"] == {"dag": 90, "events": 10}
    kill = client.post("/segue/api/rollout/kill", json={"reason": "errors", "expected_version": 1})
    assert kill.status_code == 200 and kill.json()["definition"]["killed"] is True
    status = client.get("/segue/api/rollout", params={"window": "24h"}).json()
    assert status["version"]["version"] == 2 and status["version"]["changed_by"] == "ada"
    assert status["flag"] == {"name": "route", "paths": list(FLAG.paths), "baseline": "dag"}
    assert status["window"] == "24h"
    assert status["since"] == (NOW - timedelta(hours=24)).isoformat()
    assert list(status["figures"]) == ["dag", "saga", "hybrid", "events"]
    assert status["figures"]["events"]["p99_ms"] == 99.0
    changes = client.get("/segue/api/rollout/history").json()["changes"]
    assert [(c["version"], c["changed_by"]) for c in changes] == [(2, "ada"), (1, "ada")]
    assert changes[0]["changes"] == ["killed: False -> True"]
    assert changes[1]["old"] is None and changes[1]["new"]["weights"] == {"dag": 90, "events": 10}


def test_api_put_keeps_what_it_does_not_name(clean_db, client):
    seed_versions(clean_db)
    put = client.put("/segue/api/rollout/split", json={"weights": {"dag": 100}, "reason": "back"})
    definition = put.json()["definition"]
    assert definition["sticky_key"] == "customer_email" and len(definition["rules"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weights": {"dag": 60, "events": 10}, "reason": "sum"}, "weights"),
        ({"weights": {"dag": 90, "lambda": 10}, "reason": "unknown"}, "weights.lambda"),
        ({"weights": {"dag": 90, "events": 10}}, "reason"),
        ({"weights": {"dag": 100}, "reason": "b", "baseline": "nope"}, "baseline"),
        ({"weights": {"dag": 100}, "reason": "r",
          "rules": [{"attribute": "amount", "operator": ">", "value": "lots", "path": "dag"}]},
         "rules[0].value"),
    ],
    ids=["sum", "unknown-path", "no-reason", "baseline", "rule-value"],
)  # fmt: skip
def test_api_refuses_bad_input_with_422_naming_the_field(clean_db, client, body, field):
    seed_versions(clean_db)
    response = client.put("/segue/api/rollout/split", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field and field in response.json()["detail"]
    assert version_now(clean_db) == 2


def test_api_refuses_a_malformed_body_naming_the_field(clean_db, client):
    response = client.put("/segue/api/rollout/split", json={"weight": {"dag": 100}, "reason": "x"})
    assert response.status_code == 422
    locations = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("body", "weights") in locations and ("body", "weight") in locations
    assert version_now(clean_db) == 0


def test_api_change_based_on_an_old_version_gets_409(clean_db, client):
    seed_versions(clean_db)
    stale = client.put(
        "/segue/api/rollout/split",
        json={"weights": {"dag": 100}, "reason": "stale", "expected_version": 1},
    )
    assert stale.status_code == 409 and stale.json()["field"] == "version"
    kill = client.post("/segue/api/rollout/kill", json={"reason": "stale", "expected_version": 0})
    assert kill.status_code == 409
    assert version_now(clean_db) == 2


def test_api_changes_with_the_cookie_must_be_same_site_json(clean_db, client):
    form = client.post("/segue/api/rollout/kill", data={"reason": "from a form"})
    assert form.status_code == 415
    cross = client.post(
        "/segue/api/rollout/kill", json={"reason": "x"}, headers={"origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    assert version_now(clean_db) == 0


# --- who may do what ------------------------------------------------------------------------


def test_a_user_without_dag_run_edit_permission_reads_but_cannot_change(clean_db, apps):
    seed_versions(clean_db)
    root, app = apps
    logged_in(app, "vera", may_edit=False)
    with TestClient(root) as viewer:
        page = viewer.get("/segue/rollout")
        assert page.status_code == 200 and "signed in as <strong>vera</strong>" in page.text
        assert viewer.get("/segue/api/rollout").status_code == 200
        assert viewer.get("/segue/api/rollout/history").status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        fields = {"csrf_token": token, "weight_dag": "50", "weight_events": "50", "reason": "v"}
        assert viewer.post("/segue/rollout/split", data=fields).status_code == 403
        kill = viewer.post("/segue/rollout/kill", data={"csrf_token": token, "kill_reason": "v"})
        assert kill.status_code == 403
        put = viewer.put("/segue/api/rollout/split", json={"weights": {"dag": 100}, "reason": "v"})
        assert put.status_code == 403
        assert viewer.post("/segue/api/rollout/kill", json={"reason": "v"}).status_code == 403
    assert version_now(clean_db) == 2


def test_anonymous_requests_are_refused_everywhere(clean_db, apps):
    root, _ = apps
    with TestClient(root) as anonymous:
        for path in ("/segue/rollout", "/segue/api/rollout", "/segue/api/rollout/history",
                     "/segue/api/openapi.json"):  # fmt: skip
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.post("/segue/rollout/kill", data={"kill_reason": "x"}).status_code == 401
        assert anonymous.post("/segue/api/rollout/kill", json={"reason": "x"}).status_code == 401
        put = anonymous.put("/segue/api/rollout/split", json={"weights": {"dag": 100}})
        assert put.status_code == 401
    assert version_now(clean_db) == 0


def test_openapi_describes_the_rollout_api_for_logged_in_users(client):
    document = client.get("/segue/api/openapi.json")
    assert document.status_code == 200
    spec = document.json()
    assert spec["servers"] == [{"url": "/segue"}]
    paths = spec["paths"]
    assert {"get"} <= set(paths["/api/rollout"]) and "put" in paths["/api/rollout/split"]
    assert "post" in paths["/api/rollout/kill"] and "get" in paths["/api/rollout/history"]
    assert "/api/sagas" in paths
    assert "SplitChange" in spec["components"]["schemas"]


def test_edit_rights_on_one_dag_do_not_change_the_split_through_a_dag_id_in_the_query(
    apps: tuple[FastAPI, FastAPI], clean_db: Engine
):
    """The split moves orders between every DAG's path: edit rights on one DAG are not enough,
    and ``?dag_id=<that DAG>`` (which Airflow's ``requires_access_dag`` would check instead of
    all DAGs) does not narrow the check. The real dependency, with the auth manager's decision
    replaced by one that allows edits of payment_pipeline's runs only."""
    root, app = apps
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="al", role="user")
    asked: list[tuple[str | None, str]] = []

    def only_pipeline(dag_id: str | None, method: str) -> bool:
        asked.append((dag_id, method))
        return method == "GET" or dag_id == "payment_pipeline"

    app.dependency_overrides[dag_authorizer] = lambda: only_pipeline
    body = {"weights": {"dag": 50, "events": 50}, "reason": "sneak"}
    with TestClient(root, base_url="http://testserver") as http:
        for query in ("", "?dag_id=payment_pipeline"):
            put = http.put(f"/segue/api/rollout/split{query}", json=body)
            assert put.status_code == 403, put.text
            assert "every DAG" in put.json()["detail"]
            kill = http.post(f"/segue/api/rollout/kill{query}", json={"reason": "sneak"})
            assert kill.status_code == 403, kill.text
    assert set(asked) == {(None, "PUT")}
    assert version_now(clean_db) == 0
