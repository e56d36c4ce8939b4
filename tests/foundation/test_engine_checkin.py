"""A connection never goes back to the pool inside a transaction, even when the task that used it is cancelled at
any moment (db/engine.py, `_close_a_stray_transaction`).

Without that, a task cancelled while its transaction was being opened through db/raw.driver left its connection
"idle in transaction" in the pool; the next request to take it wrote inside that transaction, and nothing it wrote
was ever committed (seen once in the risk detector's tests as a merchant update that the next request did not see).
"""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest
import sqlalchemy as sa

from voucher_engine.db.engine import create_engine, plain_url
from voucher_engine.db.raw import driver

ATTEMPTS = 300  # the unguarded pool leaked a transaction within the first few dozen here


async def _cancelled_midway(engine) -> None:
    async def use() -> None:
        async with engine.begin() as conn:
            raw = await driver(conn)
            await raw.fetch("SELECT pg_sleep(0.002)")

    task = asyncio.create_task(use())
    await asyncio.sleep(random.random() * 0.004)  # anywhere: before BEGIN, during it, in the query, at COMMIT
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_cancelled_task_never_leaves_its_transaction_to_the_next(database_url):
    engine = create_engine(database_url, pool_size=1)  # one connection: every use takes the one just returned
    watcher = await asyncpg.connect(plain_url(database_url))
    random.seed(19)
    try:
        await watcher.execute("CREATE TABLE checkin_probe (n int PRIMARY KEY)")
        for n in range(ATTEMPTS):
            await _cancelled_midway(engine)
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert not raw.is_in_transaction(), f"attempt {n}: the pool handed out a connection in a transaction"
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO checkin_probe VALUES (:n)"), {"n": n})
            # Committed means seen by everyone else at once.
            assert await watcher.fetchval("SELECT count(*) FROM checkin_probe WHERE n = $1", n) == 1, n
        states = await watcher.fetch(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert "idle in transaction" not in {row["state"] for row in states}
    finally:
        await watcher.close()
        await engine.dispose()
