"""``airflow ...`` with two fixes for the pinned Celery provider on the pinned Celery.

``apache-airflow-providers-celery`` 3.26.0 and Celery 5.7.0 (both pinned) disagree twice on
Celery's database result backend:

1. The provider imports ``retry`` from ``celery.backends.database``, which Celery 5.7 removed
   (its backend retries by itself now). ``airflow celery worker`` and a scheduler on the
   CeleryExecutor die at import: ``ImportError: cannot import name 'retry'``.
2. Celery 5.7 stores a task's result *encoded* (bytes in ``celery_taskmeta.result``) and decodes
   it when reading; the provider's bulk state fetch reads the rows itself and hands the raw
   bytes to ``meta_from_decoded``. For a Celery task that failed (e.g. the worker could not
   reach the api-server) that raises ``TypeError: If the stored exception isn't an instance of
   BaseException, it must be a dictionary`` and the scheduler exits.

Until the pins move past them, the scheduler and the Celery worker of a Celery stack run as
``python -m tools.celery_compat <airflow arguments>``: Celery 5.6's ``retry`` is put back on the
module, and the provider's fetch decodes each stored result the way Celery 5.7's own backend
does (``_decode_stored_result``); then Airflow's own command line runs. With a Celery that still
has ``retry`` (an older one), nothing is changed.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


def database_retry(fun: F) -> F:
    """Celery 5.6's ``celery.backends.database.retry``: call ``fun`` up to ``max_retries``
    (keyword, default 3) times while it raises a transient SQLAlchemy error.

    :param fun: the database call to retry.
    """
    from sqlalchemy.exc import DatabaseError, InvalidRequestError
    from sqlalchemy.orm.exc import StaleDataError

    @functools.wraps(fun)
    def _inner(*args: Any, **kwargs: Any) -> Any:
        max_retries = kwargs.pop("max_retries", 3)
        for retries in range(max_retries):
            try:
                return fun(*args, **kwargs)
            except (DatabaseError, InvalidRequestError, StaleDataError):
                log.warning("Failed operation %s; retrying %s more times", fun.__name__,
                            max_retries - retries - 1, exc_info=True)  # fmt: skip
                if retries + 1 >= max_retries:
                    raise
        return None

    return _inner  # type: ignore[return-value]


def patch_celery() -> bool:
    """Put ``retry`` back on ``celery.backends.database`` if it is missing; True if it was."""
    import celery.backends.database as database

    if hasattr(database, "retry"):
        return False
    database.retry = database_retry  # type: ignore[attr-defined]
    return True


def patch_provider_fetch() -> None:
    """Make ``BulkStateFetcher._get_many_from_db_backend`` decode stored results (fix 2)."""
    from airflow.providers.celery.executors import celery_executor_utils as utils

    fetcher = utils.BulkStateFetcher

    def _get_many_from_db_backend(self: Any, async_tasks: Any) -> Any:
        backend = self.celery_app.backend
        tasks = self._query_task_cls_from_db_backend(self._tasks_list_to_task_ids(async_tasks))
        results = []
        for task in tasks:
            row = task.to_dict()
            row["result"] = backend._decode_stored_result(row["result"])
            results.append(backend.meta_from_decoded(row))
        by_task_id = {result["task_id"]: result for result in results}
        return fetcher._prepare_state_and_info_by_task_dict(
            self._tasks_list_to_task_ids(async_tasks), by_task_id
        )

    fetcher._get_many_from_db_backend = _get_many_from_db_backend
    fetcher._segue_patched = True


def main(argv: list[str] | None = None) -> int:
    """Patch Celery, then run ``airflow`` with ``argv`` (default: this command's arguments).

    :param argv: Airflow's arguments, e.g. ``["celery", "worker"]``.
    """
    if patch_celery():
        patch_provider_fetch()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *(sys.argv[1:] if argv is None else argv)]
    airflow_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
