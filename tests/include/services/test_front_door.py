"""The front door routes by the ``route`` flag: decisions stored with the order, sticky, audited.

In process through the intake's HTTP app (``flag_router``) over the real business store and the
real gateway; what the decisions say is read back from ``route_decisions`` and ``order_routes``.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from include.payments.routing import OrderRouteRow
from include.payments.settings import PaymentSettings
from include.services.front_door import PAYMENT_FLAG, flag_router, route_everything_to
from include.services.intake_http import router_for
from segue.rollout import kill, set_split
from segue.rollout.tables import RouteDecisionRow
from segue.store.engine import session_scope
from tests.conftest import intake_api


def decisions(engine) -> dict[str, tuple[str, int]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                RouteDecisionRow.subject_id, RouteDecisionRow.path, RouteDecisionRow.flag_version
            )
        )
        return {subject: (path, version) for subject, path, version in rows}


def routes(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return dict(session.execute(select(OrderRouteRow.order_id, OrderRouteRow.path)).all())


def test_the_default_sends_every_order_to_the_baseline_dag(clean_db, gateway, order_data):
    time.sleep(0.3)  # no version left cached from an earlier test's split (emptied tables)
    api = intake_api(clean_db, gateway, route=flag_router())
    order = order_data()
    response = api.post("/orders", json=order)
    assert response.status_code == 202, response.text
    assert response.json()["path"] == "dag"
    assert decisions(clean_db) == {order["order_id"]: ("dag", 0)}  # version 0: the default


def test_a_30_percent_split_is_followed_stored_and_sticky(clean_db, gateway, order_data):
    with session_scope(clean_db) as session:
        version = set_split(
            session,
            PAYMENT_FLAG,
            {"weights": {"dag": 70, "events": 30}, "baseline": "dag"},
            "ada",
            "canary",
        ).version
    time.sleep(0.3)  # a change reaches every process within the provider's 0.25 s poll
    api = intake_api(clean_db, gateway, route=flag_router())
    orders = [order_data() for _ in range(300)]
    paths = {order["order_id"]: api.post("/orders", json=order).json()["path"] for order in orders}
    share = Counter(paths.values())
    assert set(share) == {"dag", "events"}
    assert 0.20 < share["events"] / len(orders) < 0.40, share
    assert decisions(clean_db) == {oid: (path, version) for oid, path in paths.items()}
    assert routes(clean_db) == paths, "the order's path is the decision taken when accepted"

    route_everything_to(clean_db, "events", actor="ada", reason="all in")
    time.sleep(0.3)
    again = {o["order_id"]: api.post("/orders", json=o).json()["path"] for o in orders[:50]}
    assert again == {oid: paths[oid] for oid in again}, "re-posting keeps the first path"
    assert api.post("/orders", json=order_data()).json()["path"] == "events"


def test_the_kill_switch_sends_new_orders_to_dag_and_keeps_the_old_ones(
    clean_db, gateway, order_data
):
    route_everything_to(clean_db, "events", actor="ada", reason="all in")
    time.sleep(0.3)
    api = intake_api(clean_db, gateway, route=flag_router())
    before = order_data()
    assert api.post("/orders", json=before).json()["path"] == "events"
    with session_scope(clean_db) as session:
        kill(session, PAYMENT_FLAG, "ops", "incident 42")
    # Within one second every process sees it (the provider polls at most every 0.25 s).
    deadline = time.monotonic() + 1.0
    while api.post("/orders", json=order_data()).json()["path"] != "dag":
        assert time.monotonic() < deadline, "the kill switch took more than a second"
    assert api.post("/orders", json=before).json()["path"] == "events", "in flight stays"


def test_the_intake_router_setting_picks_the_flag_or_the_event_path_without_a_decision(
    clean_db, gateway, order_data, monkeypatch
):
    route_everything_to(clean_db, "dag", actor="ada", reason="all to the baseline")
    time.sleep(0.3)
    monkeypatch.setenv("SEGUE_INTAKE_ROUTER", "events")
    unrouted = intake_api(clean_db, gateway, route=router_for(PaymentSettings().intake_router))
    fixed = order_data()
    assert unrouted.post("/orders", json=fixed).json()["path"] == "events"
    assert decisions(clean_db) == {}, "no flag evaluated, no decision recorded"
    assert routes(clean_db) == {fixed["order_id"]: "events"}

    monkeypatch.delenv("SEGUE_INTAKE_ROUTER")
    assert PaymentSettings().intake_router == "flag"  # the default
    routed = intake_api(clean_db, gateway, route=router_for(PaymentSettings().intake_router))
    flagged = order_data()
    assert routed.post("/orders", json=flagged).json()["path"] == "dag"
    assert set(decisions(clean_db)) == {flagged["order_id"]}

    monkeypatch.setenv("SEGUE_INTAKE_ROUTER", "dag")
    with pytest.raises(ValidationError, match="intake_router"):
        PaymentSettings()
    with pytest.raises(ValueError, match="intake_router"):
        router_for("dag")
