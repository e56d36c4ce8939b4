"""`GET /v1/campaigns/{id}/stats`, and the per-worker stats poller (started and stopped with the worker)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from voucher_engine.auth.dependencies import require
from voucher_engine.auth.subjects import Subject
from voucher_engine.stats import service
from voucher_engine.stats.schemas import Bucket, CampaignStats
from voucher_engine.web.state import State

router = APIRouter(tags=["campaigns"])

Reader = Annotated[Subject, Depends(require("gov", "auditor"))]
POLLER_KEY = "stats.poller"

_EXAMPLE = {
    "campaign_id": "cmp_01",
    "bucket": "day",
    "buckets": [
        {
            "start": "2025-01-02T00:00:00+08:00",
            "redemptions": 3,
            "redeemed_fen": 6000,
            "refunded_fen": 2000,
            "order_amount_fen": 36000,
            "clawed_back_fen": 0,
            "order_refunded_fen": 12000,
        }
    ],
    "by_region": [{"region_code": "310104", "redemptions": 3, "redeemed_fen": 6000, "refunded_fen": 2000}],
    "by_mcc": [{"mcc": "5812", "redemptions": 3, "redeemed_fen": 6000, "refunded_fen": 2000}],
    "leverage": {"order_amount_fen": 24000, "subsidy_fen": 4000, "ratio": "6.00"},
    "as_of": {"ledger_seq": 42, "ledger_head_seq": 42, "updated_at": "2025-01-02T10:00:01+08:00"},
}


@router.get(
    "/v1/campaigns/{campaign_id}/stats",
    response_model=CampaignStats,
    summary="A campaign's figures by hour or day, region, category, and its leverage ratio",
    description=(
        "Redemptions, subsidy redeemed and given back, and order amounts, by hour or by calendar day of the "
        "campaign's time zone (the latest 10,000 buckets with activity), by the merchants' region and category "
        "(the largest 1,000), and the leverage ratio (撬动比): order amounts per fen of subsidy, net of refunds "
        "and clawbacks. Read from rollups that a background poller keeps from the sequenced ledger, so the answer "
        "costs the same for ten redemptions or ten million; it trails the ledger by about a second (`as_of` says "
        "how far it has got). gov: its own campaigns; auditor: all, or its issuer's. Errors: 401 UNAUTHENTICATED, "
        "403 FORBIDDEN (another role), 404 NOT_FOUND (no such campaign visible to the caller), 422 "
        "VALIDATION_ERROR (a bucket other than hour or day)."
    ),
    responses={
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
        401: {"description": "UNAUTHENTICATED"},
        403: {"description": "FORBIDDEN: admin and merchants do not read campaign statistics"},
        404: {"description": "NOT_FOUND: no such campaign visible to the caller"},
    },
)
async def campaign_stats(
    campaign_id: Annotated[str, Path(max_length=64)],
    state: State,
    subject: Reader,
    bucket: Annotated[Bucket, Query(description="hour or day (calendar days of the campaign's time zone)")] = "day",
) -> CampaignStats:
    async with state.engine.connect() as conn:
        return await service.campaign_stats(conn, subject, campaign_id, bucket)


async def startup(state) -> None:
    state.extras[POLLER_KEY] = asyncio.create_task(service.run_forever(state.engine))


async def shutdown(state) -> None:
    task = state.extras.pop(POLLER_KEY, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
