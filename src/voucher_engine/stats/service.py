"""Statistics: the rollup round (off the redemption path) and the campaign stats built from the rollups.

Freshness: a redemption reaches the rollups once the ledger has sequenced it (`VE_LEDGER_SEQUENCE_INTERVAL_S`,
0.2 s) and the next round has run (`VE_STATS_INTERVAL_S`, 1 s) — about 1.2 s plus the rounds' own time, while the
poller keeps up. A round takes at most ROUND_LIMIT transactions and the poller goes again at once while rounds come
back full, so a backlog (a restart, a new deployment over an old ledger) is worked off at the rollup's own speed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine.auth.subjects import Subject
from voucher_engine.campaigns import service as campaigns
from voucher_engine.db.raw import driver
from voucher_engine.stats import repository
from voucher_engine.stats.schemas import (
    AsOf,
    Bucket,
    CampaignStats,
    Leverage,
    MccStats,
    RegionStats,
    StatsBucket,
)

log = logging.getLogger("voucher_engine.stats")

ROUND_LIMIT = 20_000  # ledger transactions per round: one statement of about a second at the most
POLL_INTERVAL_S = float(os.environ.get("VE_STATS_INTERVAL_S", "1.0"))
MAX_BUCKETS = 10_000  # hours or days per answer (the latest ones): over a year of hours
MAX_BREAKDOWN_ROWS = 1_000  # regions or categories per answer, the largest first


@dataclass(frozen=True)
class RoundResult:
    taken: int  # ledger transactions read
    moves: int  # of which redemptions, refunds and clawbacks
    last_seq: int | None  # the cursor after the round (None: nothing new, or another poller holds the lock)


async def rollup_round(conn: AsyncConnection, limit: int = ROUND_LIMIT) -> RoundResult:
    """Add the next sequenced transactions to the rollups, in `conn`'s transaction (the caller commits).

    Only one round runs at a time (a transaction-scoped try-lock): another poller's round answers nothing taken.
    """
    raw = await driver(conn)
    if not await raw.fetchval(repository.TRY_LOCK, repository.STATS_LOCK_KEY):
        return RoundResult(0, 0, None)
    row = await raw.fetchrow(repository.ROLLUP_ROUND, limit)
    return RoundResult(int(row["taken"]), int(row["moves"]), row["last_seq"])


async def catch_up(engine: AsyncEngine, limit: int = ROUND_LIMIT) -> int:
    """Run rounds, each committed, until one comes back short; answers how many transactions were read."""
    total = 0
    while True:
        async with engine.begin() as conn:
            done = await rollup_round(conn, limit)
        total += done.taken
        if done.taken < limit:
            return total


async def run_forever(engine: AsyncEngine, interval_s: float | None = None) -> None:
    """The poller: every worker runs one; the lock makes all but one of them idle at any moment."""
    while True:
        try:
            await catch_up(engine)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("stats rollup failed; will retry", exc_info=True)
        await asyncio.sleep(POLL_INTERVAL_S if interval_s is None else interval_s)


def ratio(order_amount_fen: int, subsidy_fen: int) -> str:
    if subsidy_fen <= 0:
        return "0.00"
    return str((Decimal(order_amount_fen) / Decimal(subsidy_fen)).quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def _bucket(row, start: datetime) -> StatsBucket:
    return StatsBucket(
        start=start,
        redemptions=row.redemptions,
        redeemed_fen=row.redeemed_fen,
        refunded_fen=row.refunded_fen,
        order_amount_fen=row.order_amount_fen,
        clawed_back_fen=row.clawed_back_fen,
        order_refunded_fen=row.order_refunded_fen,
    )


async def campaign_stats(conn: AsyncConnection, subject: Subject, campaign_id: str, bucket: Bucket) -> CampaignStats:
    """The campaign's figures from the rollups only: a few hundred rows whatever the number of redemptions."""
    await campaigns.get(conn, subject, campaign_id, with_totals=False)  # NOT_FOUND unless the caller may see it
    zone_name = await repository.timezone_of(conn, campaign_id)
    zone = ZoneInfo(zone_name)
    if bucket == "hour":
        rows = await repository.hourly(conn, campaign_id, MAX_BUCKETS)
        buckets = [_bucket(row, row.start.astimezone(zone)) for row in rows]
    else:
        rows = await repository.daily(conn, campaign_id, zone_name, MAX_BUCKETS)
        buckets = [_bucket(row, datetime.combine(row.start, time(0), zone)) for row in rows]
    regions = await repository.breakdown(conn, "stats_by_region", "region_code", campaign_id, MAX_BREAKDOWN_ROWS)
    mccs = await repository.breakdown(conn, "stats_by_mcc", "mcc", campaign_id, MAX_BREAKDOWN_ROWS)
    sums = await repository.whole(conn, campaign_id)
    order_fen = sums["order_amount_fen"] - sums["order_refunded_fen"]
    subsidy_fen = sums["redeemed_fen"] - sums["refunded_fen"] - sums["clawed_back_fen"]
    cursor = await repository.cursor(conn)
    return CampaignStats(
        campaign_id=campaign_id,
        bucket=bucket,
        buckets=buckets,
        by_region=[RegionStats(**row._mapping) for row in regions],
        by_mcc=[MccStats(**row._mapping) for row in mccs],
        leverage=Leverage(order_amount_fen=order_fen, subsidy_fen=subsidy_fen, ratio=ratio(order_fen, subsidy_fen)),
        as_of=AsOf(
            ledger_seq=cursor.last_seq, ledger_head_seq=await repository.ledger_head(conn), updated_at=cursor.updated_at
        ),
    )
