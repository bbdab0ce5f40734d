"""The gateway's admin token: who may switch faults and reset the ledger.

``SEGUE_GATEWAY_ADMIN_TOKEN`` names the token. When it is unset the gateway makes a random one
at start and writes it to ``SEGUE_GATEWAY_ADMIN_TOKEN_FILE`` (default
``~/.segue/gateway-admin-token``, mode 0600), where the launcher and scripts read it; a new
start writes a new token. ``start_gateway`` (tests, benchmarks) passes a token of its own.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from fastapi import Request

from include.gateway.errors import GatewayError
from include.gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


def resolve_admin_token(settings: GatewaySettings, *, write_file: bool) -> str:
    """The configured admin token, or a new one (written to the token file with ``write_file``).

    :param settings: the gateway's settings.
    :param write_file: write a generated token to ``settings.admin_token_file``.
    """
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    token = secrets.token_urlsafe(32)
    if write_file:
        write_token_file(settings.admin_token_file, token)
    return token


def write_token_file(path: Path, token: str) -> Path:
    """Write ``token`` to ``path`` readable by its owner only; the expanded path.

    :param path: where (``~`` expanded; folders made).
    :param token: the admin token.
    """
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    logger.info("generated an admin token: written to %s", path)
    return path


def read_token_file(path: Path) -> str:
    """The admin token in ``path`` (as written by the gateway).

    :param path: the token file.
    """
    return path.expanduser().read_text().strip()


def require_admin(token: str):  # type: ignore[no-untyped-def]
    """A FastAPI dependency refusing requests without ``Authorization: Bearer <token>`` (401).

    :param token: the admin token.
    """

    async def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, sent = header.partition(" ")
        if not header:
            raise GatewayError(
                401,
                "admin_unauthorized",
                "the admin API needs 'Authorization: Bearer <SEGUE_GATEWAY_ADMIN_TOKEN>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            sent.strip().encode(), token.encode()
        ):
            raise GatewayError(
                401,
                "admin_unauthorized",
                "wrong admin token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    return check
