"""Shadow mode end to end in process: orders through the front door on the baseline (the
linear DAG's steps, as its tasks run them), their shadows through the event path's handlers,
then the comparator. Real PostgreSQL, the real gateway process, the real handlers."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from include.gateway.admin import stats as gateway_stats
from include.payments import pipeline
from include.payments.errors import InvalidOrder
from include.payments.events import PAYMENT_EVENTS, OrderPlaced, OrderRouted
from include.payments.shadow import ShadowReceiptRow, ShadowShippingNoticeRow, is_shadow
from include.payments.shadow_pairs import shadow_pairs
from include.payments.tables import ReceiptRow, ShippingNoticeRow
from include.services.front_door import PAYMENT_FLAG, flag_router, route_everything_to
from include.services.shadow_mirror import ShadowMirror
from include.services.validation import validation_service
from segue.bus.handlers import ServiceSpec
from segue.bus.outbox import OutboxRow
from segue.cli import CliContext, main
from segue.events.amqp import from_amqp
from segue.rollout.shadow import build_report, set_shadow, shadow_in_force
from segue.step_runner import StepAbandoned, run_step
from segue.store.engine import session_scope
from segue.testing import InMemoryBus
from tests.conftest import DECLINED_TOKEN, INSUFFICIENT_FUNDS_TOKEN, intake_api

DAG_STEPS = ("validate", "charge", "update_inventory", "send_receipt", "notify_shipping")


def run_on_dag(deps, order) -> None:
    """One order through ``payment_pipeline``'s five steps, dead-lettered as its tasks do."""
    data = order.model_dump(mode="json", exclude={"card_last4", "card_brand"})
    oid = order.order_id
    actions = {
        "validate": lambda: pipeline.validate(deps, data),
        "charge": lambda: pipeline.charge(deps, oid),
        "update_inventory": lambda: pipeline.update_inventory(deps, oid),
        "send_receipt": lambda: pipeline.send_receipt(deps, oid),
        "notify_shipping": lambda: pipeline.notify_shipping(deps, oid),
    }
    for step in DAG_STEPS:
        try:
            run_step(
                actions[step],
                engine=deps.engine,
                workflow="payment_pipeline",
                step=step,
                subject=oid,
                payload={},
                attempt=1,
                max_attempts=1,
                on_abandon=pipeline.fail_and_reconcile_on_abandon(deps, oid),
            )
        except StepAbandoned:
            return


def first_events(engine) -> tuple[list, list]:
    """The real orders' OrderRouted and the shadows' OrderPlaced, from the intake's outbox."""
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        events = [
            from_amqp(r.body, r.headers, r.properties["content_type"], PAYMENT_EVENTS) for r in rows
        ]
    real = [e for e in events if e.type == OrderRouted.event_type]
    shadows = [e for e in events if e.type == OrderPlaced.event_type and is_shadow(e.subject)]
    return real, shadows


def real_effects(store, gateway_url: str) -> dict[str, object]:
    live = gateway_stats(gateway_url)
    return {
        "stock": {sku: store.stock(sku) for sku in ("SKU-MUG", "SKU-TEE")},
        "receipts": store.count(ReceiptRow),
        "shipping_notices": store.count(ShippingNoticeRow),
        "live_ledger": (live["charges"], live["refunds"], live["requests"]),
    }


def place_mirrored(engine, gateway, bodies) -> None:
    route_everything_to(engine, "dag", actor="test", reason="the baseline")
    with session_scope(engine) as session:
        set_shadow(session, PAYMENT_FLAG, path="events", percent=100, actor="t", reason="test")
    api = intake_api(
        engine, gateway, route=flag_router(), mirror=ShadowMirror.over(engine, PAYMENT_FLAG.name)
    )
    for body in bodies:
        assert api.post("/orders", json=body).status_code == 202


def report_of(engine):
    with session_scope(engine) as session:
        return build_report(shadow_in_force(session, PAYMENT_FLAG.name), shadow_pairs(session, 100))


