"""HTTP endpoints of campaigns: contracts check, campaigns and their lifecycle, issuances, claims, wallets.

Thin: each endpoint checks the caller's role, opens a connection or transaction and calls the service. Per-worker
`startup` opens the claims' asyncpg pool and starts the expiry sweep; `shutdown` stops both and any issuance jobs.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response

from voucher_engine import clock
from voucher_engine.auth import service as auth_service
from voucher_engine.auth.dependencies import require
from voucher_engine.auth.gate import Coalescer
from voucher_engine.auth.subjects import Subject
from voucher_engine.campaigns import claims, expiry, ids, issuance, repository, service
from voucher_engine.campaigns.schemas import (
    JOB_THRESHOLD,
    MAX_LOTTERY_APPLICANTS,
    MAX_TARGETED_HOLDERS,
    WALLET_PATTERN,
    Campaign,
    CampaignDetail,
    CheckAnswer,
    ClaimBody,
    IssuanceRequest,
    IssuanceResult,
    SourceBody,
    Voucher,
    parse_holders,
    parse_seed,
)
from voucher_engine.db.engine import plain_url
from voucher_engine.errors import EngineError
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

log = logging.getLogger("voucher_engine.campaigns")

router = APIRouter(tags=["campaigns"])

Gov = Annotated[Subject, Depends(require("gov"))]

# Claims come in bursts from a government's own app, with the same token: concurrent claims with one token share
# one look-up, each served by a look-up that began after it arrived (auth/gate.py), so a revoked token is refused
# at once on every worker.
_claim_auth: Coalescer[Subject] = Coalescer()


async def authenticate_claim(state, authorization: str | None) -> Subject:
    """The gov behind a claim's bearer token, looked up once for the claims that arrive together."""

    async def lookup() -> Subject:
        async with state.engine.connect() as conn:
            return await auth_service.authenticate(conn, authorization)

    subject = await _claim_auth.run((id(state), authorization or ""), lookup)
    if subject.role != "gov":
        raise EngineError("FORBIDDEN", f"This needs the role gov; the token is {subject.role}.")
    return subject


async def claims_subject(request: Request, authorization: Annotated[str | None, Header()] = None) -> Subject:
    return await authenticate_claim(request.app.state.ve, authorization)


ClaimsGov = Annotated[Subject, Depends(claims_subject)]
Reader = Annotated[Subject, Depends(require("gov", "auditor", "admin"))]
CampaignId = Annotated[str, Path(max_length=64)]
IssuanceId = Annotated[str, Path(max_length=64)]
WalletId = Annotated[str, Path(pattern=WALLET_PATTERN)]

POOL_KEY = "campaigns.pool"
BATCHER_KEY = "campaigns.batcher"
JOBS_KEY = "campaigns.jobs"
SWEEP_KEY = "campaigns.sweep"
STALE_JOB_AFTER = timedelta(minutes=10)


# ---------------------------------------------------------------------------------------------------------------
# Contracts and campaigns.


@router.post(
    "/v1/contracts/check",
    response_model=CheckAnswer,
    responses={422: {"description": "CONTRACT_INVALID: `errors` lists each {line, column, message}"}},
)
async def check_contract(body: SourceBody, _: Reader) -> CheckAnswer:
    return service.check(body.source)


@router.post("/v1/campaigns", status_code=201, response_model=CampaignDetail)
async def create_campaign(body: SourceBody, state: State, subject: Gov) -> CampaignDetail:
    async with state.engine.begin() as conn:
        return await service.create(conn, subject, body.source)


@router.get("/v1/campaigns", response_model=Page[Campaign])
async def list_campaigns(state: State, subject: Reader, limit: Limit = 100, cursor: Cursor = None) -> Page[Campaign]:
    async with state.engine.connect() as conn:
        items = await service.list_campaigns(conn, subject, after=decode_cursor(cursor), limit=limit + 1)
    page = items[:limit]
    return Page(items=page, next_cursor=encode_cursor(page[-1].id) if len(items) > limit else None)


