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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

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
    ExplainAnswer,
    ExplainBody,
    IssuanceRequest,
    IssuanceResult,
    SourceBody,
    Voucher,
    parse_holders,
    parse_seed,
)
from voucher_engine.db.batcher import MicroBatcher
from voucher_engine.db.engine import plain_url
from voucher_engine.errors import EngineError
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

log = logging.getLogger("voucher_engine.campaigns")

router = APIRouter(tags=["campaigns"])

Gov = Annotated[Subject, Depends(require("gov"))]

# Claims come in bursts from a government's own app, with the same token. What a token is (its id, role and issuer)
# never changes, so each worker remembers it per Authorization header once a look-up found a live gov token; whether
# it is still live is what revocation changes, and that is checked by each claim's own batch statement (migration
# 0015: `campaign_claims_by_token`), whose snapshot is taken after the claim arrived. So a token revoked (committed)
# before a claim arrived gets that claim no voucher on any worker, without a look-up per claim. A claim refused
# before its batch (bad body, unknown campaign, another issuer's...) with a remembered token is looked up again, so
# a revoked token gets UNAUTHENTICATED as before, never an answer about the campaign. Look-ups of tokens not
# remembered (first use, unknown, other roles) share one query per burst (auth/gate.py).
_claim_auth: Coalescer[Subject] = Coalescer()
_claim_subjects: dict[tuple[int, str], Subject] = {}
MAX_CLAIM_SUBJECTS = 10_000


def _claim_key(state, authorization: str | None) -> tuple[int, str]:
    return (id(state), authorization or "")


async def _look_up_claim_token(state, authorization: str | None) -> Subject:
    """The subject behind the token, from a query that began after this call (coalesced with concurrent ones)."""

    async def lookup() -> Subject:
        async with state.engine.connect() as conn:
            return await auth_service.authenticate(conn, authorization)

    key = _claim_key(state, authorization)
    try:
        subject = await _claim_auth.run(key, lookup)
    except EngineError:
        _claim_subjects.pop(key, None)
        raise
    if subject.role == "gov":
        if len(_claim_subjects) >= MAX_CLAIM_SUBJECTS:
            _claim_subjects.clear()
        _claim_subjects[key] = subject
    return subject


async def authenticate_claim(state, authorization: str | None, *, remember: bool = True) -> tuple[Subject, bool]:
    """The gov behind a claim's bearer token, and whether it was remembered rather than looked up (then the
    claim's batch checks the token is live; `refusal` re-checks it for a claim refused before its batch)."""
    subject = _claim_subjects.get(_claim_key(state, authorization)) if remember else None
    remembered = subject is not None
    if subject is None:
        subject = await _look_up_claim_token(state, authorization)
    else:
        await auth_service.touch_remembered(state.engine, subject.token_id)
    if subject.role != "gov":
        raise EngineError("FORBIDDEN", f"This needs the role gov; the token is {subject.role}.")
    return subject, remembered


async def refusal(state, authorization: str | None, exc: EngineError) -> EngineError:
    """The answer to a claim refused with `exc` whose token was remembered: UNAUTHENTICATED if the token is revoked
    by now (what a look-up first would have answered), else `exc`."""
    if exc.code == "UNAUTHENTICATED":  # the batch found the token revoked
        _claim_subjects.pop(_claim_key(state, authorization), None)
        return exc
    try:
        await _look_up_claim_token(state, authorization)
    except EngineError as unauthenticated:
        return unauthenticated
    return exc


async def claims_subject(request: Request, authorization: Annotated[str | None, Header()] = None) -> Subject:
    # The framework's route validates the body along with this dependency, so it looks the token up every time
    # (the fast path, campaigns/fastpath.py, serves the bursts).
    subject, _ = await authenticate_claim(request.app.state.ve, authorization, remember=False)
    return subject


ClaimsGov = Annotated[Subject, Depends(claims_subject)]
Reader = Annotated[Subject, Depends(require("gov", "auditor", "admin"))]
CampaignId = Annotated[str, Path(max_length=64)]
IssuanceId = Annotated[str, Path(max_length=64)]
WalletId = Annotated[str, Path(pattern=WALLET_PATTERN)]

