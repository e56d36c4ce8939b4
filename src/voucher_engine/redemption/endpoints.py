"""`/v1/redemptions` (merchant POS, signed): quote, redeem, refund, look up."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from voucher_engine.api.deps import PosSignature, SignedCaller, State
from voucher_engine.api.paging import Page
from voucher_engine.api.state import AppState
from voucher_engine.campaigns.codes import parse_code
from voucher_engine.errors import EngineError
from voucher_engine.observability.metrics import Metrics
from voucher_engine.redemption import refunds
from voucher_engine.redemption.batcher import MicroBatcher, Overloaded
from voucher_engine.redemption.guard import CodeGuard
from voucher_engine.redemption.schemas import (
    PosTxnId,
    Quote,
    QuoteRequest,
    Redemption,
    RedeemRequest,
    Refund,
    RefundRequest,
)
from voucher_engine.redemption.service import BatchRunner, Job, Outcome, fingerprint

log = logging.getLogger("voucher_engine.redemption")
router = APIRouter(prefix="/v1/redemptions", tags=["redemption"])
RedemptionId = Annotated[str, Path(max_length=64)]
EXTRA_KEY = "redemption.batcher"
GUARD_KEY = "redemption.guard"


RUNNER_KEY = "redemption.runner"


async def startup(state: AppState) -> None:
    runner = BatchRunner(state.engine)
    metrics = Metrics.get()

    async def run_batch(jobs):  # the batch's size counted for /metrics
        metrics.batch(len(jobs))
        return await runner.run_batch(jobs)

    batcher = MicroBatcher(run_batch)
    batcher.start()
    state.extras[RUNNER_KEY] = runner
    state.extras[EXTRA_KEY] = batcher
    state.extras[GUARD_KEY] = CodeGuard(state.engine)


async def shutdown(state: AppState) -> None:
    batcher = state.extras.pop(EXTRA_KEY, None)
    if batcher is not None:
        await batcher.stop()
    runner = state.extras.pop(RUNNER_KEY, None)
    if runner is not None:
        await runner.close()


def _job(state: AppState, kind: str, signature, body: QuoteRequest, **extra: Any) -> Job:
    items = [item.model_dump() for item in body.items] if body.items is not None else None
    job = Job(
        kind=kind,
        key_id=signature.key_id,
        nonce=signature.nonce,
        wallet_id=body.wallet_id,
        order_amount_fen=body.order_amount_fen,
        items=items,
        **extra,
    )
    try:
        job.campaign_id, job.voucher_id = parse_code(state.server_secret, body.voucher_code)
    except EngineError as exc:
        # Answered only after the batch has checked the key and spent the nonce: the signature comes first.
        job.code_error = exc
    return job


_OUTCOMES = {("redeem", 201): "settled", ("redeem", 200): "replayed"}


async def _through_batcher(state: AppState, job: Job) -> Outcome:
    """The job's answer, counted by outcome code for /metrics (`settled`, `replayed`, `quoted` or the refusal's)."""
    try:
        outcome = await _answer(state, job)
    except EngineError as exc:
        Metrics.get().redemption(job.kind, exc.code)
        raise
    Metrics.get().redemption(job.kind, _OUTCOMES.get((job.kind, outcome.status), "quoted"))
    return outcome


async def _answer(state: AppState, job: Job) -> Outcome:
    guard: CodeGuard = state.extras[GUARD_KEY]
    guard.check(job.key_id)  # a key caught guessing codes is refused before any database work
    try:
        state.extras[EXTRA_KEY].submit(job)
    except Overloaded:
        raise EngineError("RATE_LIMITED", "The service is at capacity; retry in a moment.") from None
    try:
        return await job.future
    except EngineError as refusal:
        if refusal.code != "VOUCHER_UNKNOWN":
            raise
        # The failure path alone pays for the count (one round trip); the answer that crosses the limit is
        # already the refusal.
        try:
            over = await guard.record_unknown(job.key_id)
        except Exception:  # noqa: BLE001 - the till's answer matters more than the count
            log.warning("could not count an unknown voucher code", exc_info=True)
            raise refusal from None
        if over:
            raise guard.refusal(job.key_id) from None
        raise


@router.post("/quote", response_model=Quote, response_model_exclude_none=True)
async def quote(body: QuoteRequest, signature: PosSignature, state: State) -> dict:
    """What `redeem` would do now, changing nothing (the nonce is still spent)."""
    outcome = await _through_batcher(state, _job(state, "quote", signature, body))
    return outcome.body


@router.post(
    "",
    status_code=201,
    response_model=Redemption,
    responses={200: {"model": Redemption, "description": "A retry: the original redemption."}},
)
async def redeem(body: RedeemRequest, signature: PosSignature, state: State, response: Response) -> dict:
    job = _job(
        state,
        "redeem",
        signature,
        body,
        pos_txn_id=body.pos_txn_id,
        request_sha256=fingerprint(body.model_dump(mode="json")),
    )
    outcome = await _through_batcher(state, job)
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
