"""The general API keeps its PostgreSQL sessions: 64 concurrent requests to ordinary endpoints (a holder's vouchers,
a campaign's detail) are served on the worker's pool, without opening a session per request past its size.

Counted the way an operator would: `pg_stat_database.sessions` of the service's database, before and after."""

from __future__ import annotations

import asyncio

import asyncpg
from redemption_world import WALLET, holder

from voucher_engine.db.engine import plain_url

CONCURRENT = 64
ROUNDS = 3


async def _sessions(conn: asyncpg.Connection) -> int:
    # A backend reports its session to the statistics when it is first idle (and at exit): a second is enough.
    await asyncio.sleep(1.5)
    return await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")


async def test_64_concurrent_ordinary_requests_open_no_more_sessions_than_the_pool(world):
    svc = world.service
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder()])
    auditor = svc.auth(await svc.token("auditor"))
    paths = [f"/v1/wallets/{WALLET}/vouchers", f"/v1/campaigns/{campaign}"]
    reader = await asyncpg.connect(plain_url(svc.settings.database_url))
    try:
        before = await _sessions(reader)
        statuses: list[int] = []
        for _ in range(ROUNDS):
            answers = await asyncio.gather(*(svc.client.get(paths[i % 2], headers=auditor) for i in range(CONCURRENT)))
            statuses += [a.status_code for a in answers]
        after = await _sessions(reader)
    finally:
        await reader.close()
    assert statuses == [200] * (CONCURRENT * ROUNDS)
    assert after - before <= svc.settings.db_pool_size, (before, after, svc.settings.db_pool_size)
