"""Report pages in the Segue plugin: the Operations page of the payment workflow renders for a
logged-in user (TestClient, real PostgreSQL with a reconciliation run in it); anonymous users
are refused; a page's provider comes from configuration, so the plugin knows no workflow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from include.payments.deps import PaymentDeps
from include.payments.operations_page import operations_page
from include.payments.reconciliation import reconcile_window
from include.workflow import REPORT_PAGES
from segue.airflow.plugin import nav_views
from segue.airflow.plugin.app import URL_PREFIX, create_app
from segue.airflow.plugin.security import get_user
from segue.reports import ReportPage, ReportTable, check_slugs, load_provider
from tests.conftest import GOOD_TOKEN


def mounted(**pages: object) -> tuple[FastAPI, FastAPI]:
    app = create_app(service_factory=lambda: None, report_pages=pages)  # type: ignore[arg-type]
    root = FastAPI()
    root.mount(URL_PREFIX, app)
    return root, app


@pytest.fixture
def operations(clean_db: Engine) -> Iterator[TestClient]:
    """Logged in as ``ada``; the Operations page over the test store."""
    root, app = mounted(operations=lambda: operations_page(clean_db))
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="ada", role="admin")
    with TestClient(root, base_url="http://testserver") as http:
        yield http


def test_the_operations_page_shows_the_latest_run_and_its_findings(
    deps: PaymentDeps, operations: TestClient
) -> None:
    now = datetime.now(UTC)
    ghost = deps.gateway.charge(
        idempotency_key="ghost-ui:charge",
        amount=Decimal("12.50"),
        currency="USD",
        payment_method=GOOD_TOKEN,
        reference="ord-ghost-ui",
    )
    window = (now - timedelta(minutes=5), now + timedelta(minutes=5))
    reconcile_window(deps, "run-ui-1", *window, grace=timedelta(0))

    page = operations.get("/segue/reports/operations")

    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "Run run-ui-1" in page.text
    assert "charge_without_order" in page.text and "refunded" in page.text
    assert ghost.id in page.text and "ord-ghost-ui" in page.text
    assert "signed in as <strong>ada</strong>" in page.text
    assert 'href="/segue/reports/operations"' in page.text  # the header links the pages
    data = operations.get("/segue/api/reports/operations").json()
    [section] = data["sections"]
    assert section["heading"] == "Run run-ui-1"
    assert section["status"] == "completed"
    assert section["tables"][0]["rows"][0][:2] == ["charge_without_order", "refunded"]


def test_an_empty_store_says_no_run_happened_yet(operations: TestClient) -> None:
    page = operations.get("/segue/reports/operations")
    assert page.status_code == 200
    assert "No reconciliation has run yet" in page.text


def test_report_pages_refuse_anonymous_users_and_unknown_slugs(clean_db: Engine) -> None:
    root, app = mounted(operations=lambda: operations_page(clean_db))
    with TestClient(root) as anonymous:
        assert anonymous.get("/segue/reports/operations").status_code == 401
        assert anonymous.get("/segue/api/reports/operations").status_code == 401
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="ada", role="admin")
    with TestClient(root) as http:
        missing = http.get("/segue/api/reports/nope")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no report page 'nope'"}


def test_a_page_named_by_import_path_and_a_failing_provider() -> None:
    assert load_provider(REPORT_PAGES["operations"]) is operations_page  # as configured
    root, app = mounted(
        path="segue.reports:ReportPage",  # a callable by path, built without arguments: fails
        broken=lambda: 1 / 0,
        table=lambda: ReportPage(title="T", sections=()),
    )
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="ada", role="admin")
    with TestClient(root) as http:
        assert http.get("/segue/api/reports/table").json()["title"] == "T"
        failed = http.get("/segue/api/reports/broken")
        assert failed.status_code == 500
        assert "report page 'broken' failed: division by zero" in failed.json()["detail"]
        by_path = http.get("/segue/api/reports/path")
        assert by_path.status_code == 500
        assert "title" in by_path.json()["detail"]  # pydantic names the missing field


def test_navigation_has_sagas_rollout_then_each_report_page() -> None:
    views = nav_views(list(check_slugs(REPORT_PAGES)))
    assert [(view["name"], view["href"]) for view in views] == [
        ("Sagas", "/segue/sagas"),
        ("Rollout", "/segue/rollout"),
        ("Operations", "/segue/reports/operations"),
    ]
    with pytest.raises(ValueError, match="slug 'Bad Slug'"):
        check_slugs({"Bad Slug": "x:y"})


def test_a_table_row_must_fit_its_columns() -> None:
    with pytest.raises(ValueError, match=r"rows\[0\] has 1 cells for 2 columns"):
        ReportTable(columns=("a", "b"), rows=(("only",),))
