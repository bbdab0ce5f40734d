"""The Rollout page's shadow section: the switch in force and the comparison, with each
mismatch's both values; a missing or failing provider leaves the rest of the page working."""

from __future__ import annotations

import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from segue.airflow.plugin import rollout_shadow
from segue.rollout.shadow import Observation, Pair, set_shadow
from tests.segue.airflow.test_rollout_plugin import FLAG, build, logged_in

DONE = Observation(
    outcome="completed", amount_charged=Decimal("49.99"), items_reserved=("SKU-MUG x2",),
    latency_ms=1200.0,
)  # fmt: skip


def pairs(session: Session, limit: int) -> list[Pair]:
    """Two mirrored orders: one matching, one whose shadow failed validation."""
    refused = Observation(outcome="failed", reason="invalid", latency_ms=30.0)
    return [
        Pair(
            subject_id=f"ord-{name}",
            real_path="dag",
            shadow_id=f"shadow.ord-{name}",
            shadow_path="events",
            real=DONE,
            shadow=shadow,
        )
        for name, shadow in (("same", DONE), ("diff", refused))
    ]


def broken(session: Session, limit: int) -> list[Pair]:
    raise RuntimeError("observations unavailable")


def page(clean_db, monkeypatch, provider: str | None) -> str:
    monkeypatch.setattr(
        rollout_shadow, "get_settings", lambda: SimpleNamespace(shadow_pairs=provider)
    )
    root, app = build(clean_db, None)
    logged_in(app)
    with TestClient(root, base_url="http://testserver") as http:
        response = http.get("/segue/rollout")
    assert response.status_code == 200, response.text
    return response.text


@pytest.fixture
def shadow_on(clean_db) -> None:
    with Session(clean_db) as session:
        set_shadow(session, FLAG, path="events", percent=25, actor="grace", reason="compare")
        session.commit()


def test_the_section_lists_mismatches_with_both_values(clean_db, monkeypatch, shadow_on):
    html = page(clean_db, monkeypatch, f"{__name__}:pairs")
    assert re.search(r'id="shadow-state"><span class="badge running">ON</span> 25%', html)
    assert "grace" in html and "compare" in html
    assert 'id="shadow-mismatching">1<' in html
    row = re.search(r'<tr data-order="ord-diff" data-field="outcome">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
    assert cells == ["ord-diff", "outcome", "completed", "failed"]
    assert 'data-field="amount_charged"' in html and "49.99" in html
    assert 'data-order="ord-same"' not in html


def test_without_a_provider_or_with_a_failing_one_the_page_still_works(clean_db, monkeypatch):
    html = page(clean_db, monkeypatch, None)
    assert 'id="shadow-not-configured"' in html and "off" in html
    html = page(clean_db, monkeypatch, f"{__name__}:broken")
    assert "observations unavailable" in html and 'id="weights"' in html
