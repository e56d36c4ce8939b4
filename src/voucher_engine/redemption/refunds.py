"""Refunds (退款) of settled redemptions, and the merchant's look-ups of its own redemptions.

A refund is one database transaction: lock the redemption, answer a retry from the stored refund, claw back the
subsidy's proportional share (rounded up, in the fund's favour) from the merchant to escrow (all of it when the
kept order falls below the voucher's minimum spend: decide.clawback_for says why), and, when the whole order has
been refunded, give the voucher back while its window is open. If the campaign has closed
meanwhile, the clawed-back subsidy goes on to the funders in the same transaction (a `return`), because a closed
campaign's escrow must stay empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.campaigns import money
from voucher_engine.campaigns import repository as campaign_repository
from voucher_engine.campaigns.cache import contract_for
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.invariants import invariant
from voucher_engine.ledger import service as ledger
from voucher_engine.ledger.model import NewTransaction, Posting
from voucher_engine.merchants.signing import SignatureHeaders
from voucher_engine.observability.metrics import Metrics
from voucher_engine.redemption import repository
from voucher_engine.redemption.decide import clawback_for
from voucher_engine.redemption.schemas import Refund, RefundRequest
from voucher_engine.redemption.service import campaign_of_redemption, compiled_contract, fingerprint, redemption_body
from voucher_engine.webhooks import service as webhooks

log = logging.getLogger("voucher_engine.redemption")


def _not_found() -> EngineError:
    return EngineError("NOT_FOUND", "No such redemption for this merchant.")


def _refund_model(row: Any, redemption: Any, voucher_status: str) -> Refund:
    return Refund(
        refund_id=row["refund_id"],
        redemption_id=row["redemption_id"],
        amount_fen=row["amount_fen"],
        subsidy_clawback_fen=row["subsidy_clawback_fen"],
        reason=row["reason"],
        ledger_tx_id=row["ledger_tx_id"],
        voucher_restored=row["voucher_restored"],
        voucher_status=voucher_status,
        created_at=row["created_at"],
        redemption=redemption_body(redemption),
    )


async def refund(engine: AsyncEngine, merchant_id: str, redemption_id: str, body: RefundRequest) -> tuple[Refund, bool]:
    """Answer (refund, created) for a caller whose signature (and nonce) has been checked already. Idempotent by
    `refund_id` within the redemption."""
    campaign_id = campaign_of_redemption(redemption_id)
    if campaign_id is None:
        raise _not_found()
    now = clock.now()
    async with engine.begin() as sa_conn:
        conn = await driver(sa_conn)
        campaign = await repository.lock_campaign_for_refund(conn, campaign_id)
        decided = await _decide(conn, merchant_id, campaign_id, redemption_id, body, campaign, now)
        if isinstance(decided, Refund):
            return decided, False
        return await _apply(sa_conn, conn, decided), True


# The unlocked way's statements, with and without a ledger posting (a refund whose subsidy is all back moves none).
_ALONE = repository.refund_alone(webhooks.EventItem.sql, post=False)
_ALONE_AND_POST = repository.refund_alone(webhooks.EventItem.sql, post=True)


async def refund_signed(
    engine: AsyncEngine, signature: SignatureHeaders, redemption_id: str, body: RefundRequest
) -> tuple[Refund, bool]:
    """A till's refund on the lean path (fastpath.py), its signature checked in memory. The unlocked way first, as
    a redemption batch goes: read without locks, decide, write everything in one statement that is its own
    transaction. The locked way answers whatever that one does not: a refusal, a retry, a write refused because
    something it was decided on changed meanwhile."""
    campaign_id = campaign_of_redemption(redemption_id)
    if campaign_id is not None:
        answer = await _refund_unlocked(engine, signature, campaign_id, redemption_id, body)
        if answer is not None:
            Metrics.get().write_way("refund", "unlocked")
            return answer, True
    Metrics.get().write_way("refund", "locked")
    return await _refund_locked(engine, signature, campaign_id, redemption_id, body)


async def _refund_unlocked(
    engine: AsyncEngine, signature: SignatureHeaders, campaign_id: str, redemption_id: str, body: RefundRequest
) -> Refund | None:
    """A new refund of an open campaign's redemption in two round trips, holding no lock between them: the campaign's
    escrow row, which every redemption batch of the campaign needs, is then locked only while the one statement
    runs and commits, never while this worker's event loop is busy elsewhere (as the locked way's COMMIT could be).
    None, having written nothing, for anything else."""
    now = clock.now()
    seen_at = clock.real_now()
    async with engine.connect() as sa_conn:
        conn = await driver(sa_conn)  # no transaction begun: each statement is its own
        peeked = await repository.peek_refund(
            conn, campaign_id, redemption_id, signature.key_id, signature.nonce, body.refund_id
        )
        if (
            peeked["key_merchant_id"] is None
            or peeked["nonce_spent"]
            or peeked["refund_taken"]
            or peeked["id"] is None
            or peeked["merchant_id"] != peeked["key_merchant_id"]
            or peeked["voucher_campaign_status"] in (None, "closed")  # after close the subsidy goes on to funders
        ):
            return None  # the locked way answers it (a refusal, a retry), spending the nonce as it must
        contract = await compiled_contract(conn, peeked["contract_sha256"])
        try:
            decided = _decision(peeked, campaign_id, redemption_id, body, contract.minimum_order_fen, now)
        except EngineError:
            return None
        write = decided.write
        alone = repository.RefundAlone(signature.key_id, signature.nonce, seen_at, peeked["voucher_campaign_status"])
        event = webhooks.EventItem(
            "refund.created", decided.answer.model_dump(mode="json"), campaign_id=campaign_id, at=write.at
        )
        posting = None
        if write.ledger_tx_id is not None:
            posting = ledger.prepare(
                [_take_back_transaction(peeked, write.clawback_fen, "refund", write.at)], [write.ledger_tx_id]
            )
        try:
            row, result = await repository.write_refund_alone(
                conn, _ALONE if posting is None else _ALONE_AND_POST, write, alone, event.args, posting
            )
        except asyncpg.PostgresError as exc:  # refused itself (something changed), or a constraint: nothing written
            log.debug("unlocked refund not written (%s); running it under locks", type(exc).__name__)
            return None
        if posting is not None and result is not None:
            posted = await ledger.landed(conn, posting, result)
            invariant([tx.id for tx in posted] == [write.ledger_tx_id], "the refund's posting went under its id")
        repository.check_refund_written(row, write)
        return decided.answer


async def _refund_locked(
    engine: AsyncEngine,
    signature: SignatureHeaders,
    campaign_id: str | None,
    redemption_id: str,
    body: RefundRequest,
) -> tuple[Refund, bool]:
    """The locked way: the key's revocation and the nonce are checked in the refund's own transaction, in its first
    statement, and the refund's rows go with its ledger posting in its last. A refusal keeps the nonce spent (the
    transaction, which has written nothing else, commits); a refund whose writes fail is rolled back and its nonce
    spent on its own."""
    now = clock.now()
    seen_at = clock.real_now()
    async with engine.connect() as sa_conn:
        async with sa_conn.begin() as transaction:
            conn = await driver(sa_conn)
            try:
                opened = await repository.open_refund(
                    conn, signature.key_id, signature.nonce, seen_at, campaign_id or ""
                )
                _check_opened(opened)
                if campaign_id is None:
                    raise _not_found()
                campaign = opened if opened["status"] is not None else None
                decided = await _decide(conn, opened["merchant_id"], campaign_id, redemption_id, body, campaign, now)
            except EngineError:
                await transaction.commit()  # nothing written but the nonce
                raise
            if isinstance(decided, Refund):
                await transaction.commit()
                return decided, False
            try:
                answer = await _apply(sa_conn, conn, decided)
            except BaseException:
                await transaction.rollback()
                await _spend_nonce_alone(engine, signature, seen_at)
                raise
            await transaction.commit()
            return answer, True


async def check_key_and_spend_nonce(engine: AsyncEngine, signature: SignatureHeaders) -> None:
    """The database half of a signature check on its own, for a refund refused before its transaction (its body did
    not validate): BAD_SIGNATURE for a key unknown or revoked, REPLAYED_REQUEST for a nonce spent, else the nonce is
    spent now, as the framework's signed routes do before they look at the body."""
    async with engine.begin() as sa_conn:
        opened = await repository.open_refund(
            await driver(sa_conn), signature.key_id, signature.nonce, clock.real_now(), ""
        )
    _check_opened(opened)


