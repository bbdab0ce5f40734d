"""API clients of the order intake: keys are made once, kept only as their sha256, revocable.

A key is ``sk_`` followed by 43 URL-safe characters (256 random bits), so a plain sha256 of it
is as good as a slow password hash: there is nothing to guess. The key is shown once, by
:func:`create_client`; afterwards only its hash and its first characters (to tell keys apart
in ``segue clients list``) are kept. ``segue clients create|list|revoke`` (``tools.cli``) are
the commands over this module.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from include.payments.tables import ApiClientRow
from segue.store.engine import utcnow
from segue.store.inserts import insert_if_absent

KEY_PREFIX = "sk_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SHOWN_PREFIX_CHARS = 10
# Built once: the intake runs it for every request.
_ACTIVE_CLIENT_OF_HASH = select(ApiClientRow.name).where(
    ApiClientRow.key_hash == bindparam("key_hash"), ApiClientRow.revoked_at.is_(None)
)


class ClientError(ValueError):
    """A client command cannot be done; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        """An error about ``field``.

        :param field: the input at fault (``name``).
        :param message: what is wrong, for the reader.
        """
        super().__init__(f"{field}: {message}")
        self.field = field


class ApiClient(BaseModel):
    """What is known of a client: its name, how its key starts, and when it was made/revoked."""

    model_config = ConfigDict(frozen=True)

    name: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """True while the client's key opens the door."""
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """The sha256 (hex) stored for ``key``.

    :param key: the API key as the client sends it.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (``sk_`` + 256 bits, URL-safe)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    """``name`` when it is a valid client name; ClientError naming the field otherwise.

    :param name: 1 to 64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.
    """
    if not NAME_PATTERN.match(name):
        raise ClientError(
            "name",
            f"{name!r} is not a client name: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return name


def create_client(session: Session, name: str) -> str:
    """Create client ``name`` and return its API key (the only time the key is seen).

    Raises ClientError when the name is invalid or already taken (revoked names included).

    :param session: the business store's session (the caller commits).
    :param name: the new client's name.
    """
    check_name(name)
    key = new_key()
    row = {
        "name": name,
        "key_hash": hash_key(key),
        "key_prefix": key[:SHOWN_PREFIX_CHARS],
        "created_at": utcnow(),
    }
    if not insert_if_absent(session, ApiClientRow.__table__, row):
        raise ClientError("name", f"a client named {name!r} exists already")
    return key


def list_clients(session: Session) -> list[ApiClient]:
    """Every client, active or revoked, by name.

    :param session: the business store's session.
    """
    rows = session.scalars(select(ApiClientRow).order_by(ApiClientRow.name))
    return [
        ApiClient(
            name=row.name,
            key_prefix=row.key_prefix,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]


def revoke_client(session: Session, name: str) -> bool:
    """Revoke client ``name``'s key; False when it was revoked already.

    Raises ClientError when there is no such client.

    :param session: the business store's session (the caller commits).
    :param name: the client to revoke.
    """
    row = session.get(ApiClientRow, name, with_for_update=True)
    if row is None:
        raise ClientError("name", f"no client named {name!r}")
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def client_of_key(reader: Session | Connection, key: str) -> str | None:
    """The name of the active client whose key is ``key``; None for unknown or revoked keys.

    :param reader: a session or a connection of the business store (one SELECT).
    :param key: the key the caller sent.
    """
    if not key.startswith(KEY_PREFIX):
        return None
    return reader.scalar(_ACTIVE_CLIENT_OF_HASH, {"key_hash": hash_key(key)})
