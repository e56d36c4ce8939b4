"""`GET /v1/campaigns/{id}/stats`, and the per-worker stats poller (started and stopped with the worker)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from voucher_engine.auth import service as auth_service
from voucher_engine.db.engine import create_engine, plain_url
from voucher_engine.db.niceness import lower_backends
from voucher_engine.db.raw import no_reset
from voucher_engine.stats import service
from voucher_engine.stats.schemas import Bucket, CampaignStats
from voucher_engine.web.openapi import operation
from voucher_engine.web.state import State

router = APIRouter(tags=["campaigns"])

POLLER_KEY = "stats.poller"
POLLER_ENGINE_KEY = "stats.poller_engine"
# The rollup round's SQL runs behind the tills' batches (db/niceness.py), as the ledger's and the risk detector's
# does: a round of a busy second is tens of milliseconds of PostgreSQL CPU, and at the server's own priority it took
# a core from a batch's backend on a 2-core machine (the p99 of the worker that held the poller's lock rose).
POLLER_NICENESS = 5
POLLER_APPLICATION_NAME = "voucher-engine stats poller"
POOL_KEY = "stats.pool"
CACHE_KEY = "stats.cache"

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
    responses={
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
        401: {"description": "UNAUTHENTICATED"},
        403: {"description": "FORBIDDEN: admin and merchants do not read campaign statistics"},
        404: {"description": "NOT_FOUND: no such campaign visible to the caller"},
    },
    **operation(
        "A campaign's figures by hour or day, region, category, and its leverage ratio",
        (
            "Redemptions, subsidy redeemed and given back, and order amounts, by hour or by calendar day of the "
            "campaign's time zone (the latest 10,000 buckets with activity), by the merchants' region and category "
            "(the largest 1,000), and the leverage ratio (撬动比): order amounts per fen of subsidy, net of refunds "
            "and clawbacks. Read from rollups that a background poller keeps from the sequenced ledger, so the answer "
            "costs the same for ten redemptions or ten million; it trails the ledger by about a second (`as_of` says "
            "how far it has got). A worker keeps each answer until the campaign's rollups move again. gov: its own campaigns; auditor: all, or its issuer's. Errors: 401 UNAUTHENTICATED, "
            "403 FORBIDDEN (another role), 404 NOT_FOUND (no such campaign visible to the caller), 422 "
            "VALIDATION_ERROR (a bucket other than hour or day)."
        ),
        response_example={
            "buckets": [
                {
                    "start": "2025-01-15T00:00:00+08:00",
                    "redemptions": 1,
                    "redeemed_fen": 2000,
                    "refunded_fen": 0,
                    "order_amount_fen": 12000,
                }
            ],
            "by_region": [{"region_code": "310104", "redemptions": 1, "redeemed_fen": 2000}],
            "by_mcc": [{"mcc": "5812", "redemptions": 1, "redeemed_fen": 2000}],
            "leverage": {"order_amount_fen": 12000, "subsidy_fen": 2000, "ratio": "6.00"},
        },
    ),
)
async def campaign_stats(
    campaign_id: Annotated[str, Path(max_length=64)],
    state: State,
    bucket: Annotated[Bucket, Query(description="hour or day (calendar days of the campaign's time zone)")] = "day",
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    # One round trip on the room's own pool: the token, who may read, the campaign's rollup sequence and — only when
    # that sequence has moved since this worker last built the answer — the answer itself, written by the database.
    # Dashboards poll this; on a busy machine every checkout, BEGIN, ROLLBACK and round trip costs more than the
    # answer's query (docs/console.md, "Statistics"). stats/fastpath.py answers the same requests in front of FastAPI.
    body, subject = await service.answer(
        state.extras[POOL_KEY], state.extras[CACHE_KEY], authorization, campaign_id, bucket
    )
    await auth_service.touch_remembered(state.engine, subject.token_id)
    return Response(body, media_type="application/json")


async def startup(state) -> None:
    # min_size 0: connections are made on first use, so a worker starts even while the database is away.
    state.extras[POOL_KEY] = await asyncpg.create_pool(
        plain_url(state.settings.database_url),
        min_size=0,
        max_size=max(2, min(4, state.settings.db_pool_size)),
        reset=no_reset,
        statement_cache_size=64,
        server_settings={"application_name": "voucher-engine stats"},
    )
    state.extras[CACHE_KEY] = service.AnswerCache()
    poller_engine = create_engine(state.settings.database_url, pool_size=1, application_name=POLLER_APPLICATION_NAME)
    lower_backends(poller_engine, state.settings.database_url, POLLER_NICENESS)
    state.extras[POLLER_ENGINE_KEY] = poller_engine
    state.extras[POLLER_KEY] = asyncio.create_task(service.run_forever(poller_engine))


async def shutdown(state) -> None:
    task = state.extras.pop(POLLER_KEY, None)
    if task is not None:
        task.cancel()
        # The app bounds how long a room's stop may take (api/app.py), for every room alike.
        await asyncio.gather(task, return_exceptions=True)
    poller_engine = state.extras.pop(POLLER_ENGINE_KEY, None)
    if poller_engine is not None:
        await poller_engine.dispose()
    pool = state.extras.pop(POOL_KEY, None)
    if pool is not None:
        await pool.close()
