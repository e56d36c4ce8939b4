"""Refunds (退款) of settled redemptions, and the merchant's look-ups of its own redemptions.

A refund is one database transaction: lock the redemption, answer a retry from the stored refund, claw back the
subsidy's proportional share (rounded up, in the fund's favour) from the merchant to escrow (all of it when the
kept order falls below the voucher's minimum spend: decide.clawback_for says why), and, when the whole order has
been refunded, give the voucher back while its window is open. If the campaign has closed
meanwhile, the clawed-back subsidy goes on to the funders in the same transaction (a `return`), because a closed
campaign's escrow must stay empty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.campaigns import money
from voucher_engine.campaigns import repository as campaign_repository
from voucher_engine.campaigns.cache import contract_for
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.ledger import service as ledger
from voucher_engine.ledger.model import NewTransaction, Posting
from voucher_engine.redemption import repository
from voucher_engine.redemption.decide import clawback_for
from voucher_engine.redemption.schemas import Refund, RefundRequest
from voucher_engine.redemption.service import campaign_of_redemption, fingerprint, redemption_body
from voucher_engine.webhooks import service as webhooks


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
    """Answer (refund, created). Idempotent by `refund_id` within the redemption."""
    campaign_id = campaign_of_redemption(redemption_id)
    if campaign_id is None:
        raise _not_found()
    request_sha = fingerprint(body.model_dump(mode="json"))
    now = clock.now()
    async with engine.begin() as sa_conn:
        conn = await driver(sa_conn)
        campaign = await repository.lock_campaign_for_refund(conn, campaign_id)
        redemption = await repository.lock_redemption(conn, campaign_id, redemption_id)
        if redemption is None or redemption["merchant_id"] != merchant_id:
            raise _not_found()
        voucher = await repository.lock_voucher_for_refund(conn, campaign_id, redemption["voucher_id"])
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
            return _refund_model(existing, redemption, voucher["status"]), False
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
            _minimum_order_fen(campaign),
        )
        whole_order = body.amount_fen == left
        tx_id = ledger.new_tx_ids(1)[0] if clawback > 0 else None
        if clawback > 0 and redemption["spend_day"] is not None:
            await repository.give_back_daily_spend(conn, campaign_id, redemption["spend_day"], clawback)
        restored, voucher_status = await _restore_voucher(conn, redemption, voucher, clawback, whole_order, now)
        updated = await repository.add_refunded(conn, campaign_id, redemption_id, body.amount_fen, clawback)
        stored = await repository.insert_refund(
            conn,
            campaign_id,
            redemption_id,
            body.refund_id,
            request_sha,
            body.amount_fen,
            clawback,
            body.reason,
            tx_id,
            restored,
            now,
        )
        answer = _refund_model(stored, updated, voucher_status)
        # In the refund's own transaction: the event exists exactly when the refund does (webhooks/service.py).
        await webhooks.record(
            sa_conn, "refund.created", answer.model_dump(mode="json"), campaign_id=campaign_id, at=now
        )
        if tx_id is not None:
            # The ledger last, just before COMMIT, as in a redemption batch: the campaign's escrow row, which every
            # batch of the campaign also needs, is then locked for this statement and the commit only (posted
            # first, it was held across the refund's other round trips and redemptions queued behind it).
            await take_back_subsidy(
                sa_conn,
                redemption,
                clawback,
                kind="refund",
                now=now,
                campaign_status=voucher["campaign_status"],
                tx_id=tx_id,
            )
        return answer, True


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
    campaign_id = redemption["campaign_id"]
    await ledger.post_many(
        sa_conn,
        [
            NewTransaction(
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
                at=now,
                campaign_id=campaign_id,
            )
        ],
        ids=[tx_id],
        savepoint=False,
    )
    if campaign_status != "closed":
        return None, 0
    funders = await campaign_repository.funders_of(sa_conn, campaign_id)
    shares = [money.FunderShare(f.issuer_id, f.share_bp) for f in funders]
    return await money.return_unspent(sa_conn, campaign_id, shares)


async def _restore_voucher(
    conn, redemption: Any, voucher: Any, clawback_fen: int, whole_order: bool, now: datetime
) -> tuple[bool, str]:
    """Give the voucher back after a refund of the whole order, while it can still be spent."""
    if not whole_order or voucher is None:
        return False, voucher["status"] if voucher else "unknown"
    spendable = voucher["campaign_status"] in ("active", "paused") and now < voucher["valid_until"]
    if voucher["status"] not in ("issued", "redeemed"):
        return False, voucher["status"]  # revoked or expired stays so
    if voucher["kind"] == "balance":
        balance = min(voucher["face_value_fen"], voucher["balance_fen"] + clawback_fen)
    else:
        balance = voucher["face_value_fen"]
    status = "issued" if spendable else "expired"
    await repository.set_voucher_state(conn, redemption["campaign_id"], redemption["voucher_id"], status, balance, now)
    return spendable, status


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
