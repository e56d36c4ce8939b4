"""The async SQLAlchemy engine over asyncpg, shared by a process."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger("voucher_engine.db")


def async_url(url: str) -> str:
    """`postgresql://...` as people write it, turned into the asyncpg dialect SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"only PostgreSQL is supported, not {parsed.drivername!r}")
    return parsed.render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """The libpq form of a URL (what asyncpg.connect and psql take)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, application_name: str = "voucher-engine") -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        # No overflow: an overflow connection is closed when it is given back while the pool is full, so under more
        # concurrent requests than `pool_size` every request past it opened (and PostgreSQL forked) a session of its
        # own: a few ms of CPU on both sides each time. A request past the pool's size waits for a connection
        # instead (up to the pool's timeout), which is what a pool is for.
        max_overflow=0,
        # No pre-ping: it costs a round trip per checkout on the hot path; a dead connection fails its statement and
        # the error handler answers 503, and the pool replaces it.
        pool_pre_ping=False,
        # Hot statements are prepared once per connection by asyncpg; keep a generous cache.
        connect_args={"statement_cache_size": 512, "server_settings": {"application_name": application_name}},
    )
    event.listen(engine.sync_engine, "checkin", _close_a_stray_transaction)
    return engine


def _close_a_stray_transaction(dbapi_connection: Any, record: Any) -> None:
    """A connection never goes back to the pool inside a transaction.

    A task cancelled while its transaction was being opened (db/raw.driver: asyncpg's BEGIN sent, SQLAlchemy's adapter
    not yet told) or closed gave its connection back still in that transaction: the adapter's own rollback on return
    knew of none and sent nothing. The next request to take the connection then ran inside it, and what it wrote was
    never committed (seen once in the risk detector's tests; tests/foundation/test_engine_checkin.py makes it happen).
    So on every return the driver's own view is asked (asyncpg tracks it from the server's ready-for-query status, no
    round trip), and a stray transaction is rolled back, or the connection dropped if even that fails."""
    if dbapi_connection is None:
        return
    raw = getattr(dbapi_connection, "driver_connection", None)
    if raw is None or raw.is_closed() or not raw.is_in_transaction():
        return
    try:
        dbapi_connection.run_async(lambda connection: connection.execute("ROLLBACK"))
        log.warning("a pooled connection came back inside a transaction; rolled back")
    except Exception:  # noqa: BLE001 - whatever it is, the connection must not be used again
        log.warning("a pooled connection came back inside a transaction and could not be rolled back; dropped")
        record.invalidate()
