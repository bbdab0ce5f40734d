"""In-memory charges, refunds and idempotency records of the gateway simulator.

Every mutation runs under one lock and without awaiting, so two requests carrying the same
``Idempotency-Key`` can never both create a charge.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from include.gateway.cards import DECLINE_MESSAGES, decline_code_for
from include.gateway.schemas import ChargeRequest, RefundRequest, error_body, format_amount
from include.gateway.tokens import PaymentMethod

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Outcome:
    """An HTTP answer (status + JSON body); ``replayed`` marks an idempotent replay."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(slots=True)
class Charge:
    """A charge attempt; declined ones are kept too (they are final answers)."""

    id: str
    status: Literal["succeeded", "declined"]
    amount: Decimal
    currency: str
    reference: str | None
    payment_method: str
    card_last4: str
    card_brand: str
    created_at: str
    decline_code: str | None = None
    amount_refunded: Decimal = ZERO

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "amount": format_amount(self.amount),
            "currency": self.currency,
            "reference": self.reference,
            "payment_method": self.payment_method,
            "card_last4": self.card_last4,
            "card_brand": self.card_brand,
            "created_at": self.created_at,
            "decline_code": self.decline_code,
            "amount_refunded": format_amount(self.amount_refunded),
        }


@dataclass(frozen=True, slots=True)
class Refund:
    """A (partial) refund of a succeeded charge."""

    id: str
    charge_id: str
    amount: Decimal
    currency: str
    reason: str | None
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charge_id": self.charge_id,
            "amount": format_amount(self.amount),
            "currency": self.currency,
            "status": "succeeded",
            "reason": self.reason,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class _Record:
    """What an idempotency key was first used for, and the answer it got."""

    operation: str
    request: BaseModel
    outcome: Outcome


MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ChargeQuery:
    """Which charges ``GET /charges`` lists: by reference, created in [after, before), paged."""

    reference: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    starting_after: str | None = None
    limit: int = MAX_PAGE

    def admits(self, created_at: str) -> bool:
        """True when a charge created at ``created_at`` (ISO, UTC) is inside the window."""
        if self.created_after is None and self.created_before is None:
            return True
        created = datetime.fromisoformat(created_at)
        if self.created_after is not None and created < self.created_after:
            return False
        return self.created_before is None or created < self.created_before


@dataclass(frozen=True, slots=True)
class ChargePage:
    """One page of listed charges; ``has_more`` when the query matched more than the limit."""

    charges: list[dict[str, Any]]
    has_more: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


