"""`/v1/redemptions` (merchant POS, signed): quote, redeem, refund, look up."""

from __future__ import annotations

from typing import Annotated

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
from voucher_engine.web.paging import Page
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/redemptions", tags=["redemption"])
RedemptionId = Annotated[str, Path(max_length=64)]


@router.post("/quote", response_model=Quote, response_model_exclude_none=True)
async def quote(body: QuoteRequest, signature: PosSignature, state: State) -> dict:
    """What `redeem` would do now, changing nothing (the nonce is still spent)."""
    outcome = await through_batcher(state, make_job(state, "quote", signature, body))
    return outcome.body


@router.post(
    "",
    status_code=201,
    response_model=Redemption,
    responses={200: {"model": Redemption, "description": "A retry: the original redemption."}},
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
)
async def refund(
    redemption_id: RedemptionId, body: RefundRequest, caller: SignedCaller, state: State, response: Response
) -> Refund:
    result, created = await refunds.refund(state.engine, caller.merchant_id, redemption_id, body)
    response.status_code = 201 if created else 200
    return result


@router.get("/{redemption_id}", response_model=Redemption)
async def get_redemption(redemption_id: RedemptionId, caller: SignedCaller, state: State) -> dict:
    return await refunds.get_redemption(state.engine, caller.merchant_id, redemption_id)


@router.get("", response_model=Page[Redemption])
async def find_redemption(caller: SignedCaller, state: State, pos_txn_id: Annotated[PosTxnId, Query()]) -> dict:
    """The merchant's redemption with this till transaction id (its own only), as a one-item list."""
    found = await refunds.find_by_pos_txn(state.engine, caller.merchant_id, pos_txn_id)
    return {"items": [found] if found else [], "next_cursor": None}