def _check_opened(opened: asyncpg.Record) -> None:
    if opened["merchant_id"] is None:
        raise EngineError("BAD_SIGNATURE", "The key is unknown or revoked.")
    if not opened["fresh"]:
        raise EngineError("REPLAYED_REQUEST", "This nonce was already used with this key.")


async def _spend_nonce_alone(engine: AsyncEngine, signature: SignatureHeaders, seen_at: datetime) -> None:
    try:
        async with engine.begin() as sa_conn:
            await repository.spend_nonce(await driver(sa_conn), signature.key_id, signature.nonce, seen_at)
    except Exception:  # noqa: BLE001 - the request's own error is the answer; the nonce's timestamp expires anyway
        log.warning("could not spend the nonce of a failed refund", exc_info=True)


@dataclass(slots=True)
class _Decided:
    """A refund decided under its locks, to be written."""

    redemption: Any
    voucher: dict[str, Any]
    write: repository.RefundWrite
    campaign_status: str
    answer: Refund


async def _decide(
    conn: asyncpg.Connection,
    merchant_id: str,
    campaign_id: str,
    redemption_id: str,
    body: RefundRequest,
    campaign: Any,
    now: datetime,
) -> _Decided | Refund:
    """Lock the redemption and its voucher and decide: the stored refund (a retry), or what to write. Raises the
    refusals (NOT_FOUND, IDEMPOTENCY_CONFLICT, INVALID_STATE, REFUND_EXCEEDS_ORDER) before anything is written."""
    locked = await repository.lock_redemption_and_voucher(conn, campaign_id, redemption_id)
    if locked is None or locked["merchant_id"] != merchant_id:
        raise _not_found()
    request_sha = fingerprint(body.model_dump(mode="json"))
    existing = await repository.read_refund(conn, campaign_id, redemption_id, body.refund_id)
    if existing is not None:
        if existing["request_sha256"] != request_sha:
            fields = [name for name in ("amount_fen", "reason") if existing[name] != getattr(body, name)]
            raise EngineError(
                "IDEMPOTENCY_CONFLICT",
                f"refund_id {body.refund_id!r} was already used for a different refund"
                f" (it differs in {', '.join(fields) or 'its body'}); use a new refund_id for a new refund,"
                " or send the first one again unchanged.",
                fields=fields,
            )
        return _refund_model(existing, locked, locked["voucher_status"])
    return _decision(locked, campaign_id, redemption_id, body, _minimum_order_fen(campaign), now, request_sha)