POOL_KEY = "campaigns.pool"
BATCHER_KEY = "campaigns.batcher"
RUNNER_KEY = "campaigns.claims_runner"
JOBS_KEY = "campaigns.jobs"
SWEEP_KEY = "campaigns.sweep"
STALE_JOB_AFTER = timedelta(minutes=10)


# ---------------------------------------------------------------------------------------------------------------
# Contracts and campaigns.


async def _contract_body(request: Request) -> SourceBody:
    """The contract to check or create: `{"source": "..."}` as JSON, or the contract's text itself as `text/plain`
    (UTF-8), so that nobody has to JSON-escape a contract by hand (`curl --data-binary @f.contract -H
    'Content-Type: text/plain'`)."""
    raw = await request.body()
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "text/plain":
        try:
            data: Any = {"source": raw.decode("utf-8")}
        except UnicodeDecodeError:
            raise EngineError("VALIDATION_ERROR", "A text/plain contract must be UTF-8 text.") from None
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": None}]
            ) from None
    try:
        return SourceBody.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


ContractBody = Annotated[SourceBody, Depends(_contract_body)]
CONTRACT_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SourceBody.model_json_schema()},
            "text/plain": {"schema": {"type": "string", "description": "The contract's text itself (UTF-8)."}},
        },
    }
}


@router.post(
    "/v1/contracts/check",
    response_model=CheckAnswer,
    responses={
        422: {"description": "CONTRACT_INVALID: `errors` lists each {line, column, message}, `warnings` the same way"}
    },
    **operation(
        "Check a contract (gov)",
        "Parses and checks a contract without creating anything: a summary and warnings, or 422 `CONTRACT_INVALID` listing every error with line and column (and the warnings beside them). The body may also be the contract text itself with `Content-Type: text/plain`.",
        request_example={
            "source": 'campaign "Shanghai dining vouchers 2025" issuer 310000\nbudget ¥10,000,000\nvoucher threshold: spend ¥100, get ¥20 off\nvalid from 2025-01-01 00:00 to 2025-01-31 23:59 China time\n'
        },
        response_example={
            "ok": True,
            "summary": {"name": "Shanghai dining vouchers 2025", "issuer": "310000", "budget_fen": 1000000000},
            "warnings": [],
        },
        errors=["CONTRACT_INVALID"],
        openapi_extra=CONTRACT_REQUEST_BODY,
    ),
)
async def check_contract(body: ContractBody, _: Reader) -> CheckAnswer:
    return await service.check_off_loop(body.source)


@router.post(
    "/v1/contracts/explain",
    response_model=ExplainAnswer,
    response_model_exclude_none=True,
    responses={422: {"description": "CONTRACT_INVALID or VALIDATION_ERROR"}},
    **operation(
        "What a contract would do with one sample payment, and why",
        (
            "Checks the contract, then evaluates the payment as a till's redemption would (validity window, holder "
            "conditions when `holder` is given, payment conditions, the subsidy): the code the till would get (null when "
            "it would settle), the subsidy and what the holder pays, and each failed condition with its line and column. "
            "Nothing is stored. gov, auditor, admin. Errors: 401, 403, 422 CONTRACT_INVALID (the contract's `errors`), "
            "422 VALIDATION_ERROR (a payment that cannot be read)."
        ),
        request_example={
            "source": 'campaign "Shanghai dining vouchers 2025" issuer 310000\nbudget ¥10,000,000\nvoucher threshold: spend ¥100, get ¥20 off\nvalid from 2025-01-01 00:00 to 2025-01-31 23:59 China time\n',
            "payment": {
                "merchant": {"mcc": "5812", "region_code": "310104", "tags": []},
                "at": "2025-01-15T12:00:00+08:00",
                "order_amount_fen": 9999,
            },
        },
        response_example={
            "ok": False,
            "subsidy_fen": 0,
            "payable_fen": 9999,
            "explain": [{"rule": "spend ¥100", "line": 3, "column": 9, "actual": 9999, "expected": 10000}],
        },
        errors=["CONTRACT_INVALID"],
    ),
)
async def explain_contract(body: ExplainBody, _: Reader) -> ExplainAnswer:
    return ExplainAnswer(**service.explain(body.source, body.payment, body.holder, body.issued_at))


