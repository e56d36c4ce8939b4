"""How a till's quote or redemption reaches the micro-batcher, shared by the FastAPI routes (`endpoints.py`) and
the lean hot path (`fastpath.py`): the per-worker batcher and code guard, a request turned into a batch `Job`, and
the answer taken from it (with the code-guessing count on the failure path)."""

from __future__ import annotations

import logging
from typing import Any

from voucher_engine.campaigns.codes import parse_code
from voucher_engine.db.batcher import MicroBatcher
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.observability.metrics import Metrics
from voucher_engine.redemption import repository
from voucher_engine.redemption.guard import CodeGuard
from voucher_engine.redemption.schemas import QuoteRequest
from voucher_engine.redemption.service import BatchRunner, Job, Outcome, as_engine_error
from voucher_engine.web.state import AppState

log = logging.getLogger("voucher_engine.redemption")
EXTRA_KEY = "redemption.batcher"
GUARD_KEY = "redemption.guard"
RUNNER_KEY = "redemption.runner"


async def startup(state: AppState) -> None:
    runner = BatchRunner(state.engine, risk=state.settings.risk == "on")
    metrics = Metrics.get()

    async def run_batch(jobs: list[Job]) -> None:  # the batch's size counted for /metrics (it hands nothing back)
        metrics.batch(len(jobs))
        await runner.run_batch(jobs)

    batcher = MicroBatcher(
        run_batch, name="redemption", classify=as_engine_error, gather_s=state.settings.batch_gather_ms / 1000
    )
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


def make_job(state: AppState, kind: str, signature, body: QuoteRequest, **extra: Any) -> Job:
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


async def through_batcher(state: AppState, job: Job) -> Outcome:
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
    state.extras[EXTRA_KEY].submit(job)
    try:
        return await job.future
    except EngineError as refusal:
        if refusal.code == "VOUCHER_ALREADY_REDEEMED" and job.kind == "redeem":
            raise await _naming_own_redemption(state, job, refusal) from None
        if refusal.code != "VOUCHER_UNKNOWN":
            raise
        # The failure path alone pays for the count (one round trip); the answer that crosses the limit is
        # already the refusal.
        try:
            over = await guard.record_unknown(job.key_id)
        except Exception:
            log.warning("could not count an unknown voucher code", exc_info=True)
            raise refusal from None
        if over:
            raise guard.refusal(job.key_id) from None
        raise


async def _naming_own_redemption(state: AppState, job: Job, refusal: EngineError) -> EngineError:
    """A till that retried under a new pos_txn_id learns which of its own redemptions spent the voucher (another
    merchant's redemption is not named). The refusal path only: one look-up, never on a settling request."""
    if job.campaign_id is None or job.voucher_id is None:  # a code that did not parse spent no voucher
        return refusal
    try:
        async with state.engine.connect() as sa_conn:
            own = await repository.own_redemption_of_voucher(
                await driver(sa_conn), job.campaign_id, job.voucher_id, job.key_id
            )
    except Exception:  # noqa: BLE001 - the refusal stands without the name
        log.warning("could not look up the redemption that spent a voucher", exc_info=True)
        return refusal
    if own is None:
        return refusal
    return EngineError(
        "VOUCHER_ALREADY_REDEEMED",
        f"The voucher has already been used, by your redemption {own['id']} (pos_txn_id {own['pos_txn_id']!r}).",
        redemption_id=own["id"],
        pos_txn_id=own["pos_txn_id"],
    )
