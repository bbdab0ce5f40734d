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
    # Base of the absolute ``dataschema`` URI; a workflow that publishes its schemas sets its
    # own (e.g. https://schemas.example.com/events/) on its payloads' base class.
    schema_base_uri: ClassVar[str] = "urn:segue:"

    @classmethod
    def schema_id(cls) -> str:
        """Where the committed JSON Schema of this version lives, relative to the schema root."""
        return f"schemas/events/{cls.event_type}/v{cls.schema_version}.json"

    @classmethod
    def schema_uri(cls) -> str:
        """The CloudEvents ``dataschema``: an absolute URI naming this version's schema file."""
        return cls.schema_base_uri + cls.schema_id()