# One campaign as the detail endpoints answer it; each operation's example differs only in its status.
_CAMPAIGN_EXAMPLE: dict[str, Any] = {
    "id": "cmp_7f3a9c2e1b4d5a60",
    "name": "Shanghai dining vouchers 2025",
    "status": "active",
    "issuer_id": "iss_4c1d2e3f5a6b",
    "budget_fen": 1000000000,
    "contract_sha256": "e3b0…55",
    "funders": [
        {
            "issuer_id": "iss_4c1d2e3f5a6b",
            "region_code": "310000",
            "share_bp": 10000,
            "amount_fen": 1000000000,
            "approval": "own",
        }
    ],
    "totals": {
        "funded_fen": 1000000000,
        "issued_fen": 200000,
        "redeemed_fen": 2000,
        "refunded_fen": 0,
        "returned_fen": 0,
        "outstanding_fen": 999998000,
        "vouchers_issued": 10,
        "vouchers_redeemed": 1,
        "clawed_back_fen": 0,
        "order_amount_fen": 12000,
    },
}


@router.post(
    "/v1/campaigns",
    status_code=201,
    response_model=CampaignDetail,
    **operation(
        "Create a campaign from its contract (gov)",
        "The contract's text is the whole campaign. Answers it as a draft. Co-funders named in it must be registered issuers and approve their shares before funding. Also accepts the contract as `text/plain`.",
        request_example={
            "source": 'campaign "Shanghai dining vouchers 2025" issuer 310000\nbudget ¥10,000,000\nvoucher threshold: spend ¥100, get ¥20 off\nvalid from 2025-01-01 00:00 to 2025-01-31 23:59 China time\n'
        },
        response_example={**_CAMPAIGN_EXAMPLE, "status": "draft"},
        errors=["CONTRACT_INVALID"],
        openapi_extra=CONTRACT_REQUEST_BODY,
    ),
)
async def create_campaign(body: ContractBody, state: State, subject: Gov) -> CampaignDetail:
    async with state.engine.begin() as conn:
        return await service.create(conn, subject, body.source)


@router.get(
    "/v1/campaigns",
    response_model=Page[Campaign],
    **operation(
        "The caller's campaigns",
        "A gov sees its own issuer's (and those it co-funds); an auditor those in its scope; paged by cursor.",
        response_example={
            "items": [
                {
                    "id": "cmp_7f3a9c2e1b4d5a60",
                    "name": "Shanghai dining vouchers 2025",
                    "status": "active",
                    "budget_fen": 1000000000,
                }
            ],
            "next_cursor": None,
        },
    ),
)
async def list_campaigns(state: State, subject: Reader, limit: Limit = 100, cursor: Cursor = None) -> Page[Campaign]:
    async with state.engine.connect() as conn:
        items = await service.list_campaigns(conn, subject, after=decode_cursor(cursor), limit=limit + 1)
    page = items[:limit]
    return Page(items=page, next_cursor=encode_cursor(page[-1].id) if len(items) > limit else None)


@router.get(
    "/v1/campaigns/{campaign_id}",
    response_model=CampaignDetail,
    **operation(
        "A campaign and its totals",
        "Status, budget, funders with their approval, and where every fen stands.",
        response_example={**_CAMPAIGN_EXAMPLE, "status": "active"},
    ),
)
async def get_campaign(campaign_id: CampaignId, state: State, subject: Reader) -> CampaignDetail:
    async with state.engine.connect() as conn:
        return await service.get(conn, subject, campaign_id)


def _transition_endpoint(action: str):
    async def endpoint(campaign_id: CampaignId, state: State, subject: Gov) -> CampaignDetail:
        async with state.engine.begin() as conn:
            return await service.transition(conn, subject, campaign_id, action)

    endpoint.__name__ = f"{action}_campaign"
    return endpoint


_TRANSITION_DOCS = {
    "fund": operation(
        "Fund a campaign (gov)",
        "Locks the whole budget: one ledger transaction moves each funder's share from its fiscal account to the campaign's escrow. Every co-funder's share must be approved, and within its appropriation.",
        response_example={**_CAMPAIGN_EXAMPLE, "status": "funded"},
        errors=["INVALID_STATE", "INSUFFICIENT_FUNDS", "FUNDING_NOT_APPROVED"],
    ),
    "activate": operation(
        "Activate (or resume) a campaign (gov)",
        "From funded or paused: vouchers can be issued, claimed and spent.",
        response_example={**_CAMPAIGN_EXAMPLE, "status": "active"},
        errors=["INVALID_STATE"],
    ),
    "pause": operation(
        "Pause a campaign (gov)",
        "Nothing is issued or spent until activated again.",
        response_example={**_CAMPAIGN_EXAMPLE, "status": "paused"},
        errors=["INVALID_STATE"],
    ),
    "close": operation(
        "Close a campaign (gov)",
        "After the validity window, or early (which revokes every unredeemed voucher). Every unspent fen goes back to the funders in their shares (`voucher-engine campaign close --dry-run` shows what would happen).",
        response_example={**_CAMPAIGN_EXAMPLE, "status": "closed"},
        errors=["INVALID_STATE"],
    ),
}


