"""Objects named in configuration as ``module:attribute`` (how a workflow plugs into Segue)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segue.events.registry import EventRegistry


def load_object(path: str) -> Any:
    """The object at ``module:attribute``; a clear error when the path is malformed or missing.

    :param path: e.g. ``"my_workflow.events:REGISTRY"``.
    """
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {path!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attribute!r}") from None


def registry_path(path: str | None) -> str:
    """``path`` or, when None, ``SEGUE_EVENT_REGISTRY``: the ``module:attribute`` of the event
    registry operators, sensors, triggers and the event log decode with (a clear error when
    neither is set).

    :param path: an explicit ``module:attribute``, or None to read the setting.
    """
    from segue.settings import get_settings

    resolved = path or get_settings().event_registry
    if not resolved:
        raise ValueError(
            "no event registry: pass registry='module:attribute' or set SEGUE_EVENT_REGISTRY"
        )
    return resolved


def load_registry(path: str) -> EventRegistry:
    """The event registry at ``module:attribute`` (triggers carry the path, not the object).

    :param path: e.g. ``"my_workflow.events:REGISTRY"``.
    """
    from segue.events.registry import EventRegistry

    registry = load_object(path)
    if not isinstance(registry, EventRegistry):
        raise TypeError(f"{path} is {type(registry).__name__}, not an EventRegistry")
    return registry
