"""What the payment steps need from the outside world, built once per process from its settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Engine

from include.payments.database import payments_engine
from include.payments.gateway_client import GatewayClient
from include.payments.settings import PaymentSettings, get_payment_settings
from segue.settings import get_settings


@dataclass(frozen=True)
class PaymentDeps:
    """The business store (``engine``) and the payment gateway (``gateway``)."""

    engine: Engine
    gateway: GatewayClient

    @classmethod
    def from_settings(cls, settings: PaymentSettings, database_url: str) -> PaymentDeps:
        """The business store at ``database_url`` and a gateway client from ``settings``.

        :param settings: the payment settings (gateway URL and timeout).
        :param database_url: the business store's SQLAlchemy URL.
        """
        return cls(
            engine=payments_engine(database_url),
            gateway=GatewayClient(
                settings.gateway_url, timeout_seconds=settings.gateway_timeout_seconds
            ),
        )


@lru_cache(maxsize=1)
def default_deps() -> PaymentDeps:
    """The dependencies of this process, built once from its settings."""
    return PaymentDeps.from_settings(get_payment_settings(), get_settings().database_url)
