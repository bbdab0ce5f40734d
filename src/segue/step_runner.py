"""Run one workflow step with a retry budget and dead-lettering, independent of any orchestrator.

A failure is *final* when the exception says it is not retryable (``retryable = False``, as the
domain's business failures do) or when the attempt budget is spent. A final failure is recorded
in the dead-letter table, the caller's ``on_abandon`` runs in the same transaction, and
:class:`StepAbandoned` tells the orchestrator to stop. Anything else is re-raised for a retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue import tracing
from segue.logs import order_log_context
from segue.store.dead_letters import record_dead_letter
from segue.store.engine import session_scope

T = TypeVar("T")
log = logging.getLogger(__name__)


class StepAbandoned(Exception):
    """The step failed for good: it was dead-lettered and must not be retried."""

    def __init__(self, step: str, subject: str, attempts: int, reason: str) -> None:
        """The step gave up.

        :param step: the step's name.
        :param subject: what it worked on (the order id).
        :param attempts: how many tries were made.
        :param reason: the last error.
        """
        super().__init__(f"{step} abandoned for {subject} after {attempts} attempt(s): {reason}")
        self.step = step
        self.subject = subject
        self.attempts = attempts
        self.reason = reason


def is_retryable(exc: BaseException) -> bool:
    """Unknown errors (bugs, lost connections) are retried; typed ones say for themselves.

    :param exc: the error a step raised.
    """
    return bool(getattr(exc, "retryable", True))


def run_step(
    action: Callable[[], T],
    *,
    engine: Engine,
    workflow: str,
    step: str,
    subject: str,
    payload: Any | Callable[[], Any],
    attempt: int,
    max_attempts: int,
    on_abandon: Callable[[Session, str], object] | None = None,
) -> T:
    """Run ``action``; dead-letter and raise StepAbandoned on a final failure.

    ``payload`` (what a human needs to replay the work) may be a callable, evaluated only
    when the step is abandoned.
    """
    fields = {
        "workflow": workflow,
        "step": step,
        "correlation_id": subject,
        "attempt": attempt,
        "max_attempts": max_attempts,
    }
    attributes = {"segue.workflow": workflow, "segue.step": step, "segue.attempt": attempt}
    with (
        tracing.span(f"{workflow} {step}", order_id=subject, attributes=attributes),
        order_log_context(subject, **fields),  # fields of every line, Airflow's task log too
    ):
        return _run_logged(action, engine, fields, payload, on_abandon)


def _run_logged(
    action: Callable[[], T],
    engine: Engine,
    fields: dict[str, Any],
    payload: Any | Callable[[], Any],
    on_abandon: Callable[[Session, str], object] | None,
) -> T:
    """``run_step``'s body, inside its span.

    :param action: the step's work.
    :param engine: the dead-letter store.
    :param fields: the log fields (workflow, step, correlation id, attempt, max attempts).
    :param payload: what a human needs to replay the work (or a callable making it).
    :param on_abandon: run in the dead-letter transaction on a final failure.
    """
    workflow, step, subject = fields["workflow"], fields["step"], fields["correlation_id"]
    attempt, max_attempts = fields["attempt"], fields["max_attempts"]
    log.info(  # extra= for stdlib handlers; Airflow's task log takes the bound context instead
        "step %s started for %s (attempt %d/%d)", step, subject, attempt, max_attempts, extra=fields
    )
    try:
        result = action()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if is_retryable(exc) and attempt < max_attempts:
            log.warning(
                "step %s failed for %s, will retry: %s", step, subject, reason, extra=fields
            )
            raise
        log.error("step %s abandoned for %s: %s", step, subject, reason, extra=fields)
        abandon_step(
            engine,
            workflow=workflow,
            step=step,
            subject=subject,
            reason=reason,
            attempts=attempt,
            payload=payload,
            on_abandon=on_abandon,
        )
        raise StepAbandoned(step, subject, attempt, reason) from exc
    log.info("step %s succeeded for %s", step, subject, extra=fields)
    return result


def abandon_step(
    engine: Engine,
    *,
    workflow: str,
    step: str,
    subject: str,
    reason: str,
    attempts: int,
    payload: Any | Callable[[], Any],
    on_abandon: Callable[[Session, str], object] | None = None,
) -> bool:
    """Dead-letter the step and run ``on_abandon``, in one transaction; True if this call wrote
    the record. Safe to call again (e.g. from a failure callback after the step already did):
    the first record stays and ``on_abandon`` must be idempotent."""
    with session_scope(engine) as session:
        written = record_dead_letter(
            session,
            workflow=workflow,
            subject=subject,
            step=step,
            error=reason,
            attempts=attempts,
            payload=payload() if callable(payload) else payload,
        )
        if on_abandon is not None:
            on_abandon(session, reason)
    return written
