"""PostgreSQL helpers for local set-up: is a server reachable, create a database if missing."""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def _conninfo(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    parts = {
        "host": parsed.host or "127.0.0.1",
        "port": str(parsed.port or 5432),
        "user": parsed.username or "postgres",
        "dbname": database or parsed.database or "postgres",
        "connect_timeout": "3",
    }
    if parsed.password:
        parts["password"] = parsed.password
    return " ".join(f"{key}={value}" for key, value in parts.items())


def postgres_reachable(url: str) -> bool:
    """True when the server behind ``url`` accepts a connection (to its ``postgres`` database)."""
    try:
        with psycopg.connect(_conninfo(url, "postgres")):
            return True
    except psycopg.Error:
        return False


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist; True if it was created."""
    name = make_url(url).database
    if not name:
        raise ValueError(f"no database name in {url!r}")
    with psycopg.connect(_conninfo(url, "postgres"), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone():
            return False
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:  # created concurrently by someone else
            return False
        return True


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (closing its connections); for test set-up."""
    name = make_url(url).database
    with psycopg.connect(_conninfo(url, "postgres"), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
