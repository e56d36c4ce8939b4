"""The CSV export: every matching transaction in seq order, streamed in chunks from a server-side cursor.

Columns: seq,id,kind,at,postings,refs,hash,prev_hash (postings and refs as JSON). Exactly what `verify --csv`
reads back; memory stays flat however many rows there are, because rows leave as soon as a chunk is full.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine.ledger import canonical, repository
from voucher_engine.ledger.verify import CSV_COLUMNS

CHUNK_ROWS = 5000


async def csv_chunks(engine: AsyncEngine, *, campaign_id: str | None = None, merchant_id: str | None = None,
                     voucher_id: str | None = None, at_from: datetime | None = None,
                     at_to: datetime | None = None) -> AsyncIterator[bytes]:
    """The export as bytes chunks, read in one snapshot (REPEATABLE READ, read only)."""
    sql, params = repository.list_query(campaign_id=campaign_id, merchant_id=merchant_id, voucher_id=voucher_id,
                                        account=None, at_from=at_from, at_to=at_to, after_seq=0, limit=None)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    format_at, postings_object, dumps, loads = (canonical.format_at, canonical.postings_object, orjson.dumps,
                                                orjson.loads)
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.transaction(isolation="repeatable_read", readonly=True):
            cursor = await raw.cursor(sql, *params)
            while True:
                chunk = await cursor.fetch(CHUNK_ROWS)  # one round trip per chunk, then out it goes
                if not chunk:
                    break
                writer.writerows(
                    (row["seq"], row["id"], row["kind"], format_at(row["at"]),
                     dumps(postings_object(row["accounts"], row["amounts_fen"])).decode(),
                     dumps(loads(row["refs"]), option=orjson.OPT_SORT_KEYS).decode(),
                     row["hash"].hex(), row["prev_hash"].hex())
                    for row in chunk)
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()