for _action in ("fund", "activate", "pause", "close"):
    router.add_api_route(
        f"/v1/campaigns/{{campaign_id}}/{_action}",
        _transition_endpoint(_action),
        methods=["POST"],
        response_model=CampaignDetail,
        name=f"{_action}_campaign",
        responses={409: {"description": "INVALID_STATE: the move is not allowed from this status"}},
        **_TRANSITION_DOCS[_action],
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


_APPROVED_SHARE: dict[str, Any] = {
    "issuer_id": "iss_000000",
    "region_code": "000000",
    "share_bp": 9000,
    "amount_fen": 4_500_000_000,
    "approval": "approved",
    "decided_by": "tok_5f0c1a2b3c4d5e6f",
    "decided_at": "2025-01-10T09:30:00+08:00",
}
_DECIDED_EXAMPLE: dict[str, Any] = {
    "id": "cmp_7f3a9c2e1b4d5a60",
    "name": "Appliance trade-in 2025",
    "status": "draft",
    "issuer_id": "iss_310000",
    "budget_fen": 5_000_000_000,
    "funders": [
        _APPROVED_SHARE,
        {
            "issuer_id": "iss_310000",
            "region_code": "310000",
            "share_bp": 1000,
            "amount_fen": 500_000_000,
            "approval": "own",
        },
    ],
    "funder_decisions": [
        {
            "issuer_id": "iss_000000",
            "decision": "approved",
            "token_id": "tok_5f0c1a2b3c4d5e6f",
            "decided_at": "2025-01-10T09:30:00+08:00",
        }
    ],
}

for _action in ("approve", "decline"):
    router.add_api_route(
        f"/v1/campaigns/{{campaign_id}}/funders/{{issuer_id}}/{_action}",
        _decision_endpoint(_action),
        methods=["POST"],
        response_model=CampaignDetail,
        name=f"{_action}_funding",
        **operation(
            f"{_action.capitalize()} a co-funder's share of a campaign (that co-funder's gov)",
            "The government of the co-funder `issuer_id` (a gov token bound to it) "
            + ("approves" if _action == "approve" else "declines")
            + " its share while the campaign is a draft. The answer is the campaign: `funders` show each share's "
            "`approval`, `funder_decisions` keep every decision with the token that gave it and when. Deciding again "
            "the way it stands changes nothing; once funded, consents are final (`INVALID_STATE`). "
            + (
                "Approving a share that would take the co-funder beyond its appropriation is `INSUFFICIENT_FUNDS`."
                if _action == "approve"
                else "A declined share blocks funding (`FUNDING_NOT_APPROVED`) until approved."
            ),
            response_example=_DECIDED_EXAMPLE
            if _action == "approve"
            else {**_DECIDED_EXAMPLE, "funders": [{**_APPROVED_SHARE, "approval": "declined"}]},
            errors=["NOT_FOUND", "INVALID_STATE"] + (["INSUFFICIENT_FUNDS"] if _action == "approve" else []),
        ),
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
    responses={
        202: {
            "model": IssuanceResult,
            "description": f"{JOB_THRESHOLD} holders or more: a job; poll GET /v1/issuances/{{id}}",
        }
    },
    **operation(
        "Issue vouchers to holders or by lottery (gov)",
        "`holders` (targeted) or `lottery` (applicants and a seed anyone can recompute the draw from). Rejected holders are listed with their code; a `NOT_ELIGIBLE` one with `explain`. A large list may answer 202 with a job to poll.",
        request_example={
            "holders": [
                {
                    "wallet_id": "0000000000000001",
                    "id_hash": "h:9f86d081884c7d65",
                    "attributes": {"age": 30, "residence_region": "310104"},
                }
            ]
        },
        response_example={
            "issuance_id": "isn_01HZX",
            "issued": 1,
            "rejected": [
                {
                    "wallet_id": "0000000000000002",
                    "code": "NOT_ELIGIBLE",
                    "explain": [{"rule": "age >= 18", "line": 12, "column": 5, "actual": 17, "expected": 18}],
                }
            ],
        },
        errors=["CAMPAIGN_NOT_ACTIVE", "INVALID_STATE", "ATTESTATION_INVALID"],
        openapi_extra=_ISSUANCE_BODY,
    ),
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


@router.get(
    "/v1/issuances/{issuance_id}",
    response_model=IssuanceResult,
    **operation(
        "An issuance's result or progress",
        "The outcome of an issuance (or the progress of one still running).",
        response_example={
            "issuance_id": "isn_01HZX",
            "campaign_id": "cmp_7f3a9c2e1b4d5a60",
            "status": "done",
            "total": 2,
            "processed": 2,
            "issued": 1,
            "rejected_count": 1,
        },
    ),
)
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
        422: {"description": "NOT_ELIGIBLE, with `explain`; ATTESTATION_INVALID, with the failed `check`"},
    },
    **operation(
        "Claim a voucher, first come first served (gov)",
        "For campaigns distributed first come: one voucher within the quantity and the per-holder limit.",
        request_example={
            "wallet_id": "0000000000000001",
            "id_hash": "h:9f86d081884c7d65",
            "attributes": {"age": 30, "residence_region": "310104"},
        },
        response_example={
            "id": "vch_7f3a9c2e1b4d5a6001",
            "code": "VE1.7f3a9c2e1b4d5a6001.Zk9x…",
            "campaign_id": "cmp_7f3a9c2e1b4d5a60",
            "wallet_id": "0000000000000001",
            "status": "issued",
            "valid_from": "2025-01-01T00:00:00+08:00",
            "valid_until": "2025-02-01T00:00:00+08:00",
            "terms": {"kind": "threshold", "spend_fen": 10000, "off_fen": 2000},
        },
        errors=[
            "SOLD_OUT",
            "HOLDER_LIMIT",
            "NOT_ELIGIBLE",
            "CAMPAIGN_NOT_ACTIVE",
            "ATTESTATION_INVALID",
            "RATE_LIMITED",
        ],
    ),
)
async def create_claim(campaign_id: CampaignId, body: ClaimBody, state: State, subject: ClaimsGov) -> Response:
    batcher = state.extras[BATCHER_KEY]
    document = await claims.claim(
        state, batcher, subject, campaign_id, body.wallet_id, body.id_hash, body.attributes, body.attestation
    )
    # Built by us, so not validated again on the way out (the hot path of a burst).
    return Response(document, status_code=201, media_type="application/json")