class Ledger:
    """Charges, refunds, idempotency records and request counters of one gateway process."""

    def __init__(self, id_prefix: str = "") -> None:
        """:param id_prefix: put after ``ch_``/``re_`` in every id (the sandbox's ``sbx_``)."""
        self._lock = threading.Lock()
        self._id_prefix = id_prefix
        self.clear()

    def clear(self) -> None:
        """Forget everything (``POST /admin/reset``)."""
        with self._lock:
            self._charges: dict[str, Charge] = {}
            self._refunds: dict[str, Refund] = {}
            self._by_reference: defaultdict[str, list[str]] = defaultdict(list)
            self._records: dict[str, _Record] = {}
            self._counters: Counter[str] = Counter()

    def count(self, counter: str, n: int = 1) -> None:
        """Bump a request counter (``requests``, ``injected_failures``, ...)."""
        with self._lock:
            self._counters[counter] += n

    def charge(self, key: str, request: ChargeRequest, method: PaymentMethod) -> Outcome:
        """Charge ``method`` (the card behind ``request.payment_method``) once per key: 201
        succeeded or 402 declined, replayed for the same request."""
        with self._lock:
            replay = self._replay(key, "charge", request)
            if replay is not None:
                return replay
            decline_code = decline_code_for(method.card_number)
            charge = Charge(
                id=_new_id("ch_" + self._id_prefix),
                status="declined" if decline_code else "succeeded",
                amount=request.amount,
                currency=request.currency,
                reference=request.reference,
                payment_method=method.id,
                card_last4=method.last4,
                card_brand=method.brand,
                created_at=_now(),
                decline_code=decline_code,
            )
            self._charges[charge.id] = charge
            if charge.reference is not None:
                self._by_reference[charge.reference].append(charge.id)
            if decline_code is None:
                self._counters["charges_succeeded"] += 1
                outcome = Outcome(201, charge.to_json())
            else:
                self._counters["charges_declined"] += 1
                error = error_body(
                    "card_declined", DECLINE_MESSAGES[decline_code], decline_code=decline_code
                )
                outcome = Outcome(402, {"id": charge.id, "status": "declined", **error})
            self._records[key] = _Record("charge", request, outcome)
            return outcome

    def refund(self, key: str, request: RefundRequest) -> Outcome:
        """Refund once per key: 201, or 404/422 (not recorded: nothing happened)."""
        with self._lock:
            replay = self._replay(key, "refund", request)
            if replay is not None:
                return replay
            charge = self._charges.get(request.charge_id)
            if charge is None:
                message = f"no charge {request.charge_id!r}"
                return Outcome(404, error_body("charge_not_found", message))
            if charge.status != "succeeded":
                message = f"charge {charge.id} is {charge.status}; only succeeded charges refund"
                return Outcome(422, error_body("charge_not_refundable", message))
            remaining = charge.amount - charge.amount_refunded
            if request.amount > remaining:
                message = (
                    f"refund of {format_amount(request.amount)} exceeds the "
                    f"{format_amount(remaining)} left on charge {charge.id}"
                )
                return Outcome(422, error_body("refund_exceeds_charge", message))
            refund = Refund(
                id=_new_id("re_" + self._id_prefix),
                charge_id=charge.id,
                amount=request.amount,
                currency=charge.currency,
                reason=request.reason,
                created_at=_now(),
            )
            charge.amount_refunded += refund.amount
            self._refunds[refund.id] = refund
            self._counters["refunds"] += 1
            outcome = Outcome(201, refund.to_json())
            self._records[key] = _Record("refund", request, outcome)
            return outcome

    def _replay(self, key: str, operation: str, request: BaseModel) -> Outcome | None:
        """The stored answer for ``key``, a 409 if it was used otherwise, or None if unused."""
        record = self._records.get(key)
        if record is None:
            return None
        if record.operation != operation or record.request != request:
            message = "this Idempotency-Key was already used with a different request"
            return Outcome(409, error_body("idempotency_key_reused", message))
        self._counters["replays"] += 1
        return Outcome(record.outcome.status_code, record.outcome.body, replayed=True)

    def get_charge(self, charge_id: str) -> dict[str, Any] | None:
        with self._lock:
            charge = self._charges.get(charge_id)
            return None if charge is None else charge.to_json()

    def get_refund(self, refund_id: str) -> dict[str, Any] | None:
        with self._lock:
            refund = self._refunds.get(refund_id)
            return None if refund is None else refund.to_json()

    def list_charges(self, reference: str | None = None) -> list[dict[str, Any]]:
        """Charges in creation order, only those with ``reference`` when it is given."""
        return self.list_charges_page(ChargeQuery(reference=reference)).charges

    def list_charges_page(self, query: ChargeQuery) -> ChargePage:
        """One page of the charges matching ``query``, in creation order.

        :param query: filters (reference, creation window) and paging (limit, starting_after).
        :raises KeyError: ``starting_after`` names no charge.
        """
        with self._lock:
            if query.reference is None:
                ids = list(self._charges)
            else:
                ids = list(self._by_reference.get(query.reference, []))
            if query.starting_after is not None:
                if query.starting_after not in self._charges:
                    raise KeyError(query.starting_after)
                order = list(self._charges)  # creation order: the cursor's position in it
                later = set(order[order.index(query.starting_after) + 1 :])
                ids = [charge_id for charge_id in ids if charge_id in later]
            charges = (self._charges[charge_id] for charge_id in ids)
            matching = [charge for charge in charges if query.admits(charge.created_at)]
            page = matching[: query.limit]
            return ChargePage(
                charges=[charge.to_json() for charge in page],
                has_more=len(matching) > query.limit,
            )

    def stats(self) -> dict[str, Any]:
        """The counters tests and benchmarks read to count effects (``GET /stats``)."""
        with self._lock:
            counters = self._counters
            return {
                "charges": {
                    "succeeded": counters["charges_succeeded"],
                    "declined": counters["charges_declined"],
                },
                "refunds": counters["refunds"],
                "payment_methods": counters["payment_methods"],
                "requests": counters["requests"],
                "replays": counters["replays"],
                "injected_failures": counters["injected_failures"],
                "injected_timeouts": counters["injected_timeouts"],
            }
