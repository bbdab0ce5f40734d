"""HTTP client of the payment gateway, mapping its answers onto the domain's typed failures.

Card numbers go to the gateway once, to ``POST /payment_methods``, and come back as a token
(``pm_…``) with the card's last four digits and brand; charges name the token.

Every charge and refund carries an ``Idempotency-Key``: a retried call can never charge or refund
twice. Reads (``list_charges``, used to reconcile a failed order) are safe to repeat.

``sandbox()`` is the same client in the gateway's sandbox mode (header ``Gateway-Mode:
sandbox``): decided exactly as a live call, recorded in a separate ledger, moving no money. Shadow
orders (``include.payments.shadow``) are charged through it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict

from include.payments.errors import CardDeclined, GatewayRejected, GatewayUnavailable
from segue import tracing

MODE_HEADER = "Gateway-Mode"
PAGE_SIZE = 500  # charges per GET /charges page
MAX_PAGES = 1000  # a listing longer than this is refused rather than read forever


class GatewayCharge(BaseModel):
    """A charge as the gateway reports it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    status: str
    amount: Decimal
    currency: str
    reference: str | None = None
    amount_refunded: Decimal = Decimal("0.00")
    created_at: datetime | None = None


class GatewayPaymentMethod(BaseModel):
    """A tokenized card as the gateway shows it: the token, last four digits and brand."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    last4: str
    brand: str


class GatewayRefund(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    charge_id: str
    amount: Decimal
    status: str


class GatewayClient:
    """A thread-safe client (one connection pool) of ``/charges`` and ``POST /refunds``."""

    def __init__(self, base_url: str, *, timeout_seconds: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_seconds)
        self._headers: dict[str, str] = {}
        self.is_sandbox = False
        self._sandbox: GatewayClient | None = None

    def close(self) -> None:
        self._http.close()

    def sandbox(self) -> GatewayClient:
        """This client in sandbox mode: same connection pool, every request marked sandbox."""
        if self.is_sandbox:
            return self
        if self._sandbox is None:
            sandbox = object.__new__(GatewayClient)
            sandbox.base_url, sandbox._http = self.base_url, self._http
            sandbox._headers, sandbox.is_sandbox = {MODE_HEADER: "sandbox"}, True
            sandbox._sandbox = sandbox
            self._sandbox = sandbox
        return self._sandbox

    def charge(
        self,
        *,
        idempotency_key: str,
        amount: Decimal,
        currency: str,
        payment_method: str,
        reference: str,
    ) -> GatewayCharge:
        """Charge the card behind a token; raises CardDeclined, GatewayUnavailable or
        GatewayRejected.

        :param idempotency_key: the same for every retry of this charge
        :param amount: the amount to charge
        :param currency: ISO 4217 code
        :param payment_method: the card's token (``pm_…``)
        :param reference: the order id, to find the charge again (``list_charges``)
        """
        body = {
            "amount": str(amount),
            "currency": currency,
            "payment_method": payment_method,
            "reference": reference,
        }
        data = self._post("/charges", idempotency_key, body)
        return GatewayCharge.model_validate(data)

    def create_payment_method(
        self,
        *,
        card_number: str,
        exp_month: int | None = None,
        exp_year: int | None = None,
        cvc: str | None = None,
    ) -> GatewayPaymentMethod:
        """Exchange a card number for a token (the same card gets the same token).

        Raises GatewayUnavailable when the gateway can't be reached, GatewayRejected when it
        refuses the card (its message names the field, never the number).

        :param card_number: digits only
        :param exp_month: expiry month, checked by the gateway and not kept
        :param exp_year: expiry year, checked and not kept
        :param cvc: security code, checked and not kept
        """
        body: dict[str, Any] = {"card_number": card_number}
        extra = {"exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}
        body.update({name: value for name, value in extra.items() if value is not None})
        try:
            response = self._http.post("/payment_methods", json=body, headers=self._headers)
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"/payment_methods: {type(exc).__name__}") from None
        return GatewayPaymentMethod.model_validate(_answer("/payment_methods", response))

    def payment_method(self, payment_method_id: str) -> GatewayPaymentMethod | None:
        """The token's last four digits and brand, or None when the gateway knows no such token.

        :param payment_method_id: the token (``pm_…``)
        """
        path = "/payment_methods/" + payment_method_id
        try:
            response = self._http.get(path, headers=self._headers)
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"/payment_methods: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404:
            return None
        return GatewayPaymentMethod.model_validate(_answer("/payment_methods", response))

    def refund(
        self, *, idempotency_key: str, charge_id: str, amount: Decimal, reason: str = ""
    ) -> GatewayRefund:
        """Refund (part of) a charge; raises GatewayUnavailable or GatewayRejected."""
        body = {"charge_id": charge_id, "amount": str(amount), "reason": reason}
        return GatewayRefund.model_validate(self._post("/refunds", idempotency_key, body))

    def list_charges(self, *, reference: str) -> list[GatewayCharge]:
        """Every charge attempt the gateway holds under ``reference`` (declined ones too)."""
        return self._list_charges({"reference": reference})

    def charges_created(self, start: datetime, end: datetime) -> list[GatewayCharge]:
        """Every charge attempt created in ``[start, end)``, in creation order (all pages).

        :param start: the window's start (timezone-aware).
        :param end: the window's end, excluded (timezone-aware).
        """
        window = {"created_after": start.isoformat(), "created_before": end.isoformat()}
        return self._list_charges(window)

    def get_charge(self, charge_id: str) -> GatewayCharge | None:
        """The gateway's charge ``charge_id``, or None when the gateway does not know it.

        :param charge_id: a gateway charge id (``ch_...``).
        """
        response = self._get(f"/charges/{charge_id}", {})
        if response.status_code == 404:
            return None
        return GatewayCharge.model_validate(self._checked(response, "/charges/{id}", dict))

    def _list_charges(self, params: dict[str, str]) -> list[GatewayCharge]:
        """``GET /charges`` with ``params``, following ``Next-Starting-After`` page by page."""
        charges: list[GatewayCharge] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page_params = {**params, "limit": str(PAGE_SIZE)}
            if cursor is not None:
                page_params["starting_after"] = cursor
            response = self._get("/charges", page_params)
            items = self._checked(response, "/charges", list)
            charges.extend(GatewayCharge.model_validate(item) for item in items)
            cursor = response.headers.get("Next-Starting-After")
            if response.headers.get("Has-More") != "true" or not cursor:
                return charges
        raise GatewayUnavailable(f"/charges: more than {MAX_PAGES} pages of {PAGE_SIZE}")

    def _get(self, path: str, params: dict[str, str]) -> httpx.Response:
        try:
            with tracing.span(f"gateway GET {path}", kind=SpanKind.CLIENT):
                headers = tracing.inject(dict(self._headers))
                return self._http.get(path, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _checked(response: httpx.Response, path: str, shape: type) -> Any:
        """The JSON body of a read, of type ``shape``; typed failures otherwise."""
        if response.status_code >= 500:
            raise GatewayUnavailable(f"{path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise GatewayRejected(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, shape):
            raise GatewayUnavailable(
                f"{path}: the gateway answered something other than a {shape.__name__}"
            )
        return body

    def _post(self, path: str, idempotency_key: str, body: dict[str, Any]) -> dict[str, Any]:
        attributes = {"segue.idempotency_key": idempotency_key}
        try:
            with tracing.span(f"gateway POST {path}", attributes=attributes, kind=SpanKind.CLIENT):
                headers = tracing.inject({**self._headers, "Idempotency-Key": idempotency_key})
                response = self._http.post(path, json=body, headers=headers)
        except httpx.TransportError as exc:  # timeouts, refused connections, resets
            raise GatewayUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise GatewayUnavailable(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
        payload = _json(response)
        if response.status_code == 402:
            error = payload.get("error", {})
            raise CardDeclined(error.get("decline_code", "declined"), error.get("message", ""))
        if response.status_code >= 400:
            raise GatewayRejected(f"{path}: HTTP {response.status_code}: {payload}")
        return payload


def _answer(path: str, response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 2xx answer; 5xx is GatewayUnavailable, 4xx GatewayRejected."""
    if response.status_code >= 500:
        raise GatewayUnavailable(f"{path}: HTTP {response.status_code}")
    payload = _json(response)
    if response.status_code >= 400:
        error = payload.get("error", {})
        raise GatewayRejected(
            f"{path}: HTTP {response.status_code}: {error.get('code')}: "
            f"{error.get('field')}: {error.get('message')}"
        )
    return payload


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise GatewayUnavailable(f"gateway answered non-JSON HTTP {response.status_code}")
    return payload
