"""Mirroring at the front door: which new orders get a shadow, and that a shadow never gets in
the real order's way."""

from __future__ import annotations

from sqlalchemy import select

from include.payments.events import PAYMENT_EVENTS, OrderPlaced, OrderRouted
from include.payments.shadow import ShadowOrderRow, shadow_id
from include.services.front_door import PAYMENT_FLAG, flag_router, route_everything_to
from include.services.shadow_mirror import ShadowMirror, shadow_placed_id
from segue.bus.outbox import OutboxRow
from segue.events.amqp import from_amqp
from segue.rollout import decision_of, set_split
from segue.rollout.shadow import ShadowSetting, set_shadow
from segue.store.engine import session_scope
from tests.conftest import intake_api


def switch_on(engine, percent: int = 100) -> None:
    with session_scope(engine) as session:
        set_shadow(session, PAYMENT_FLAG, path="events", percent=percent, actor="t", reason="test")


def front_door(engine, gateway, mirror=None):
    mirror = mirror or ShadowMirror.over(engine, PAYMENT_FLAG.name)
    return intake_api(engine, gateway, route=flag_router(), mirror=mirror), mirror


def queued(engine) -> list:
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        types = PAYMENT_EVENTS
        return [from_amqp(r.body, r.headers, r.properties["content_type"], types) for r in rows]


def shadows(engine) -> dict[str, ShadowOrderRow]:
    with session_scope(engine) as session:
        return {row.order_id: row for row in session.scalars(select(ShadowOrderRow))}


def test_a_mirrored_order_queues_its_shadow_with_the_real_one(clean_db, gateway, order_data):
    route_everything_to(clean_db, "dag", actor="t", reason="baseline")
    switch_on(clean_db)
    api, mirror = front_door(clean_db, gateway)
    data = order_data()
    for _ in range(2):  # placed again: still one shadow
        assert api.post("/orders", json=data).status_code == 202
    routed, placed = queued(clean_db)
    assert routed.type == OrderRouted.event_type and routed.subject == data["order_id"]
    assert placed.type == OrderPlaced.event_type
    assert placed.subject == placed.data.order.order_id == shadow_id(data["order_id"])
    assert placed.id == shadow_placed_id(placed.subject)
    assert placed.source == routed.source == "intake"  # the intake's relay sends only its own
    row = shadows(clean_db)[data["order_id"]]
    assert (row.real_path, row.shadow_path, row.setting_version) == ("dag", "events", 1)
    assert (mirror.placed, mirror.failed) == (1, 0)


def test_the_share_is_sticky_by_the_splits_bucket(clean_db, gateway, order_data):
    with session_scope(clean_db) as session:
        set_split(
            session,
            PAYMENT_FLAG,
            {"weights": {"dag": 80, "events": 20}, "baseline": "dag"},
            "t",
            "split",
        )
    switch_on(clean_db, percent=50)
    api, _ = front_door(clean_db, gateway)
    ids = [order_data()["order_id"] for _ in range(40)]
    for order_id in ids:
        assert api.post("/orders", json=order_data(order_id=order_id)).status_code == 202
    with session_scope(clean_db) as session:
        decisions = {order_id: decision_of(session, order_id) for order_id in ids}
    expected = {
        order_id
        for order_id, decision in decisions.items()
        if decision.path != "events" and decision.bucket < 5000
    }
    assert set(shadows(clean_db)) == expected and expected  # none on the candidate itself


def test_switched_off_nothing_is_mirrored(clean_db, gateway, order_data):
    switch_on(clean_db)
    with session_scope(clean_db) as session:
        set_shadow(session, PAYMENT_FLAG, path=None, percent=0, actor="t", reason="off")
    api, _ = front_door(clean_db, gateway)
    assert api.post("/orders", json=order_data()).status_code == 202
    assert shadows(clean_db) == {} and len(queued(clean_db)) == 1


class BrokenSwitch:
    """A switch whose setting names a path no shadow can run on: placing fails."""

    def current(self) -> ShadowSetting:
        return ShadowSetting(flag_name=PAYMENT_FLAG.name, version=9, path="saga", percent=100)


def test_a_shadow_that_cannot_be_placed_is_counted_and_the_real_order_goes(
    clean_db, gateway, order_data, caplog
):
    api, mirror = front_door(clean_db, gateway, ShadowMirror(BrokenSwitch()))  # type: ignore[arg-type]
    data = order_data()
    response = api.post("/orders", json=data)
    assert response.status_code == 202 and response.json()["path"] == "dag"
    assert [event.subject for event in queued(clean_db)] == [data["order_id"]]
    assert shadows(clean_db) == {}
    assert (mirror.placed, mirror.failed) == (0, 1)
    assert "shadow not placed; the real order goes on" in caplog.text


def test_real_order_ids_in_the_shadow_namespace_are_refused(clean_db, gateway, order_data):
    api, _ = front_door(clean_db, gateway)
    response = api.post("/orders", json=order_data(order_id="shadow.ord-1"))
    assert response.status_code == 422 and "order_id" in response.json()["detail"]
    assert queued(clean_db) == []
