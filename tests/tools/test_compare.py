"""``segue chaos`` and ``segue compare`` from the command line: one fault against a running
choreography with its verdict, bad input and an unreachable stack refused clearly, and the
invariant check failing when an order is charged twice.

The quick comparison of all four paths needs the e2e Airflow: ``tests/e2e/test_compare.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from include.payments.tables import ChargeRow
from segue.store.engine import session_scope
from tests.faults.conftest import Choreography, run_choreography
from tools.chaos.invariants import payment_violations
from tools.cli import main


@pytest.fixture
def running(
    fresh_amqp_url: str, engine: Engine, gateway_url: str, tmp_path: Path
) -> Iterator[tuple[Path, Choreography]]:
    """The event path as processes on a fresh vhost, and a home whose pid files name them (as
    ``segue up``'s do), so the faults can find them."""
    with run_choreography(fresh_amqp_url, engine, gateway_url, tmp_path / "services") as chore:
        home = tmp_path / "home"
        (home / "pids").mkdir(parents=True)
        for name, service in chore.services.items():
            (home / "pids" / f"{name}.pid").write_text(str(service.pid))
        yield home, chore


def stack_args(
    home: Path, chore: Choreography, pg_url: str, gateway_url: str, amqp: str
) -> list[str]:
    return [
        "--home", str(home), "--intake-url", chore.intake_url, "--api-key", chore.api_key,
        "--database-url", pg_url, "--gateway-url", gateway_url, "--amqp-url", amqp,
    ]  # fmt: skip


def test_chaos_drops_the_broker_connections_and_the_invariants_hold(
    running, pg_url, gateway_url, fresh_amqp_url, engine, capsys
):
    home, chore = running
    args = stack_args(home, chore, pg_url, gateway_url, fresh_amqp_url)

    code = main(["chaos", "--paths", "events", "--orders", "8", "--rate", "4", *args])

    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "[events] fault drop-broker: closed" in out, out
    assert "[events] PASS: 8 orders terminal, invariants hold" in out, out
    for service in chore.services.values():
        assert service.alive(), f"{service.name} died:\n{service.log_tail()}"
    # The same check fails once an order is charged twice.
    with session_scope(engine) as session:
        charge = session.scalars(
            select(ChargeRow).where(ChargeRow.order_id.like("chaos-events-good-%"))
        ).first()
        assert charge is not None
        twice = {"idempotency_key": "dup", "gateway_charge_id": "dup"}
        session.add(ChargeRow(order_id=charge.order_id, amount=charge.amount,
                              currency=charge.currency, **twice))  # fmt: skip
    problems = payment_violations(engine, {charge.order_id: "good"}, gateway_url, "per_order")
    assert any("'charges': 2" in p for p in problems), problems


@pytest.mark.parametrize("command", ["chaos", "compare"])
def test_an_unknown_path_is_refused_naming_the_paths(command, capsys):
    assert main([command, "--paths", "dag,kafka"]) == 2
    assert "unknown path kafka: choose from dag, saga, hybrid, events" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["chaos", "compare"])
def test_an_unreachable_stack_is_refused_naming_the_part(command, pg_url, gateway_url, capsys):
    args = ["--intake-url", "http://127.0.0.1:9", "--api-key", "k", "--database-url", pg_url,
            "--gateway-url", gateway_url, "--paths", "events"]  # fmt: skip

    assert main([command, *args]) == 2

    err = capsys.readouterr().err
    assert "the intake (front door) does not answer at http://127.0.0.1:9/healthz" in err, err
