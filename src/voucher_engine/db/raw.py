"""Raw asyncpg access inside a SQLAlchemy transaction, for the set-based statements of hot paths.

SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it executes itself. A statement sent
straight to the asyncpg connection before that would run in autocommit, outside the caller's transaction —
silently breaking atomicity. `driver()` starts the transaction first, so raw statements always join it.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.invariants import invariant


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, inside `conn`'s transaction when `conn` has begun one."""
    fairy = await conn.get_raw_connection()
    raw: asyncpg.Connection = fairy.driver_connection
    if conn.in_transaction() and not raw.is_in_transaction():
        adapted = fairy.dbapi_connection
        start = getattr(adapted, "_start_transaction", None)
        if start is not None:
            try:
                await start()
            except BaseException:
                # Cancelled (or failed) while BEGIN was on its way: the server may now be in a transaction the adapter
                # never heard of, which its rollback on return would not end, and the reply may not even have
                # arrived yet. The connection is dropped rather than pooled in a state nobody knows
                # (tests/foundation/test_engine_checkin.py).
                await conn.invalidate()
                raise
        else:  # a future SQLAlchemy without the private hook: any statement through the adapter begins it
            await conn.exec_driver_sql("SELECT 1")
    invariant(
        not conn.in_transaction() or raw.is_in_transaction(),
        "a connection in a transaction hands out its driver connection in that transaction",
    )
    return raw


async def no_reset(conn: asyncpg.Connection) -> None:
    """A pool's `reset` that sends nothing on release (asyncpg's default costs a round trip): for pools whose every
    use is single statements, or one transaction block closed by its context manager."""
    return None