def _decision(
    redemption: Any,
    campaign_id: str,
    redemption_id: str,
    body: RefundRequest,
    minimum_order_fen: int,
    now: datetime,
    request_sha: str | None = None,
) -> _Decided:
    """What a new refund writes, decided from its redemption and voucher as read (LOCK_REDEMPTION_AND_VOUCHER's or
    PEEK_REFUND's columns), locked or not. Raises INVALID_STATE and REFUND_EXCEEDS_ORDER."""
    voucher = {
        "status": redemption["voucher_status"],
        "valid_until": redemption["voucher_valid_until"],
        "face_value_fen": redemption["voucher_face_value_fen"],
        "balance_fen": redemption["voucher_balance_fen"],
        "campaign_status": redemption["voucher_campaign_status"],
        "kind": redemption["voucher_kind"],
    }
    if request_sha is None:
        request_sha = fingerprint(body.model_dump(mode="json"))
    if redemption["clawed_back_fen"]:
        # The subsidy is gone already: a refund would take it from the merchant a second time.
        raise EngineError("INVALID_STATE", "This redemption was clawed back; it can no longer be refunded.")
    left = redemption["order_amount_fen"] - redemption["refunded_fen"]
    if body.amount_fen > left:
        raise EngineError(
            "REFUND_EXCEEDS_ORDER", f"Only {left} fen of this order are left to refund.", refundable_fen=left
        )
    clawback = clawback_for(
        redemption["subsidy_fen"],
        redemption["order_amount_fen"],
        redemption["refunded_fen"],
        redemption["subsidy_refunded_fen"],
        body.amount_fen,
        minimum_order_fen,
    )
    tx_id = ledger.new_tx_ids(1)[0] if clawback > 0 else None
    restored, voucher_status, balance_fen, voucher_changes = _restored_voucher(
        voucher, clawback, body.amount_fen == left, now
    )
    write = repository.RefundWrite(
        campaign_id=campaign_id,
        redemption_id=redemption_id,
        amount_fen=body.amount_fen,
        clawback_fen=clawback,
        refund_id=body.refund_id,
        request_sha256=request_sha,
        reason=body.reason,
        ledger_tx_id=tx_id,
        voucher_restored=restored,
        at=now,
        voucher_changes=voucher_changes,
        voucher_status=voucher_status,
        voucher_balance_fen=balance_fen,
        voucher_id=redemption["voucher_id"],
        daily_changes=clawback > 0 and redemption["spend_day"] is not None,
        spend_day=redemption["spend_day"],
        refunded_fen=redemption["refunded_fen"],
        subsidy_refunded_fen=redemption["subsidy_refunded_fen"],
        voucher_version=redemption["voucher_version"],
    )
    # The answer is known before the write: the redemption with this refund's amounts added, the refund as stored.
    updated = {
        **dict(redemption),
        "refunded_fen": redemption["refunded_fen"] + body.amount_fen,
        "subsidy_refunded_fen": redemption["subsidy_refunded_fen"] + clawback,
    }
    stored = {**write._asdict(), "subsidy_clawback_fen": clawback, "created_at": now}
    answer = _refund_model(stored, updated, voucher_status)
    return _Decided(redemption, voucher, write, voucher["campaign_status"], answer)


