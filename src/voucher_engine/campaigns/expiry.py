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

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock

log = logging.getLogger("voucher_engine.campaigns.expiry")

SWEEP_INTERVAL_S = 30.0
SWEEP_BATCH = 10_000
SWEEP_LOCK_KEY = 7_412_930_005

# The due rows are chosen once (a MATERIALIZED CTE): as a subquery in FROM, a plan that rescans it would run the
# LIMIT ... SKIP LOCKED again and could expire more than `limit` vouchers.
_EXPIRE_ONE_CAMPAIGN = sa.text(
    "WITH due AS MATERIALIZED ("
    "    SELECT campaign_id, id FROM vouchers"
    "     WHERE campaign_id = :campaign_id AND status = 'issued' AND valid_until <= :now"
    "     LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " UPDATE vouchers v SET status = 'expired', updated_at = :now, version = v.version + 1"
    " FROM due WHERE v.campaign_id = due.campaign_id AND v.id = due.id AND v.status = 'issued'"
)

# A fixed-window campaign's vouchers all share its window: none is due before the campaign's own end, so the sweep
# looks only at those past it, and at campaigns whose windows run from each voucher's issue.
_OPEN_CAMPAIGNS = sa.text(
    "SELECT id FROM campaigns WHERE status IN ('funded', 'active', 'paused')"
    " AND (validity_seconds IS NOT NULL OR valid_until <= :now) ORDER BY id"
)


async def expire_due(conn: AsyncConnection, campaign_id: str | None, now: datetime, limit: int = SWEEP_BATCH) -> int:
    """Expire up to `limit` due vouchers of one campaign (or of all open campaigns); answers how many."""
    assert 0 < limit <= 1_000_000, limit
    if campaign_id is not None:
        result = await conn.execute(_EXPIRE_ONE_CAMPAIGN, {"campaign_id": campaign_id, "now": now, "limit": limit})
        return result.rowcount
    done = 0
    for (open_id,) in (await conn.execute(_OPEN_CAMPAIGNS, {"now": now})).all():
        if done >= limit:
            break
        done += await expire_due(conn, open_id, now, limit - done)
    return done


async def expire_campaign(conn: AsyncConnection, campaign_id: str, now: datetime) -> int:
    """Expire every due voucher of a campaign (used at close, which holds the campaign's lock)."""
    result = await conn.execute(
        sa.text(
            "UPDATE vouchers SET status = 'expired', updated_at = :now, version = version + 1"
            " WHERE campaign_id = :campaign_id AND status = 'issued' AND valid_until <= :now"
        ),
        {"campaign_id": campaign_id, "now": now},
    )
    return result.rowcount


async def expire_voucher(conn: AsyncConnection, campaign_id: str, voucher_id: str, now: datetime) -> bool:
    result = await conn.execute(
        sa.text(
            "UPDATE vouchers SET status = 'expired', updated_at = :now, version = version + 1"
            " WHERE campaign_id = :campaign_id AND id = :voucher_id AND status = 'issued' AND valid_until <= :now"
        ),
        {"campaign_id": campaign_id, "voucher_id": voucher_id, "now": now},
    )
    return result.rowcount == 1


async def sweep_once(engine: AsyncEngine) -> int:
    """One pass, if this worker wins the lock: expire due vouchers batch by batch (one transaction each)."""
    total = 0
    async with engine.connect() as conn:
        won = (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": SWEEP_LOCK_KEY})).scalar()
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
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": SWEEP_LOCK_KEY})
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
