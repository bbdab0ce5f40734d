"""Maps (event type, schema version) to its payload model; decoding goes through it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from segue.events.errors import InvalidEvent
from segue.events.payload import EventPayload


class EventRegistry:
    """The event types a process understands, each at the versions it supports."""

    def __init__(self, models: Iterable[type[EventPayload]] = ()) -> None:
        """A registry holding ``models``.

        :param models: payload models to register.
        """
        self._models: dict[tuple[str, int], type[EventPayload]] = {}
        for model in models:
            self.register(model)

    def register(self, model: type[EventPayload]) -> type[EventPayload]:
        """Add a payload model (usable as a class decorator); another one at its version is refused.

        :param model: the payload class.
        """
        key = (model.event_type, model.schema_version)
        if key in self._models and self._models[key] is not model:
            raise ValueError(f"{key[0]} v{key[1]} is already registered")
        self._models[key] = model
        return model

    def __iter__(self) -> Iterator[type[EventPayload]]:
        return iter(sorted(self._models.values(), key=lambda m: (m.event_type, m.schema_version)))

    def __contains__(self, event_type: str) -> bool:
        return any(key[0] == event_type for key in self._models)

    def model_for(self, event_type: str, version: int) -> type[EventPayload]:
        """The model of ``event_type`` at ``version``; InvalidEvent names what is missing."""
        model = self._models.get((event_type, version))
        if model is not None:
            return model
        if event_type in self:
            known = sorted(key[1] for key in self._models if key[0] == event_type)
            raise InvalidEvent(
                "unsupported_version",
                f"{event_type} v{version} is not supported (supported: {known})",
            )
        raise InvalidEvent("unknown_type", f"unknown event type {event_type!r}")

    def parse(self, event_type: str, version: int, data: Any) -> EventPayload:
        """Validate ``data`` against the model of (type, version)."""
        model = self.model_for(event_type, version)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "data"
            raise InvalidEvent("invalid_payload", f"{where}: {first['msg']}") from exc
