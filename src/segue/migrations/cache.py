"""Upgrade once per engine and process: every runtime path asks, only the first one works."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from sqlalchemy import Engine

from segue.migrations.component import Component
from segue.migrations.runner import Progress, upgrade

_done: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def migrated(
    engine: Engine, components: Sequence[Component], *, progress: Progress | None = None
) -> Engine:
    """``engine`` with ``components`` upgraded to head, at most once per engine in a process.

    Runtime code calls this where it used to call ``create_all`` (``payments_engine``,
    ``eventlog_engine``, ``SagaStore``, the service runtime); after the first call it is a set
    lookup. A new engine (``shared_engine.cache_clear()``) is checked again.

    :param engine: the business store.
    :param components: the components the caller's code reads and writes.
    :param progress: gets one line per component when this call upgrades (default: logged).
    """
    with _lock:
        done = _done.setdefault(engine, set())
        todo = [component for component in components if component.name not in done]
        if todo:
            upgrade(engine, todo, progress=progress)
            done.update(component.name for component in todo)
    return engine
