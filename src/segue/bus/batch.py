"""What the consumer keeps about one batch: the decoded messages, the outcome of its
transaction (acted upon after the commit), and the one-frame ack of a settled batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from kombu.message import Message

from segue.bus import inbox
from segue.bus.handlers import Handler
from segue.events.envelope import Envelope


@dataclass(frozen=True)
class Decoded:
    """A message that decoded into an event, with its handler."""

    message: Message
    envelope: Envelope
    handler: Handler

    @cached_property
    def digest(self) -> str:
        """The event's content hash (``inbox.content_hash``), computed once."""
        return inbox.content_hash(self.envelope)


@dataclass(frozen=True)
class Conflict:
    """A message under a handled event id whose content differs from what was handled."""

    item: Decoded
    stored: str


@dataclass
class Outcome:
    """What a batch's transaction did, acted upon after its commit."""

    done: list[Message] = field(default_factory=list)
    later: list[tuple[Message, bool, str]] = field(default_factory=list)  # (msg, NotYet?, why)
    parked: list[tuple[Message, str, str]] = field(default_factory=list)  # (msg, code, why)
    conflicts: list[Conflict] = field(default_factory=list)  # parked after the commit
    emitted: int = 0


def ack_together(messages: list[Message]) -> None:
    """Ack ``messages`` with one ``basic.ack multiple=True`` frame instead of one each.

    Only for a whole batch that is settled: the ack covers every delivery on the channel up to
    the highest tag, and every earlier delivery is either in this batch or was settled before
    (batches are handled in delivery order; messages parked at decoding were acked already).
    """
    last = max(messages, key=lambda message: message.delivery_tag)
    if len(messages) == 1:
        last.ack()
    else:
        last.ack(multiple=True)
