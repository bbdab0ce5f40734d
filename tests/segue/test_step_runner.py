"""run_step: when a failure is final, what gets dead-lettered, and what is left to retry."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from include.payments.errors import CardDeclined, GatewayUnavailable
from segue.step_runner import StepAbandoned, run_step
from segue.store.dead_letters import DeadLetter, dead_letters_for
from segue.store.engine import session_scope


def fail_with(exc: Exception):
    def action():
        raise exc

    return action


def run(engine, action, attempt=1, max_attempts=3, abandoned=None, payload=None):
    return run_step(
        action,
        engine=engine,
        workflow="test_flow",
        step="charge",
        subject="ord-1",
        payload=payload if payload is not None else {"order_id": "ord-1"},
        attempt=attempt,
        max_attempts=max_attempts,
        on_abandon=(lambda session, reason: abandoned.append(reason))
        if abandoned is not None
        else None,
    )


def letters(engine):
    with session_scope(engine) as session:
        return [(d.step, d.attempts, d.error) for d in dead_letters_for(session, "ord-1")]


def test_success_returns_the_result_and_records_nothing(clean_db):
    assert run(clean_db, lambda: 42) == 42
    assert letters(clean_db) == []


def test_business_failure_is_final_on_the_first_attempt(clean_db):
    abandoned: list[str] = []
    with pytest.raises(StepAbandoned) as raised:
        run(clean_db, fail_with(CardDeclined("insufficient_funds")), abandoned=abandoned)
    assert raised.value.attempts == 1
    assert letters(clean_db) == [("charge", 1, "CardDeclined: card declined: insufficient_funds")]
    assert abandoned == ["CardDeclined: card declined: insufficient_funds"]


def test_transient_failure_is_left_to_retry_until_the_last_attempt(clean_db):
    with pytest.raises(GatewayUnavailable):
        run(clean_db, fail_with(GatewayUnavailable("503")), attempt=2, max_attempts=3)
    assert letters(clean_db) == []
    with pytest.raises(StepAbandoned):
        run(clean_db, fail_with(GatewayUnavailable("503")), attempt=3, max_attempts=3)
    assert letters(clean_db) == [("charge", 3, "GatewayUnavailable: 503")]


def test_unknown_errors_are_retried(clean_db):
    with pytest.raises(KeyError):
        run(clean_db, fail_with(KeyError("bug")), attempt=1, max_attempts=2)
    assert letters(clean_db) == []


def test_dead_letter_is_recorded_once_and_payload_is_lazy(clean_db):
    for _ in range(2):
        with pytest.raises(StepAbandoned):
            run(clean_db, fail_with(CardDeclined("x")), payload=lambda: {"lazy": True})
    with session_scope(clean_db) as session:
        rows = list(session.scalars(select(DeadLetter)))
    assert len(rows) == 1
    assert rows[0].payload == {"lazy": True}
    assert rows[0].workflow == "test_flow"
    assert rows[0].created_at is not None


def test_log_records_carry_the_correlation_id(clean_db, caplog):
    caplog.set_level("INFO", logger="segue.step_runner")
    with pytest.raises(StepAbandoned):
        run(clean_db, fail_with(CardDeclined("x")))
    records = [r for r in caplog.records if r.name == "segue.step_runner"]
    assert [r.levelname for r in records] == ["INFO", "ERROR"]
    assert {r.correlation_id for r in records} == {"ord-1"}
    assert {r.step for r in records} == {"charge"}
