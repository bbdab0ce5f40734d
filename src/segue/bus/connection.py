"""Kombu connections with the settings every Segue process needs.

Heartbeats on (Kombu's default is off), publisher confirms on, and bounded reconnect retries
(Kombu's defaults retry forever). py-amqp connections are not thread-safe: one per thread.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection

HEARTBEAT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_RETRIES = 5

# Bounded retry policy for connect and publish: 0.2 s, 0.7 s, 1.2 s, ... at most 2 s apart.
RETRY_POLICY: dict[str, Any] = {
    "max_retries": MAX_RETRIES,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 2.0,
}


def connect(
    url: str,
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
    confirms: bool = True,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    **transport_options: Any,
) -> Connection:
    """A connected Kombu connection (raises after MAX_RETRIES failed attempts).

    :param url: the broker's AMQP URL.
    :param heartbeat: seconds between heartbeats (on by default).
    :param confirms: publisher confirms on the connection's channels.
    :param connect_timeout: seconds a connection attempt may take.
    :param transport_options: more Kombu transport options.
    """
    connection = Connection(
        url,
        heartbeat=heartbeat,
        connect_timeout=connect_timeout,
        transport_options={"confirm_publish": confirms, **transport_options},
    )
    connection.ensure_connection(**RETRY_POLICY)
    return connection