@router.get("/v1/campaigns/{campaign_id}", response_model=CampaignDetail)
async def get_campaign(campaign_id: CampaignId, state: State, subject: Reader) -> CampaignDetail:
    async with state.engine.connect() as conn:
        return await service.get(conn, subject, campaign_id)


def _transition_endpoint(action: str):
    async def endpoint(campaign_id: CampaignId, state: State, subject: Gov) -> CampaignDetail:
        async with state.engine.begin() as conn:
            return await service.transition(conn, subject, campaign_id, action)

    endpoint.__name__ = f"{action}_campaign"
    return endpoint


for _action in ("fund", "activate", "pause", "close"):
    router.add_api_route(
        f"/v1/campaigns/{{campaign_id}}/{_action}",
        _transition_endpoint(_action),
        methods=["POST"],
        response_model=CampaignDetail,
        name=f"{_action}_campaign",
        responses={
            409: {
                "description": "INVALID_STATE: the move is not allowed from this status"
                + (
                    "; FUNDING_NOT_APPROVED: a co-funder's share is pending or declined; INSUFFICIENT_FUNDS: a "
                    "funder's share would take it beyond its appropriation"
                    if _action == "fund"
                    else ""
                )
            }
        },
    )


FunderIssuerId = Annotated[str, Path(max_length=64)]


def _decision_endpoint(action: str):
    async def endpoint(
        campaign_id: CampaignId, issuer_id: FunderIssuerId, state: State, subject: Gov
    ) -> CampaignDetail:
        async with state.engine.begin() as conn:
            return await service.decide_funding(conn, subject, campaign_id, issuer_id, action)

    endpoint.__name__ = f"{action}_funding"
    return endpoint


for _action, _words in (
    ("approve", "Approve a co-funder's share of a campaign"),
    ("decline", "Decline a co-funder's share of a campaign"),
):
    router.add_api_route(
        f"/v1/campaigns/{{campaign_id}}/funders/{{issuer_id}}/{_action}",
        _decision_endpoint(_action),
        methods=["POST"],
        response_model=CampaignDetail,
        name=f"{_action}_funding",
        summary=_words,
        description="The government of the co-funder `issuer_id` (a gov token bound to it) "
        + ("approves" if _action == "approve" else "declines")
        + " its share, while the campaign is a draft; the answer is the campaign, whose `funders` show each "
        "share's `approval` and whose `funder_decisions` keep every decision with the token that gave it and "
        "when. Deciding again the way it stands changes nothing. "
        + (
            "Approving a share that would take the co-funder beyond its appropriation is `INSUFFICIENT_FUNDS`."
            if _action == "approve"
            else "A declined share blocks funding (`FUNDING_NOT_APPROVED`) until approved."
        ),
        responses={
            403: {"description": "FORBIDDEN: the caller is not that co-funder's government"},
            404: {"description": "NOT_FOUND: no such campaign visible to the caller, or the issuer is no funder"},
            409: {
                "description": "INVALID_STATE: the campaign is no longer a draft, or the share is the issuer's own"
                + ("; INSUFFICIENT_FUNDS: beyond the appropriation" if _action == "approve" else "")
            },
        },
    )


# ---------------------------------------------------------------------------------------------------------------
# Issuances.


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


_ISSUANCE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_refs(IssuanceRequest.model_json_schema())}},
    }
}


