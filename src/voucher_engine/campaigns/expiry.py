"""Expiry (过期): vouchers past their window become `expired`, lazily and by a sweep.

- `expire_due(conn, campaign_id | None, now, limit)` expires at most `limit` due vouchers (of one campaign, or of
  every open campaign) and answers how many; the redemption path may call it, and the sweep does.
- `expire_voucher(conn, campaign_id, voucher_id, now)` is the lazy form for one voucher at the till: it answers
  True when it turned the voucher expired (the caller then refuses with VOUCHER_EXPIRED).
- The sweep runs in every worker every `SWEEP_INTERVAL_S`, but only the worker that wins a try-advisory-lock does
  the work, so workers never duplicate it. It uses business time (`clock.now()`), so the test clock moves it.

"Due" means `status = 'issued' AND valid_until <= now`: windows are half-open, valid while
`valid_from <= t < valid_until`. Rows are taken with SKIP LOCKED, so a sweep never waits on a redemption in flight
(that voucher is simply left for the next pass, or for the redemption's own check).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.campaigns import repository

log = logging.getLogger("voucher_engine.campaigns.expiry")

SWEEP_INTERVAL_S = 30.0
SWEEP_BATCH = 10_000
SWEEP_LOCK_KEY = 7_412_930_005


async def expire_due(conn: AsyncConnection, campaign_id: str | None, now: datetime, limit: int = SWEEP_BATCH) -> int:
    """Expire up to `limit` due vouchers of one campaign (or of all open campaigns); answers how many."""
    assert 0 < limit <= 1_000_000, limit
    if campaign_id is not None:
        return await repository.expire_due_vouchers(conn, campaign_id, now, limit)
    done = 0
    for open_id in await repository.campaigns_with_due_vouchers(conn, now):
        if done >= limit:
            break
        done += await expire_due(conn, open_id, now, limit - done)
    return done


async def expire_campaign(conn: AsyncConnection, campaign_id: str, now: datetime) -> int:
    """Expire every due voucher of a campaign (used at close, which holds the campaign's lock)."""
    return await repository.expire_all_due_vouchers(conn, campaign_id, now)


async def expire_voucher(conn: AsyncConnection, campaign_id: str, voucher_id: str, now: datetime) -> bool:
    return await repository.expire_voucher_if_due(conn, campaign_id, voucher_id, now)


async def sweep_once(engine: AsyncEngine) -> int:
    """One pass, if this worker wins the lock: expire due vouchers batch by batch (one transaction each)."""
    total = 0
    async with engine.connect() as conn:
        won = await repository.try_session_lock(conn, SWEEP_LOCK_KEY)
        await conn.commit()
        if not won:
            return 0
        try:
            while True:
                done = await expire_due(conn, None, clock.now(), SWEEP_BATCH)
                await conn.commit()
                total += done
                if done < SWEEP_BATCH:
                    return total
        finally:
            await repository.session_unlock(conn, SWEEP_LOCK_KEY)
            await conn.commit()


async def sweep_forever(engine: AsyncEngine, interval_s: float = SWEEP_INTERVAL_S) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            expired = await sweep_once(engine)
            if expired:
                log.info("expired %d vouchers", expired)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the sweep must outlive a database restart
            log.warning("expiry sweep failed; will retry", exc_info=True)
