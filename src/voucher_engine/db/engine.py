"""The async SQLAlchemy engine over asyncpg, shared by a process."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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
    return create_async_engine(
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
