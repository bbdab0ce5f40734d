"""tools.celery_compat: the pinned Celery provider (3.26.0) on the pinned Celery (5.7.0).

The failing result is stored by Celery's own database backend on a real PostgreSQL database and
read back through the provider's bulk state fetch, as the scheduler does every heartbeat.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from celery import Celery, states
from celery.result import AsyncResult
from sqlalchemy.exc import OperationalError

from tools.celery_compat import database_retry, patch_celery, patch_provider_fetch
from tools.sandbox import fresh_database


@pytest.fixture(scope="module")
def celery_app() -> Iterator[Celery]:
    """A Celery app whose result backend is a fresh PostgreSQL database (Airflow's setup)."""
    with fresh_database("celery_compat_results") as url:
        app = Celery("celery-compat-test", broker="memory://", backend=f"db+{url}")
        yield app
        app.backend.ResultSession().get_bind().dispose()


def test_the_pinned_celery_lacks_retry_and_the_patch_restores_it() -> None:
    import celery.backends.database as database

    patch_celery()
    assert database.retry is database_retry
    assert patch_celery() is False  # once is enough


def test_database_retry_retries_transient_errors_then_gives_up() -> None:
    calls: list[int] = []

    @database_retry
    def flaky(fail_times: int) -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise OperationalError("SELECT 1", {}, Exception("connection reset"))
        return "ok"

    assert flaky(2) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(OperationalError):
        flaky(5)
    assert len(calls) == 3


def test_the_scheduler_reads_a_failed_celery_task_after_the_patch(celery_app: Celery) -> None:
    patch_celery()
    from airflow.providers.celery.executors.celery_executor_utils import BulkStateFetcher

    task_id = str(uuid.uuid4())
    celery_app.backend.store_result(task_id, ConnectionError("api-server down"), states.FAILURE)
    fetcher = BulkStateFetcher(1, celery_app=celery_app)
    results = [AsyncResult(task_id, app=celery_app)]
    if not getattr(BulkStateFetcher, "_segue_patched", False):
        with pytest.raises(TypeError, match="stored exception"):
            fetcher.get_many(results)  # the scheduler's crash without the fix
    patch_provider_fetch()
    state, _info = fetcher.get_many(results)[task_id]
    assert state == states.FAILURE  # the scheduler then fails or retries the task instance
    done = str(uuid.uuid4())
    celery_app.backend.store_result(done, None, states.SUCCESS)
    assert fetcher.get_many([AsyncResult(done, app=celery_app)])[done][0] == states.SUCCESS
