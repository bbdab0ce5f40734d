"""The reconciliation of the gateway's ledger with our store, in process (real PostgreSQL, real
gateway process): a charge that landed after its order failed is refunded once, by the next
run and never again; a charge without an order is refunded; what a person must look at is
flagged. Refunds are counted in our table and in the gateway's ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from include.gateway.admin import stats as gateway_stats
from include.payments import pipeline
from include.payments.deps import PaymentDeps
from include.payments.errors import GatewayUnavailable
from include.payments.reconciliation import reconcile_window, window_from_params
from include.payments.reconciliation_report import RunReport, latest_reports
from include.payments.tables import ChargeRow, OrderRow, RefundRow
from segue.store.engine import session_scope
from tests.conftest import GOOD_TOKEN
from tests.polling import wait_for

CLIENT_TIMEOUT = 2.0  # the ``deps`` fixture's gateway client (tests/conftest.py)
NO_GRACE = timedelta(0)


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=5), now + timedelta(minutes=5)


def refunds_in_store(deps: PaymentDeps) -> int:
    with session_scope(deps.engine) as session:
        return int(session.scalar(select(func.count()).select_from(RefundRow)) or 0)


def refunds_at_gateway(gateway_url: str) -> int:
    return int(gateway_stats(gateway_url)["refunds"])


def kinds(report: RunReport) -> list[tuple[str, str]]:
    return [(finding.kind, finding.action) for finding in report.findings]


def test_a_charge_that_landed_after_its_order_failed_is_refunded_once_by_the_next_run(
    deps: PaymentDeps, order_data, gateway_url: str, gateway_admin
) -> None:
    start, end = window()
    data = order_data()
    order_id = pipeline.validate(deps, data)
    # The gateway takes longer than the client waits, and only then charges.
    gateway_admin.set_faults(
        latency={"distribution": "fixed", "mean_ms": (CLIENT_TIMEOUT + 1.5) * 1000}
    )
    with pytest.raises(GatewayUnavailable):
        pipeline.charge(deps, order_id)
    # The DAG gives up: the order fails and its money is settled, with nothing to find yet.
    with session_scope(deps.engine) as session:
        pipeline.fail_and_reconcile_on_abandon(deps, order_id)(session, "charge: out of retries")
    assert refunds_in_store(deps) == 0
    [late] = wait_for(lambda: deps.gateway.list_charges(reference=order_id), what="late charge")
    assert (late.status, late.amount_refunded) == ("succeeded", Decimal("0.00"))
    gateway_admin.set_faults(latency={"distribution": "none"})

    first = reconcile_window(deps, "run-1", start, end, grace=NO_GRACE)

    assert kinds(first) == [("charge_on_failed_order", "refunded")]
    [finding] = first.findings
    assert (finding.order_id, finding.gateway_charge_id) == (order_id, late.id)
    assert finding.gateway_amount == Decimal("49.99")
    assert (first.status, first.refunds_made, first.charges_checked) == ("completed", 1, 1)
    [charge] = deps.gateway.list_charges(reference=order_id)
    assert charge.amount_refunded == charge.amount
    assert (refunds_in_store(deps), refunds_at_gateway(gateway_url)) == (1, 1)

    second = reconcile_window(deps, "run-2", start, end, grace=NO_GRACE)
    again = reconcile_window(deps, "run-1", start, end, grace=NO_GRACE)  # a retried task

    assert second.findings == () and second.refunds_made == 0
    assert again.findings == first.findings and again.refunds_made == 1
    assert (refunds_in_store(deps), refunds_at_gateway(gateway_url)) == (1, 1)
    assert [report.run_id for report in latest_reports(deps.engine)] == ["run-2", "run-1"]


def test_a_charge_without_an_order_is_refunded_once_when_past_the_grace(
    deps: PaymentDeps, gateway_url: str
) -> None:
    start, end = window()
    ghost = deps.gateway.charge(
        idempotency_key="ghost:charge",
        amount=Decimal("12.50"),
        currency="USD",
        payment_method=GOOD_TOKEN,
        reference="ord-ghost",
    )

    young = reconcile_window(deps, "run-young", start, end)  # default grace: may be in flight
    assert young.findings == ()
    assert refunds_at_gateway(gateway_url) == 0

    first = reconcile_window(deps, "run-1", start, end, grace=NO_GRACE)
    second = reconcile_window(deps, "run-2", start, end, grace=NO_GRACE)

    assert kinds(first) == [("charge_without_order", "refunded")]
    assert first.findings[0].gateway_charge_id == ghost.id
    assert second.findings == ()
    assert (refunds_in_store(deps), refunds_at_gateway(gateway_url)) == (1, 1)


def test_an_order_charge_the_gateway_does_not_know_and_an_amount_mismatch_are_flagged(
    deps: PaymentDeps, order_data, gateway_url: str
) -> None:
    start, end = window()
    ghost_order = pipeline.validate(deps, order_data())
    with session_scope(deps.engine) as session:
        session.add(
            ChargeRow(
                order_id=ghost_order,
                idempotency_key=f"{ghost_order}:charge",
                gateway_charge_id="ch_nobody_made",
                amount=Decimal("49.99"),
                currency="USD",
            )
        )
    changed = pipeline.validate(deps, order_data())
    charged = pipeline.charge(deps, changed)
    with session_scope(deps.engine) as session:
        session.execute(
            update(ChargeRow).where(ChargeRow.order_id == changed).values(amount=Decimal("59.99"))
        )

    report = reconcile_window(deps, "run-1", start, end, grace=NO_GRACE)

    by_kind = {finding.kind: finding for finding in report.findings}
    assert sorted(by_kind) == ["amount_mismatch", "charge_unknown_to_gateway"]
    unknown = by_kind["charge_unknown_to_gateway"]
    assert (unknown.action, unknown.order_id, unknown.gateway_charge_id) == (
        "flagged",
        ghost_order,
        "ch_nobody_made",
    )
    mismatch = by_kind["amount_mismatch"]
    assert (mismatch.action, mismatch.order_id) == ("flagged", changed)
    assert mismatch.gateway_charge_id == charged["gateway_charge_id"]
    assert (mismatch.gateway_amount, mismatch.store_amount) == (Decimal("49.99"), Decimal("59.99"))
    assert (report.refunds_made, report.orders_checked) == (0, 2)
    assert (refunds_in_store(deps), refunds_at_gateway(gateway_url)) == (0, 0)


def test_a_charge_on_an_order_still_in_progress_is_flagged_not_refunded(
    deps: PaymentDeps, order_data, gateway_url: str
) -> None:
    start, end = window()
    order_id = pipeline.validate(deps, order_data())
    deps.gateway.charge(  # the gateway holds a charge our store has not recorded (yet)
        idempotency_key=f"{order_id}:charge",
        amount=Decimal("49.99"),
        currency="USD",
        payment_method=GOOD_TOKEN,
        reference=order_id,
    )

    report = reconcile_window(deps, "run-1", start, end, grace=NO_GRACE)

    assert kinds(report) == [("charge_on_open_order", "flagged")]
    assert refunds_at_gateway(gateway_url) == 0
    with session_scope(deps.engine) as session:
        assert session.get(OrderRow, order_id).status == "validated"


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (
            datetime(2026, 12, 1, 10),
            datetime(2026, 12, 1, 11, tzinfo=UTC),
            "start needs a timezone",
        ),
        (datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 12, 1, 11), "end needs a timezone"),
        (
            datetime(2026, 12, 1, 11, tzinfo=UTC),
            datetime(2026, 12, 1, 10, tzinfo=UTC),
            "end .* must be after start",
        ),
    ],
)
def test_a_bad_window_is_refused_naming_the_field_and_writes_nothing(
    deps: PaymentDeps, start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        reconcile_window(deps, "run-bad", start, end)
    assert latest_reports(deps.engine) == []


REFERENCE = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, (datetime(2026, 12, 1, 10, tzinfo=UTC), REFERENCE)),
        ("", "", (datetime(2026, 12, 1, 10, tzinfo=UTC), REFERENCE)),
        (
            "2026-11-30T08:00:00+00:00",
            "2026-11-30T09:30:00Z",
            (datetime(2026, 11, 30, 8, tzinfo=UTC), datetime(2026, 11, 30, 9, 30, tzinfo=UTC)),
        ),
        (
            "2026-11-30T08:00:00Z",
            None,
            (datetime(2026, 11, 30, 8, tzinfo=UTC), datetime(2026, 11, 30, 10, tzinfo=UTC)),
        ),
        (
            None,
            "2026-11-30T08:00:00Z",
            (datetime(2026, 11, 30, 6, tzinfo=UTC), datetime(2026, 11, 30, 8, tzinfo=UTC)),
        ),
    ],
)
def test_a_window_from_params_defaults_to_the_two_hours_before(
    start: str | None, end: str | None, expected: tuple[datetime, datetime]
) -> None:
    assert window_from_params(start, end, REFERENCE) == expected


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("yesterday", None, "start is not an ISO 8601 date-time"),
        (None, "2026-11-30T08:00:00", "end needs a timezone"),
        ("2026-11-30T09:00:00Z", "2026-11-30T08:00:00Z", "must be after start"),
    ],
)
def test_a_bad_window_param_is_refused_naming_it(
    start: str | None, end: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        window_from_params(start, end, REFERENCE)
