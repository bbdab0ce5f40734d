"""The live state of one gateway process: its ledger, its fault injector and the startup faults."""

from __future__ import annotations

import threading
from typing import Any

from include.gateway.faults import FaultConfig, FaultDecision, FaultInjector
from include.gateway.ledger import Ledger
from include.gateway.sandbox import SANDBOX_ID_PREFIX
from include.gateway.settings import GatewaySettings
from include.gateway.tokens import Tokenizer


class GatewayState:
    """Shared by every request handler; fault decisions are serialised by a lock.

    The sandbox (``include.gateway.sandbox``) has its own ledger and its own injector over the
    same fault config, so sandbox requests never consume the live ``fail_next`` or RNG draws.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.startup_faults = settings.fault_config()
        self.ledger = Ledger()
        self.sandbox_ledger = Ledger(id_prefix=SANDBOX_ID_PREFIX)
        self.tokenizer = Tokenizer(settings.token_secret)
        self._lock = threading.Lock()
        self._injector = FaultInjector(self.startup_faults)
        self._sandbox_injector = FaultInjector(self.startup_faults)

    def ledger_of(self, sandbox: bool) -> Ledger:
        """The sandbox ledger or the live one."""
        return self.sandbox_ledger if sandbox else self.ledger

    @property
    def faults(self) -> FaultConfig:
        with self._lock:
            return self._injector.config

    def admit(self, sandbox: bool = False) -> FaultDecision:
        """Decide the faults of one charge/refund request and count the injected ones (in the
        ledger of the request's mode)."""
        with self._lock:
            decision = (self._sandbox_injector if sandbox else self._injector).decide()
        ledger = self.ledger_of(sandbox)
        if decision.failure is not None:
            ledger.count("injected_failures")
        elif decision.timeout_seconds > 0:
            ledger.count("injected_timeouts")
        return decision

    def update_faults(self, patch: dict[str, Any]) -> FaultConfig:
        """Merge ``patch`` into the live config (raises pydantic's ValidationError if invalid).

        The RNG is re-seeded only when the patch names ``seed``, so other changes keep the
        random sequence going.
        """
        with self._lock:
            merged = self._injector.config.merged(patch)
            self._injector.replace(merged, reseed="seed" in patch)
            self._sandbox_injector.replace(merged, reseed="seed" in patch)
            return self._injector.config

    def reset(self) -> FaultConfig:
        """Forget all charges, refunds, keys and counters; restore the startup faults."""
        with self._lock:
            self._injector.replace(self.startup_faults)
            self._sandbox_injector.replace(self.startup_faults)
        self.ledger.clear()
        self.sandbox_ledger.clear()
        return self.startup_faults