@router.get(
    "/v1/wallets/{wallet_id}/vouchers",
    response_model=Page[Voucher],
    **operation(
        "A holder's vouchers (gov, auditor)",
        "Every voucher of a wallet within the caller's scope.",
        response_example={
            "items": [
                {
                    "id": "vch_7f3a9c2e1b4d5a6001",
                    "code": "VE1.7f3a9c2e1b4d5a6001.Zk9x…",
                    "campaign_id": "cmp_7f3a9c2e1b4d5a60",
                    "wallet_id": "0000000000000001",
                    "status": "issued",
                    "valid_from": "2025-01-01T00:00:00+08:00",
                    "valid_until": "2025-02-01T00:00:00+08:00",
                    "terms": {"kind": "threshold", "spend_fen": 10000, "off_fen": 2000},
                }
            ],
            "next_cursor": None,
        },
    ),
)
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
    runner = claims.ClaimRunner(state.extras[POOL_KEY])
    batcher = MicroBatcher(
        runner.run_batch, name="claims", max_batch=claims.MAX_BATCH, max_inflight=claims.MAX_INFLIGHT
    )
    batcher.start()
    state.extras[RUNNER_KEY] = runner
    state.extras[BATCHER_KEY] = batcher
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
        await batcher.stop()
    runner = state.extras.pop(RUNNER_KEY, None)
    if runner is not None:
        await runner.close()
    pool = state.extras.pop(POOL_KEY, None)
    if pool is not None:
        await pool.close()