async def _apply(sa_conn: AsyncConnection, conn: asyncpg.Connection, decided: _Decided) -> Refund:
    """Write a decided refund: its event, then its rows and its ledger posting in one statement, the last before
    COMMIT, so that the campaign's escrow row (which every redemption batch of the campaign also needs) is locked
    for that statement and the commit only."""
    write = decided.write
    # In the refund's own transaction: the event exists exactly when the refund does (webhooks/service.py).
    await webhooks.record(
        sa_conn,
        "refund.created",
        decided.answer.model_dump(mode="json"),
        campaign_id=write.campaign_id,
        at=write.at,
    )
    if write.ledger_tx_id is None:
        repository.check_refund_written(await repository.write_refund(conn, write), write)
        return decided.answer
    if decided.campaign_status == "closed":
        # After close the clawed-back subsidy goes on to the funders: take_back_subsidy's return, in its own steps.
        repository.check_refund_written(await repository.write_refund(conn, write), write)
        await take_back_subsidy(
            sa_conn,
            decided.redemption,
            write.clawback_fen,
            kind="refund",
            now=write.at,
            campaign_status=decided.campaign_status,
            tx_id=write.ledger_tx_id,
        )
        return decided.answer
    posting = ledger.prepare(
        [_take_back_transaction(decided.redemption, write.clawback_fen, "refund", write.at)], [write.ledger_tx_id]
    )
    with ledger.refusals(posting):
        row, result = await repository.write_refund_and_post(conn, write, posting)
    posted = await ledger.landed(conn, posting, result)
    repository.check_refund_written(row, write)
    invariant([tx.id for tx in posted] == [write.ledger_tx_id], "the refund's posting went under its id")
    return decided.answer


