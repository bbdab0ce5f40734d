"""Where the plugin and the operators find a machine by its definition name.

Modules listed in ``SEGUE_SAGA_MODULES`` register their machines with :func:`register` when
imported; :func:`machine_for` imports them on first use. A machine may name the Airflow DAGs
that run it (``dag_ids``): the Sagas pages let a user see and act on an instance only with
access to one of those DAGs (see ``segue.airflow.plugin.access``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from segue.settings import get_settings
from segue.statemachine.machine import Machine

_factories: dict[str, Callable[[], Machine]] = {}
_dag_ids: dict[str, tuple[str, ...]] = {}


def register(name: str, factory: Callable[[], Machine], *, dag_ids: Iterable[str] = ()) -> None:
    """Register how to build the machine called ``name`` (built lazily: no I/O at import).

    :param name: the machine's name (its definition's ``name``).
    :param factory: builds the machine.
    :param dag_ids: the Airflow DAGs whose runs drive this machine's instances; access to
        an instance is access to one of them (none: only users with access to every DAG).
    """
    _factories[name] = factory
    _dag_ids[name] = tuple(dict.fromkeys(dag_ids))


def _import_saga_modules(name: str) -> None:
    if name not in _factories:
        for module in get_settings().saga_modules:
            importlib.import_module(module)


def machine_for(name: str) -> Machine:
    """The machine registered under ``name``, importing the configured saga modules if needed.

    :param name: the machine's name.
    """
    _import_saga_modules(name)
    try:
        return _factories[name]()
    except KeyError:
        raise KeyError(f"no saga machine named {name!r}; known: {sorted(_factories)}") from None


def dag_ids_for(name: str) -> tuple[str, ...]:
    """The DAGs registered as running machine ``name``; empty when none (or unknown).

    :param name: the machine's name.
    """
    _import_saga_modules(name)
    return _dag_ids.get(name, ())
