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
from datetime import date, datetime, time
from decimal import ROUND_DOWN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine.auth.subjects import Subject
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.stats import repository
from voucher_engine.stats.schemas import Bucket

log = logging.getLogger("voucher_engine.stats")

ROUND_LIMIT = 20_000  # ledger transactions per round: one statement of about a second at the most
POLL_INTERVAL_S = float(os.environ.get("VE_STATS_INTERVAL_S", "1.0"))
MAX_BUCKETS = 10_000  # hours or days per answer (the latest ones): over a year of hours
MAX_BREAKDOWN_ROWS = 1_000  # regions or categories per answer, the largest first
MONEY_FIELDS = repository.MONEY


@dataclass(frozen=True)
class RoundResult:
    taken: int  # ledger transactions read
    moves: int  # of which redemptions, refunds and clawbacks
    last_seq: int | None  # the cursor after the round (None: nothing new, or another poller holds the lock)


async def rollup_round(conn: AsyncConnection, limit: int = ROUND_LIMIT) -> RoundResult:
    """Add the next sequenced transactions to the rollups, in `conn`'s transaction (the caller commits).

    Only one round runs at a time (a transaction-scoped try-lock): another poller's round answers nothing taken.
    """
    done = await repository.rollup_round(await driver(conn), limit)
    return RoundResult(0, 0, None) if done is None else RoundResult(*done)


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


def _json(value: Any) -> Any:
    # The pool's connections decode jsonb themselves; a bare asyncpg connection hands over the text.
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def _money(values: list[int]) -> dict[str, int]:
    return dict(zip(MONEY_FIELDS, values, strict=True))


async def campaign_stats(conn: AsyncConnection, subject: Subject, campaign_id: str, bucket: Bucket) -> dict[str, Any]:
    """The campaign's figures from the rollups only, in one statement: a few hundred rows read whatever the
    number of redemptions, and no model objects on the way out (the answer is JSON as the schema describes)."""
    row = await repository.campaign_figures(
        await driver(conn),
        campaign_id,
        by_hour=bucket == "hour",
        max_buckets=MAX_BUCKETS,
        max_breakdown_rows=MAX_BREAKDOWN_ROWS,
    )
    # Who may read: as for the campaign itself (its issuer's gov, auditors of all or of that issuer), and a
    # government named as a co-funder. Anyone else is told there is no such campaign.
    if row is None or not (
        subject.can_see_issuer(row["issuer_id"]) or (subject.role == "gov" and subject.issuer_id in row["funders"])
    ):
        raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
    zone = ZoneInfo(row["timezone"])
    buckets = []
    for start, *money in _json(row["buckets"]):
        when = (
            datetime.fromtimestamp(start, zone)
            if bucket == "hour"
            else datetime.combine(date.fromisoformat(start), time(0), zone)
        )
        buckets.append({"start": when.isoformat(), **_money(money)})
    sums = _money([int(x or 0) for x in _json(row["sums"])])
    order_fen = sums["order_amount_fen"] - sums["order_refunded_fen"]
    subsidy_fen = sums["redeemed_fen"] - sums["refunded_fen"] - sums["clawed_back_fen"]
    return {
        "campaign_id": campaign_id,
        "bucket": bucket,
        "buckets": buckets,
        "by_region": [{"region_code": code, **_breakdown(money)} for code, *money in _json(row["by_region"])],
        "by_mcc": [{"mcc": code, **_breakdown(money)} for code, *money in _json(row["by_mcc"])],
        "leverage": {"order_amount_fen": order_fen, "subsidy_fen": subsidy_fen, "ratio": ratio(order_fen, subsidy_fen)},
        "as_of": {
            "ledger_seq": row["last_seq"],
            "ledger_head_seq": row["head_seq"],
            "updated_at": row["updated_at"].isoformat(),
        },
    }


def _breakdown(values: list[int]) -> dict[str, int]:
    money = _money(values)
    return {key: money[key] for key in ("redemptions", "redeemed_fen", "refunded_fen", "clawed_back_fen")}
