"""Where the plugin and the operators find a machine by its definition name.

Modules listed in ``SEGUE_SAGA_MODULES`` register their machines with :func:`register` when
imported; :func:`machine_for` imports them on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from segue.settings import get_settings
from segue.statemachine.machine import Machine

_factories: dict[str, Callable[[], Machine]] = {}


def register(name: str, factory: Callable[[], Machine]) -> None:
    """Register how to build the machine called ``name`` (built lazily: no I/O at import)."""
    _factories[name] = factory


def machine_for(name: str) -> Machine:
    """The machine registered under ``name``, importing the configured saga modules if needed.

    :param name: the machine's name.
    """
    if name not in _factories:
        for module in get_settings().saga_modules:
            importlib.import_module(module)
    try:
        return _factories[name]()
    except KeyError:
        raise KeyError(f"no saga machine named {name!r}; known: {sorted(_factories)}") from None
