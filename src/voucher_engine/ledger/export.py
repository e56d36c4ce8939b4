"""The CSV export: every matching transaction in seq order, formatted by PostgreSQL and streamed as it comes.

Columns: seq,id,kind,at,postings,refs,hash,prev_hash (postings and refs as JSON, `at` in the spelling the hashes
cover, hashes in lowercase hex). Exactly what `verify --csv` reads back. The rows are written by
`COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)` (the SELECT is repository.export_query), so Python touches
each chunk once and no row at all. Memory stays flat however many rows there are: chunks pass through a small queue,
and while it is full asyncpg stops reading the socket, so PostgreSQL waits for the slowest reader (an HTTP client,
a disk).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine.ledger import repository

QUEUE_CHUNKS = 16  # chunks of up to 256 KiB (one socket read each) waiting for the reader, at most
SMALL_READ = 64 * 1024
SMALL_READ_PAUSE_S = 0.002  # at most 128 MB/s through 256 KiB reads: well above what one COPY produces


async def csv_chunks(
    engine: AsyncEngine,
    *,
    campaign_id: str | None = None,
    merchant_id: str | None = None,
    voucher_id: str | None = None,
    at_from: datetime | None = None,
    at_to: datetime | None = None,
) -> AsyncIterator[bytes]:
    """The export as bytes chunks, the header first, read in one snapshot (REPEATABLE READ, read only)."""
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=QUEUE_CHUNKS)

    async def put(chunk: bytes | bytearray) -> None:
        await queue.put(bytes(chunk))
        if len(chunk) < SMALL_READ:
            # PostgreSQL writes slower than we read: let its rows pile up in the socket for a moment, so the next
            # read takes many at once (a tenth of the wakeups, and of the CPU they cost, for the same bytes).
            await asyncio.sleep(SMALL_READ_PAUSE_S)

    async def copy() -> None:
        try:
            async with engine.connect() as conn:
                try:
                    raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
                    async with raw.transaction(isolation="repeatable_read", readonly=True):
                        await repository.copy_export(
                            raw,
                            put,
                            campaign_id=campaign_id,
                            merchant_id=merchant_id,
                            voucher_id=voucher_id,
                            at_from=at_from,
                            at_to=at_to,
                        )
                except BaseException:
                    # A COPY cancelled or failed mid-stream may leave asyncpg's connection closed; the pool must not
                    # hand it to the next caller (who would get "connection is closed"): discard it.
                    await conn.invalidate()
                    raise
        except Exception as exc:  # noqa: BLE001 - handed to the reader, who raises it
            await queue.put(exc)
        else:
            await queue.put(None)

    task = asyncio.create_task(copy())
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # The reader went away early (a client hung up): stop the COPY; asyncpg cancels the query on the server.
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
