"""SQLAlchemy engine and sessions for the business store, built from one database URL.

PostgreSQL is the default for tests and production; SQLite is the embedded fallback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now, the default of every timestamp column."""
    return datetime.now(UTC)


def new_metadata() -> MetaData:
    """A MetaData with the house naming convention, one per migration component.

    Each component (``segue.store.migrations.Component``) has its own declarative base over
    one of these, so a process gets the tables of the components it uses and no others.
    """
    return MetaData(naming_convention=NAMING_CONVENTION)


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (SQLAlchemy would pick psycopg2).

    :param url: a database URL; ``postgres://`` is accepted too, other URLs are returned as is.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def build_engine(url: str, **kwargs: object) -> Engine:
    """An engine for ``url``; SQLite gets its folder created, foreign keys and a busy timeout."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    engine = create_engine(url, **kwargs)
    ping_when_idle(engine)
    return engine


# A pooled connection idle longer than this is pinged before use (a restarted server or a
# firewall drops idle ones); a busy one is not: a ping per checkout was a round trip to
# PostgreSQL before every transaction, about a fifth of a message's statements. A connection
# that breaks while in use fails its transaction with a disconnect error, which invalidates
# the pool, and the caller's retry gets a fresh connection.
PING_AFTER_IDLE_SECONDS = 5.0
_RETURNED_AT = "segue_returned_at"


def ping_when_idle(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Ping a pooled connection on checkout only when it sat idle over ``idle_seconds``.

    :param engine: the engine whose pool to watch.
    :param idle_seconds: idle time after which a connection is checked before use.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: object, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(
        dbapi_connection: object, record: ConnectionPoolEntry, _proxy: object
    ) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return  # new (just connected) or recently used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: let the pool reconnect
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


@lru_cache(maxsize=8)
def shared_engine(url: str) -> Engine:
    """The one engine of ``url`` in this process (no schema: see ``segue.store.migrations``)."""
    return build_engine(url)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error.

    :param engine: the engine the session binds to (objects are not expired on commit).
    """
    # A Session, not a sessionmaker per call: each sessionmaker makes a new Session subclass,
    # and SQLAlchemy then builds that class's event dispatcher on the first transaction (about
    # 0.2 CPU-ms per transaction, 10% of a service's CPU in a py-spy profile at 10 orders/s).
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def single_statement(engine: Engine) -> Iterator[Connection]:
    """A connection for statements that need no transaction of their own (autocommit: each
    statement is its own transaction, as a lone read is anyway).

    psycopg opens a transaction with a ``BEGIN`` round trip before the first statement and
    ends it with a ``COMMIT`` round trip: for a one-statement lookup that is three round trips
    where one does. The intake's key lookup costs 0.43x the CPU here (185 CPU-µs against 431 in
    a ``session_scope``, ``benchmarks/statement_costs.py``).

    :param engine: the engine to take a pooled connection from.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection
