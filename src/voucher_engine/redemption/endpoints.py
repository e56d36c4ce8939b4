"""`/v1/redemptions` (merchant POS, signed): quote, redeem, refund, look up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from voucher_engine.merchants.dependencies import PosSignature, SignedCaller
from voucher_engine.redemption import refunds
from voucher_engine.redemption.dispatch import make_job, through_batcher
from voucher_engine.redemption.schemas import (
    PosTxnId,
    Quote,
    QuoteRequest,
    RedeemRequest,
    Redemption,
    Refund,
    RefundRequest,
)
from voucher_engine.redemption.service import fingerprint
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Page
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/redemptions", tags=["redemption"])
RedemptionId = Annotated[str, Path(max_length=64)]


# One redemption as the till gets it: the example of every redemption answer below.
_REDEMPTION_EXAMPLE: dict[str, Any] = {
    "id": "rdm_7f3a9c2e1b4d5a60a1b2c3d4e5f6a7b8c9d0e1f2",
    "status": "settled",
    "voucher_id": "vch_7f3a9c2e1b4d5a6001",
    "campaign_id": "cmp_7f3a9c2e1b4d5a60",
    "merchant_id": "demo-noodle-bar",
    "pos_txn_id": "till7-000123",
    "order_amount_fen": 12000,
    "subsidy_fen": 2000,
    "payable_fen": 10000,
    "refunded_fen": 0,
    "subsidy_refunded_fen": 0,
    "ledger_tx_id": "tx_01HZY3K8M2",
    "settled_at": "2025-01-15T12:00:00+08:00",
}


@router.post(
    "/quote",
    response_model=Quote,
    response_model_exclude_none=True,
    **operation(
        "What a redemption would do now (till)",
        "Changes nothing. A voucher that exists and belongs to the wallet always answers 200: `eligible: false` with the `code` a redemption would get (and `explain` for rule failures). An unknown code is 404 `VOUCHER_UNKNOWN`; another wallet's voucher 403 `VOUCHER_NOT_HOLDER`.",
        request_example={
            "voucher_code": "VE1.7f3a9c2e1b4d5a6001.Zk9x…",
            "wallet_id": "0000000000000001",
            "order_amount_fen": 12000,
        },
        response_example={"eligible": True, "subsidy_fen": 2000, "payable_fen": 10000},
        errors=["VOUCHER_UNKNOWN", "VOUCHER_NOT_HOLDER", "MERCHANT_SUSPENDED", "RATE_LIMITED"],
    ),
)
async def quote(body: QuoteRequest, signature: PosSignature, state: State) -> dict:
    """What `redeem` would do now, changing nothing (the nonce is still spent)."""
    outcome = await through_batcher(state, make_job(state, "quote", signature, body))
    return outcome.body


@router.post(
    "",
    status_code=201,
    response_model=Redemption,
    responses={200: {"model": Redemption, "description": "A retry: the original redemption."}},
    **operation(
        "Redeem a voucher (till)",
        "Settles at once: the subsidy moves from escrow to the merchant in the same transaction. `(merchant, pos_txn_id)` is the idempotency key: the same request again answers the same redemption (200); a different body is `IDEMPOTENCY_CONFLICT` naming the differing `fields`. `VOUCHER_ALREADY_REDEEMED` names the caller's own earlier redemption (`redemption_id`). Order items: `{sku, category, amount_fen, attributes}`; item facts go under `attributes`.",
        request_example={
            "voucher_code": "VE1.7f3a9c2e1b4d5a6001.Zk9x…",
            "wallet_id": "0000000000000001",
            "order_amount_fen": 12000,
            "pos_txn_id": "till7-000123",
        },
        response_example=_REDEMPTION_EXAMPLE,
        errors=[
            "VOUCHER_UNKNOWN",
            "VOUCHER_NOT_HOLDER",
            "VOUCHER_ALREADY_REDEEMED",
            "VOUCHER_EXPIRED",
            "VOUCHER_NOT_YET_VALID",
            "VOUCHER_REVOKED",
            "RULE_NOT_SATISFIED",
            "CAMPAIGN_NOT_ACTIVE",
            "MERCHANT_SUSPENDED",
            "IDEMPOTENCY_CONFLICT",
            "DAILY_BUDGET_EXHAUSTED",
            "INSUFFICIENT_FUNDS",
            "RATE_LIMITED",
        ],
    ),
)
async def redeem(body: RedeemRequest, signature: PosSignature, state: State, response: Response) -> dict:
    job = make_job(
        state,
        "redeem",
        signature,
        body,
        pos_txn_id=body.pos_txn_id,
        request_sha256=fingerprint(body.model_dump(mode="json")),
    )
    outcome = await through_batcher(state, job)
    response.status_code = outcome.status
    return outcome.body


@router.post(
    "/{redemption_id}/refunds",
    status_code=201,
    response_model=Refund,
    responses={200: {"model": Refund, "description": "A retry: the original refund."}},
    **operation(
        "Refund part or all of an order (till)",
        "Idempotent by `refund_id`. A full refund returns the subsidy and gives the voucher back while valid; a partial one claws back the proportional share, or the whole subsidy when the kept order falls below the voucher's minimum spend.",
        request_example={"refund_id": "till7-000123-r1", "amount_fen": 12000, "reason": "customer return"},
        response_example={
            "refund_id": "till7-000123-r1",
            "redemption_id": "rdm_7f3a9c2e1b4d5a60a1b2c3d4e5f6a7b8c9d0e1f2",
            "amount_fen": 12000,
            "subsidy_clawback_fen": 2000,
            "reason": "customer return",
            "ledger_tx_id": "tx_01HZY3M0AB",
            "voucher_restored": True,
            "voucher_status": "issued",
            "created_at": "2025-01-15T12:30:00+08:00",
            "redemption": {
                **_REDEMPTION_EXAMPLE,
                "status": "refunded",
                "refunded_fen": 12000,
                "subsidy_refunded_fen": 2000,
            },
        },
        errors=["REFUND_EXCEEDS_ORDER", "IDEMPOTENCY_CONFLICT"],
    ),
)
async def refund(
    redemption_id: RedemptionId, body: RefundRequest, caller: SignedCaller, state: State, response: Response
) -> Refund:
    result, created = await refunds.refund(state.engine, caller.merchant_id, redemption_id, body)
    response.status_code = 201 if created else 200
    return result


@router.get(
    "/{redemption_id}",
    response_model=Redemption,
    **operation(
        "One of the merchant's redemptions (till)",
        "A merchant sees only its own.",
        response_example=_REDEMPTION_EXAMPLE,
    ),
)
async def get_redemption(redemption_id: RedemptionId, caller: SignedCaller, state: State) -> dict:
    return await refunds.get_redemption(state.engine, caller.merchant_id, redemption_id)


@router.get(
    "",
    response_model=Page[Redemption],
    **operation(
        "Find a redemption by till transaction id (till)",
        "The merchant's redemption made with this `pos_txn_id`, as a one-item list (empty if none): what a till that lost an answer asks.",
        response_example={
            "items": [_REDEMPTION_EXAMPLE],
            "next_cursor": None,
        },
    ),
)
async def find_redemption(caller: SignedCaller, state: State, pos_txn_id: Annotated[PosTxnId, Query()]) -> dict:
    """The merchant's redemption with this till transaction id (its own only), as a one-item list."""
    found = await refunds.find_by_pos_txn(state.engine, caller.merchant_id, pos_txn_id)
    return {"items": [found] if found else [], "next_cursor": None}
