"""Base class of every event payload: a frozen pydantic model with a type and a schema version."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """The ``data`` of one event type at one schema version.

    Subclasses set ``event_type`` (the CloudEvents ``type``, also the AMQP routing key) and
    ``schema_version``. A breaking change needs a new version and a new class; the committed JSON
    Schemas (``schemas/events``) catch a breaking change made in place.
    """

    # Tolerant reader: a field added by a newer producer is ignored, not rejected, so adding an
    # optional field is compatible in both directions (see segue.events.schemas).
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def schema_id(cls) -> str:
        """The CloudEvents ``dataschema``: where the committed JSON Schema of this version lives."""
        return f"schemas/events/{cls.event_type}/v{cls.schema_version}.json"
