"""The Event path page and its JSON twin over a real RabbitMQ vhost and real PostgreSQL.

Only Airflow's auth dependencies are overridden (see ``test_timeline_plugin``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from segue.airflow.plugin.app import URL_PREFIX, create_app
from segue.bus.overview import read_overview
from tests.segue.airflow.test_timeline_plugin import logged_in
from tests.segue.bus.test_overview import declare_and_fill, outbox_rows


@pytest.fixture
def apps(fresh_amqp_url: str, clean_db: Engine) -> tuple[FastAPI, FastAPI]:
    declare_and_fill(fresh_amqp_url)
    outbox_rows(clean_db, "alpha", 2, timedelta(seconds=12))
    app = create_app(
        service_factory=lambda: None,  # type: ignore[arg-type,return-value]
        bus_overview=lambda: read_overview(
            amqp_url=fresh_amqp_url, engine=clean_db, services=["alpha", "beta", "ghost"]
        ),
    )
    root = FastAPI()
    root.mount(URL_PREFIX, app)
    return root, app


@pytest.fixture
def client(apps: tuple[FastAPI, FastAPI]) -> Iterator[TestClient]:
    root, app = apps
    logged_in(app)
    with TestClient(root, base_url="http://testserver") as http:
        yield http


def test_the_page_shows_each_services_lag_parked_and_outbox(client: TestClient) -> None:
    page = client.get("/segue/event-path")
    assert page.status_code == 200
    assert 'href="/segue/event-path"' in page.text  # in the nav of every page
    assert '<meta http-equiv="refresh" content="5">' in page.text
    alpha = page.text.split('data-service="alpha"')[1].split("</tr>")[0]
    assert '<td class="mono lag">3</td>' in alpha
    assert '1 <span class="badge failed">parked</span>' in alpha
    assert '<td class="mono outbox">2</td>' in alpha
    assert 'class="service attention"' in page.text.split('data-service="alpha"')[0][-40:]
    assert 'id="missing-parts"' in page.text and "queue segue.ghost: not declared" in page.text


def test_the_api_answers_the_same_as_json(client: TestClient) -> None:
    data = client.get("/segue/api/event-path").json()
    alpha = next(row for row in data["services"] if row["service"] == "alpha")
    assert alpha["lag"] == {"queue": "segue.alpha", "ready": 3, "consumers": 0}
    assert alpha["parked"]["ready"] == 1 and alpha["outbox_pending"] == 2
    assert "queue segue.ghost: not declared" in data["missing"]


def test_anonymous_and_unentitled_users_are_refused(apps: tuple[FastAPI, FastAPI]) -> None:
    root, app = apps
    with TestClient(root) as anonymous:
        assert anonymous.get("/segue/event-path").status_code == 401
        assert anonymous.get("/segue/api/event-path").status_code == 401
    logged_in(app, readable="payments")  # one DAG only
    with TestClient(root) as http:
        assert http.get("/segue/event-path").status_code == 403
        assert http.get("/segue/api/event-path").status_code == 403