def test_a_healthy_shadow_run_matches_and_leaves_nothing_real_behind(
    clean_db, gateway, deps, bus, store, order_data, gateway_url, pg_url, capsys
):
    bodies = [order_data() for _ in range(3)] + [
        order_data(payment_method=DECLINED_TOKEN),
        order_data(payment_method=INSUFFICIENT_FUNDS_TOKEN),
        order_data(items=[{"sku": "SKU-NOPE", "quantity": 1}]),
    ]
    place_mirrored(clean_db, gateway, bodies)
    real, shadows = first_events(clean_db)
    assert len(real) == len(shadows) == 6
    for event in real:
        run_on_dag(deps, event.data.order)
    after_real = real_effects(store, gateway_url)
    assert after_real == {
        "stock": {"SKU-MUG": 100 - 6, "SKU-TEE": 100 - 3},
        "receipts": 3,
        "shipping_notices": 3,
        "live_ledger": ({"succeeded": 3, "declined": 2}, 0, 5),
    }
    for event in shadows:
        bus.run(event)
    assert real_effects(store, gateway_url) == after_real  # exactly as if no shadow ran
    assert store.count(ShadowReceiptRow) == store.count(ShadowShippingNoticeRow) == 3
    sandbox = httpx.get(f"{gateway_url}/stats", headers={"Gateway-Mode": "sandbox"}).json()
    assert sandbox["charges"] == {"succeeded": 3, "declined": 2}

    report = report_of(clean_db)
    assert (report.mirrored, report.compared, report.pending) == (6, 6, 0)
    assert report.mismatches == () and report.matching == 6
    assert (
        report.real.outcomes
        == report.shadow.outcomes
        == {
            "completed": 3,
            "failed:declined": 2,
            "failed:invalid": 1,
        }
    )
    assert report.real.amount_charged == report.shadow.amount_charged == Decimal("149.97")
    assert report.real.latency_p50_ms is not None and report.shadow.latency_p50_ms is not None

    context = CliContext(
        database_url=lambda: pg_url,
        registry=lambda: pytest.fail("no registry needed"),
        schemas_root=lambda: pytest.fail("no schemas needed"),
        rollout=lambda: PAYMENT_FLAG,
    )
    assert main(["rollout", "shadow-report"], context=context) == 0
    out = capsys.readouterr().out
    assert "mirrored 6  compared 6  matching 6  mismatching 0  pending 0" in out
    assert "MISMATCH" not in out


def stricter_validation(limit: Decimal) -> ServiceSpec:
    """The candidate with a validation rule changed for shadows only: amounts over ``limit``
    are refused (a deliberate difference the comparator must catch)."""
    real = validation_service()
    handle = real.handlers[OrderPlaced.event_type]

    def on_order_placed(ctx, event):
        order = event.order
        if is_shadow(order.order_id) and order.amount > limit:
            from include.payments import steps
            from include.payments.events import OrderInvalidated

            problem = InvalidOrder("amount", f"over {limit} (candidate rule)")
            steps.record_failed_order(ctx.session, order, str(problem))
            ctx.emit(OrderInvalidated(order_id=order.order_id, field="amount", reason="over"))
            return None
        return handle(ctx, event)

    return ServiceSpec(real.name, {OrderPlaced.event_type: on_order_placed}, real.registry)


def test_a_different_candidate_is_caught_naming_the_fields(
    clean_db, gateway, deps, services, store, order_data, pg_url, capsys
):
    services = {**services, "validation": stricter_validation(Decimal("100"))}
    bus = InMemoryBus(clean_db, services.values())
    big, small = order_data(amount="150.00"), order_data(amount="20.00")
    place_mirrored(clean_db, gateway, [big, small])
    real, shadows = first_events(clean_db)
    for event in real:
        run_on_dag(deps, event.data.order)
    for event in shadows:
        bus.run(event)

    report = report_of(clean_db)
    assert (report.compared, report.matching) == (2, 1)
    differing = {(m.subject_id, m.field): (m.real, m.shadow) for m in report.mismatches}
    big_id = big["order_id"]
    assert differing == {
        (big_id, "outcome"): ("completed", "failed"),
        (big_id, "reason"): ("(none)", "invalid"),
        (big_id, "amount_charged"): ("150.00", "0.00"),
        (big_id, "items_reserved"): ("SKU-MUG x2, SKU-TEE x1", "(none)"),
    }
    assert report.by_field == {"outcome": 1, "reason": 1, "amount_charged": 1, "items_reserved": 1}

    context = CliContext(
        database_url=lambda: pg_url,
        registry=lambda: pytest.fail("no registry needed"),
        schemas_root=lambda: pytest.fail("no schemas needed"),
        rollout=lambda: PAYMENT_FLAG,
    )
    assert main(["rollout", "shadow-report"], context=context) == 0
    out = capsys.readouterr().out
    assert f"MISMATCH {big_id}  outcome: real=completed  shadow=failed" in out
    assert "mismatching 1" in out