def _minimum_order_fen(campaign: Any) -> int:
    """The voucher's minimum order, from the campaign's contract (compiled once per process and digest)."""
    if campaign is None:
        return 0
    return contract_for(campaign["contract_sha256"], campaign["contract_source"]).minimum_order_fen


async def take_back_subsidy(
    sa_conn: AsyncConnection,
    redemption: Any,
    amount_fen: int,
    *,
    kind: str,
    now: datetime,
    campaign_status: str,
    tx_id: str,
) -> tuple[str | None, int]:
    """merchant → escrow, as a `refund` or a `clawback` of the redemption's subsidy, and on to the funders if the
    campaign has closed; answers the return's (transaction id, amount), (None, 0) while the campaign is open. No
    savepoint: any error rolls the caller's whole transaction back."""
    await ledger.post_many(
        sa_conn, [_take_back_transaction(redemption, amount_fen, kind, now)], ids=[tx_id], savepoint=False
    )
    if campaign_status != "closed":
        return None, 0
    campaign_id = redemption["campaign_id"]
    funders = await campaign_repository.funders_of(sa_conn, campaign_id)
    shares = [money.FunderShare(f.issuer_id, f.share_bp) for f in funders]
    return await money.return_unspent(sa_conn, campaign_id, shares)


def _take_back_transaction(redemption: Any, amount_fen: int, kind: str, at: datetime) -> NewTransaction:
    """merchant → escrow: a `refund` or `clawback` of a redemption's subsidy."""
    campaign_id = redemption["campaign_id"]
    return NewTransaction(
        kind=kind,
        postings=(
            Posting(f"merchant:{redemption['merchant_id']}", credit_fen=amount_fen),
            Posting(f"escrow:{campaign_id}", debit_fen=amount_fen),
        ),
        refs={
            "campaign_id": campaign_id,
            "voucher_id": redemption["voucher_id"],
            "redemption_id": redemption["id"],
            "merchant_id": redemption["merchant_id"],
        },
        at=at,
        campaign_id=campaign_id,
    )


def _restored_voucher(
    voucher: dict[str, Any], clawback_fen: int, whole_order: bool, now: datetime
) -> tuple[bool, str, int, bool]:
    """(restored, status, balance, changed): a refund of the whole order gives the voucher back while it can still
    be spent (expired once its window or campaign has ended); revoked or expired vouchers stay so."""
    if not whole_order or voucher["status"] not in ("issued", "redeemed"):
        return False, voucher["status"], voucher["balance_fen"], False
    spendable = voucher["campaign_status"] in ("active", "paused") and now < voucher["valid_until"]
    if voucher["kind"] == "balance":
        balance = min(voucher["face_value_fen"], voucher["balance_fen"] + clawback_fen)
    else:
        balance = voucher["face_value_fen"]
    return spendable, "issued" if spendable else "expired", balance, True


async def get_redemption(engine: AsyncEngine, merchant_id: str, redemption_id: str) -> dict[str, Any]:
    campaign_id = campaign_of_redemption(redemption_id)
    if campaign_id is None:
        raise _not_found()
    async with engine.connect() as sa_conn:
        row = await repository.read_redemption(await driver(sa_conn), campaign_id, redemption_id)
    if row is None or row["merchant_id"] != merchant_id:
        raise _not_found()
    return redemption_body(row)


async def find_by_pos_txn(engine: AsyncEngine, merchant_id: str, pos_txn_id: str) -> dict[str, Any] | None:
    async with engine.connect() as sa_conn:
        row = await repository.find_by_pos_txn(await driver(sa_conn), merchant_id, pos_txn_id)
    return redemption_body(row) if row is not None else None
