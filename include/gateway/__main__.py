"""Run the gateway simulator: ``python -m include.gateway --port 8099 [--failure-rate 0.02]``.

CLI flags override ``SEGUE_GATEWAY_*`` environment variables, which override the defaults.
The admin token is never a flag (it would show in ``ps``): set ``SEGUE_GATEWAY_ADMIN_TOKEN``, or
let the gateway generate one into ``--admin-token-file``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any, get_args

import uvicorn

from include.gateway.admin_auth import resolve_admin_token
from include.gateway.app import create_app
from include.gateway.faults import Distribution
from include.gateway.settings import GatewaySettings
from include.gateway.tracing import configure_tracing

# (flag, settings field, type, help) for every setting the command line can override.
_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--host", "host", str, "interface to bind (default 127.0.0.1)"),
    ("--port", "port", int, "TCP port (default 8099; 0 picks a free one)"),
    ("--log-level", "log_level", str, "critical|error|warning|info|debug"),
    ("--failure-rate", "failure_rate", float, "probability of an injected 503 (default 0.02)"),
    ("--fail-next", "fail_next", int, "the next N charge/refund requests fail with 503"),
    ("--timeout-rate", "timeout_rate", float, "probability of a delayed (timed-out) answer"),
    ("--timeout-delay-seconds", "timeout_delay_seconds", float, "delay of a timed-out answer"),
    ("--latency-mean-ms", "latency_mean_ms", float, "mean added latency"),
    ("--latency-jitter-ms", "latency_jitter_ms", float, "half-width of uniform latency"),
    ("--latency-sigma", "latency_sigma", float, "shape of lognormal latency"),
    ("--latency-max-ms", "latency_max_ms", float, "cap of any latency draw"),
    ("--seed", "seed", int, "seed of the fault RNG, for reproducible runs"),
    ("--max-body-bytes", "max_body_bytes", int, "largest accepted request body"),
    ("--admin-token-file", "admin_token_file", str, "where a generated admin token is written"),
)


def parse_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The settings overrides named on the command line (unset flags are left out)."""
    parser = argparse.ArgumentParser(prog="python -m include.gateway", description=__doc__)
    for flag, dest, kind, help_text in _FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--latency-distribution",
        dest="latency_distribution",
        default=None,
        choices=get_args(Distribution),
        help="shape of the added latency (default none)",
    )
    parser.add_argument(
        "--access-log",
        dest="access_log",
        action="store_true",
        default=None,
        help="log every request (costs throughput)",
    )
    namespace = parser.parse_args(argv)
    return {name: value for name, value in vars(namespace).items() if value is not None}


def main(argv: Sequence[str] | None = None) -> None:
    settings = GatewaySettings(**parse_args(argv))
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger(__name__).info(
        "gateway on %s:%s, faults %s",
        settings.host,
        settings.port,
        settings.fault_config().model_dump_json(),
    )
    configure_tracing()
    admin_token = resolve_admin_token(settings, write_file=True)
    uvicorn.run(
        create_app(settings, admin_token=admin_token),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=settings.log_level,
        access_log=settings.access_log,
        lifespan="off",
        timeout_graceful_shutdown=2,  # do not wait out injected timeouts on SIGTERM
    )


if __name__ == "__main__":
    main()
