"""The business time a `--test-clock` deployment shares between its processes: one row holding the offset.

Below the rooms so that any process that must follow that time (the workers, `voucher-engine issue`) can load it;
the admin endpoint that moves it is `api/test_clock.py`.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.db.schema.foundation import test_clock


async def refresh(conn: AsyncConnection) -> None:
    """Load the shared offset into this process's clock (zero when no row: production databases have none)."""
    offset_us = (await conn.execute(sa.select(test_clock.c.offset_us).where(test_clock.c.id == 1))).scalar()
    clock.set_offset(timedelta(microseconds=offset_us or 0))


async def store_offset(conn: AsyncConnection, offset_us: int) -> None:
    """Set the shared offset (microseconds from the real time) for every process that follows it."""
    statement = pg_insert(test_clock).values(id=1, offset_us=offset_us)
    await conn.execute(statement.on_conflict_do_update(index_elements=[test_clock.c.id], set_={"offset_us": offset_us}))


async def clear_offset(conn: AsyncConnection) -> None:
    """Back to the real time for every process that follows the shared offset."""
    await conn.execute(sa.delete(test_clock))