def _issuance_model(row) -> IssuanceResult:
    return IssuanceResult(
        issuance_id=row.id,
        campaign_id=row.campaign_id,
        kind=row.kind,
        status=row.status,
        total=row.total,
        processed=row.processed,
        issued=row.issued,
        rejected_count=row.rejected_count,
        rejected=row.rejected,
        lottery=row.lottery,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


@router.post(
    "/v1/campaigns/{campaign_id}/issuances",
    status_code=201,
    response_model=IssuanceResult,
    openapi_extra=_ISSUANCE_BODY,
    responses={
        202: {
            "model": IssuanceResult,
            "description": f"{JOB_THRESHOLD} holders or more: a job; poll GET /v1/issuances/{{id}}",
        }
    },
)
async def create_issuance(campaign_id: CampaignId, request: Request, state: State, subject: Gov) -> JSONResponse:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise EngineError("VALIDATION_ERROR", "The body is not valid JSON.") from None
    if not isinstance(body, dict) or (("holders" in body) == ("lottery" in body)) or len(body) != 1:
        raise EngineError(
            "VALIDATION_ERROR",
            'The body is exactly one of {"holders": [...]} or {"lottery": {"applicants": [...], "seed": "<hex>"}}.',
        )
    seed = None
    if "holders" in body:
        kind = "targeted"
        holders = parse_holders(body["holders"], "holders", MAX_TARGETED_HOLDERS)
    else:
        kind = "lottery"
        draw = body["lottery"]
        if not isinstance(draw, dict) or set(draw) != {"applicants", "seed"}:
            raise EngineError("VALIDATION_ERROR", 'lottery is {"applicants": [...], "seed": "<hex>"}.')
        seed = parse_seed(draw["seed"])
        holders = parse_holders(draw["applicants"], "lottery.applicants", MAX_LOTTERY_APPLICANTS)
    del body
    issuance_id = ids.new_issuance_id()
    now = clock.now()
    async with state.engine.begin() as conn:
        row = await repository.get_campaign(conn, campaign_id)
        if row is None or not subject.can_see_issuer(row.issuer_id):
            raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
        issuance.check_issuable(row, kind, now)
        await repository.insert_issuance(
            conn,
            {
                "id": issuance_id,
                "campaign_id": campaign_id,
                "kind": kind,
                "status": "running",
                "total": len(holders),
                "created_at": now,
                "updated_at": now,
            },
        )
    kwargs = {"holders": holders} if kind == "targeted" else {"applicants": holders, "seed": seed}
    if len(holders) >= JOB_THRESHOLD:
        task = asyncio.create_task(_run_job(state, campaign_id, issuance_id, kind, kwargs))
        jobs: set = state.extras.setdefault(JOBS_KEY, set())
        jobs.add(task)
        task.add_done_callback(jobs.discard)
        async with state.engine.connect() as conn:
            stored = await repository.get_issuance(conn, issuance_id)
        return JSONResponse(
            _issuance_model(stored).model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/issuances/{issuance_id}"},
        )
    try:
        await issuance.run(state.engine, campaign_id, issuance_id, kind=kind, **kwargs)
    except BaseException as exc:
        await _mark_failed(state, issuance_id, exc)
        raise
    async with state.engine.connect() as conn:
        stored = await repository.get_issuance(conn, issuance_id)
    return JSONResponse(_issuance_model(stored).model_dump(mode="json"), status_code=201)


async def _mark_failed(state, issuance_id: str, exc: BaseException) -> None:
    detail = exc.detail if isinstance(exc, EngineError) else f"{type(exc).__name__}"
    try:
        async with state.engine.begin() as conn:
            await repository.update_issuance(
                conn, issuance_id, status="failed", error=detail[:500], updated_at=clock.now(), finished_at=clock.now()
            )
    except Exception:  # noqa: BLE001 - the original error matters more
        log.warning("could not mark issuance %s failed", issuance_id, exc_info=True)


async def _run_job(state, campaign_id: str, issuance_id: str, kind: str, kwargs: dict) -> None:
    async def progress(processed: int, issued: int, rejected: int) -> None:
        async with state.engine.begin() as conn:
            await repository.update_issuance(
                conn, issuance_id, processed=processed, issued=issued, rejected_count=rejected, updated_at=clock.now()
            )

    try:
        await issuance.run(state.engine, campaign_id, issuance_id, kind=kind, progress=progress, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - a job's failure is recorded, never lost
        if not isinstance(exc, EngineError):
            log.exception("issuance %s failed", issuance_id)
        await _mark_failed(state, issuance_id, exc)
        if isinstance(exc, asyncio.CancelledError):
            raise


@router.get("/v1/issuances/{issuance_id}", response_model=IssuanceResult)
async def get_issuance(issuance_id: IssuanceId, state: State, subject: Reader) -> IssuanceResult:
    async with state.engine.connect() as conn:
        row = await repository.get_issuance(conn, issuance_id)
    if row is None or not subject.can_see_issuer(row.issuer_id):
        raise EngineError("NOT_FOUND", f"No issuance {issuance_id!r}.")
    return _issuance_model(row)


# ---------------------------------------------------------------------------------------------------------------
# Claims and wallets.


@router.post(
    "/v1/campaigns/{campaign_id}/claims",
    status_code=201,
    response_model=Voucher,
    responses={
        409: {"description": "SOLD_OUT, HOLDER_LIMIT or CAMPAIGN_NOT_ACTIVE"},
        422: {"description": "NOT_ELIGIBLE, with `explain`"},
    },
)
async def create_claim(campaign_id: CampaignId, body: ClaimBody, state: State, subject: ClaimsGov) -> Response:
    batcher = state.extras[BATCHER_KEY]
    document = await claims.claim(state, batcher, subject, campaign_id, body.wallet_id, body.id_hash, body.attributes)
    # Built by us, so not validated again on the way out (the hot path of a burst).
    return Response(document, status_code=201, media_type="application/json")


@router.get("/v1/wallets/{wallet_id}/vouchers", response_model=Page[Voucher])
async def wallet_vouchers(
    wallet_id: WalletId, state: State, subject: Reader, limit: Limit = 100, cursor: Cursor = None
) -> Page[Voucher]:
    after = None
    if cursor is not None:
        campaign_id, _, voucher_id = (decode_cursor(cursor) or "").partition("/")
        if not voucher_id:
            raise EngineError("VALIDATION_ERROR", "The cursor is not one this service gave out.")
        after = (campaign_id, voucher_id)
    async with state.engine.connect() as conn:
        items = await service.wallet_vouchers(
            conn, subject, state.server_secret, wallet_id, after=after, limit=limit + 1
        )
    page = items[:limit]
    next_cursor = encode_cursor(f"{page[-1].campaign_id}/{page[-1].id}") if len(items) > limit else None
    return Page(items=page, next_cursor=next_cursor)


# ---------------------------------------------------------------------------------------------------------------
# Per-worker life.


async def startup(state) -> None:
    size = max(2, state.settings.db_pool_size)
    state.extras[POOL_KEY] = await asyncpg.create_pool(
        plain_url(state.settings.database_url),
        min_size=1,
        max_size=size,
        statement_cache_size=256,
        server_settings={"application_name": "voucher-engine-claims"},
    )
    state.extras[BATCHER_KEY] = claims.ClaimBatcher(state.extras[POOL_KEY])
    state.extras[JOBS_KEY] = set()
    try:
        async with state.engine.begin() as conn:
            await repository.fail_stale_issuances(conn, clock.now() - STALE_JOB_AFTER, clock.now())
    except Exception:  # noqa: BLE001 - housekeeping never stops a worker from starting
        log.warning("could not mark stale issuances", exc_info=True)
    state.extras[SWEEP_KEY] = asyncio.create_task(expiry.sweep_forever(state.engine))


async def shutdown(state) -> None:
    sweep = state.extras.pop(SWEEP_KEY, None)
    tasks = [sweep] if sweep is not None else []
    tasks += list(state.extras.get(JOBS_KEY, ()))
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    batcher = state.extras.pop(BATCHER_KEY, None)
    if batcher is not None:
        await batcher.close()
    pool = state.extras.pop(POOL_KEY, None)
    if pool is not None:
        await pool.close()
