"""Configuration of the gateway process: environment (``SEGUE_GATEWAY_*``), then CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from include.gateway.faults import Distribution, FaultConfig, LatencyConfig


class GatewaySettings(BaseSettings):
    """Everything the gateway reads at startup; the fault fields are its startup fault config."""

    model_config = SettingsConfigDict(env_prefix="SEGUE_GATEWAY_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8099, ge=0, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = False
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # /admin/* needs this token (Authorization: Bearer ...). Unset: a new one is generated at
    # start and written to admin_token_file (see include.gateway.admin_auth).
    admin_token: SecretStr | None = Field(default=None, min_length=16)
    admin_token_file: Path = Path("~/.segue/gateway-admin-token")
    # Key of the payment-method tokens (include/gateway/tokens.py): tokens made under one secret
    # resolve after a restart with the same secret. A simulator default; set your own.
    token_secret: str = Field(default="segue-gateway-simulator-token-secret", min_length=1)

    failure_rate: float = 0.02
    fail_next: int = 0
    timeout_rate: float = 0.0
    timeout_delay_seconds: float = 10.0
    latency_distribution: Distribution = "none"
    latency_mean_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    latency_sigma: float = 0.5
    latency_max_ms: float = 30_000.0
    seed: int | None = None

    @model_validator(mode="after")
    def _check_faults(self) -> GatewaySettings:
        self.fault_config()  # fail at startup, not on the first request
        return self

    def fault_config(self) -> FaultConfig:
        """The startup fault config, restored by ``POST /admin/reset``."""
        return FaultConfig(
            failure_rate=self.failure_rate,
            fail_next=self.fail_next,
            timeout_rate=self.timeout_rate,
            timeout_delay_seconds=self.timeout_delay_seconds,
            latency=LatencyConfig(
                distribution=self.latency_distribution,
                mean_ms=self.latency_mean_ms,
                jitter_ms=self.latency_jitter_ms,
                sigma=self.latency_sigma,
                max_ms=self.latency_max_ms,
            ),
            seed=self.seed,
        )
