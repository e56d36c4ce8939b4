"""HTTP routes of risk control: the flags (admin, auditor, the campaign's gov) and decisions on them (admin, the
campaign's gov). Thin: each calls a service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from voucher_engine.auth.dependencies import require
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.redemption.dispatch import RUNNER_KEY
from voucher_engine.risk import decisions, service
from voucher_engine.risk.schemas import FLAG_ID_PATTERN, DecisionRequest, FlagPage, RiskFlag, RuleSet
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, decode_cursor, encode_cursor
from voucher_engine.web.state import AppState, State

Reader = Annotated[Subject, Depends(require("admin", "auditor", "gov"))]
Decider = Annotated[Subject, Depends(require("admin", "gov"))]
FlagId = Annotated[str, Path(pattern=FLAG_ID_PATTERN)]
Status = Annotated[str | None, Query(pattern="^(open|cleared|confirmed)$")]
IdFilter = Annotated[str | None, Query(min_length=1, max_length=128)]
SignalFilter = Annotated[str | None, Query(pattern="^[a-z_]{1,64}$")]

router = APIRouter(prefix="/v1/risk", tags=["risk"])


async def startup(state: AppState) -> None:
    """Give the worker's redemption batches the function that opens their flags (the redemption room judges the
    per-redemption rules itself, from contracts/risk.py, but does not depend on this room)."""
    runner = state.extras.get(RUNNER_KEY)
    if runner is not None:
        runner.flag_writer = service.BatchFlags()


async def shutdown(state: AppState) -> None:
    return None


FLAG_EXAMPLE: dict[str, Any] = {
    "id": "rf_5b1e0c7d9a2f4e6b8c0d",
    "signal": "refund_reredeem",
    "outcome": "flag",
    "merchant_id": "demo-noodle-bar",
    "campaign_id": "cmp_7f3a9c2e1b4d5a60",
    "redemption_ids": ["rdm_7f3a9c2e1b4d5a60a1b2c3d4e5f6a7b8c9d0e1f2"],
    "evidence": {
        "rule": "refund_reredeem after 2: flag",
        "source": "platform default",
        "actual": 2,
        "expected": "< 2",
        "refunds_at_merchant": 2,
        "order_amount_fen": 12000,
    },
    "status": "open",
    "opened_at": "2025-01-15T12:00:00+08:00",
    "hold_caused": False,
    "decision": None,
}
DECIDED_EXAMPLE: dict[str, Any] = {
    **FLAG_EXAMPLE,
    "status": "confirmed",
    "decision": {
        "decision": "confirm",
        "note": "the till's receipts show no sale",
        "role": "gov",
        "token_id": "tok_3c9d",
        "issuer_id": "iss_310000",
        "decided_at": "2025-01-16T09:30:00+08:00",
        "clawback_ids": ["clb_8a7f6e5d4c3b2a190817"],
        "released_hold": False,
    },
}


@router.get(
    "/flags",
    response_model=FlagPage,
    responses={404: {"description": "NOT_FOUND: a campaign_id the caller cannot see."}},
    **operation(
        "List risk flags",
        "Flags opened by the risk rules, newest first, paged by cursor, with their evidence and any decision. "
        "Filters: `campaign_id`, `merchant_id`, `status` (open | cleared | confirmed), `signal`. Admin and auditors "
        "bound to no issuer see every flag; a gov (or a bound auditor) those of its own issuer's campaigns.",
        response_example={"items": [FLAG_EXAMPLE], "next_cursor": None},
        errors=["NOT_FOUND", "VALIDATION_ERROR"],
    ),
)
async def list_flags(
    state: State,
    subject: Reader,
    campaign_id: IdFilter = None,
    merchant_id: IdFilter = None,
    status: Status = None,
    signal: SignalFilter = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> FlagPage:
    after = decode_cursor(cursor)
    if after is not None and not after.isdigit():
        raise EngineError("VALIDATION_ERROR", "The cursor is not one this service gave out.")
    async with state.engine.connect() as conn:
        items, next_seq = await service.list_flags(
            conn,
            subject,
            campaign_id=campaign_id,
            merchant_id=merchant_id,
            status=status,
            signal=signal,
            before_seq=int(after) if after is not None else None,
            limit=limit,
        )
    return FlagPage(items=items, next_cursor=encode_cursor(str(next_seq)) if next_seq is not None else None)


@router.get(
    "/flags/{flag_id}",
    response_model=RiskFlag,
    responses={404: {"description": "NOT_FOUND: no such flag visible to the caller."}},
    **operation(
        "A risk flag",
        "One flag with its evidence and its decision (who, when, what it moved). Admin, auditors, the campaign's gov.",
        response_example=DECIDED_EXAMPLE,
        errors=["NOT_FOUND"],
    ),
)
async def get_flag(flag_id: FlagId, state: State, subject: Reader) -> RiskFlag:
    async with state.engine.connect() as conn:
        return await service.get_flag(conn, subject, flag_id)


@router.post(
    "/flags/{flag_id}/decision",
    response_model=RiskFlag,
    responses={
        404: {"description": "NOT_FOUND: no such flag visible to the caller."},
        409: {"description": "INVALID_STATE: the flag was already decided (a decision is made once)."},
    },
    **operation(
        "Clear or confirm a risk flag",
        "`confirm` claws back every redemption the flag names (subsidy still standing, merchant → escrow, "
        "`clawback`) and keeps the merchant on payout hold; `clear` releases the payout hold the flag caused (not one "
        "an operator set by hand or another open flag still needs). One transaction; a flag is decided once, kept "
        "with who decided and when. Admin, or the gov of the flag's campaign's issuer.",
        request_example={"decision": "confirm", "note": "the till's receipts show no sale"},
        response_example=DECIDED_EXAMPLE,
        errors=["NOT_FOUND", "INVALID_STATE", "FORBIDDEN"],
    ),
)
async def decide(flag_id: FlagId, body: DecisionRequest, state: State, subject: Decider) -> RiskFlag:
    return await decisions.decide(state.engine, subject, flag_id, body.decision, body.note)


@router.get(
    "/rules",
    response_model=RuleSet,
    responses={404: {"description": "NOT_FOUND: a campaign_id the caller cannot see."}},
    **operation(
        "The risk rules in force",
        "Without `campaign_id`, the platform's default rules with their thresholds; with it, the campaign's: the "
        "defaults with its contract's `risk { … }` section applied (each rule says where it was written). Admin, "
        "auditors, the campaign's gov.",
        response_example={
            "campaign_id": None,
            "rules": [
                {
                    "signal": "refund_reredeem",
                    "outcome": "refuse",
                    "limits": {"after": 3},
                    "rule": "refund_reredeem after 3: refuse",
                    "source": "platform default",
                    "line": None,
                    "column": None,
                }
            ],
        },
        errors=["NOT_FOUND"],
    ),
)
async def rules(state: State, subject: Reader, campaign_id: IdFilter = None) -> RuleSet:
    async with state.engine.connect() as conn:
        return await service.rules(conn, subject, campaign_id)
