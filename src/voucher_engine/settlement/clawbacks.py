"""Clawbacks (追回) of redemptions: the subsidy still standing goes from the merchant back to the campaign's escrow,
or on to the funders in their shares when the campaign has closed (a `return` in the same transaction, as a refund
after close does, because a closed campaign's escrow stays empty).

Admin path, never the till's: it locks the campaign (share), the redemption and the voucher's rows the way a refund
does, so a clawback and a refund of the same redemption run one after the other, and a close waits for it.
A merchant already paid out goes below zero; the next payout run nets it (it pays only a positive balance).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.ledger import service as ledger
from voucher_engine.redemption import repository as redemption_repository
from voucher_engine.redemption.refunds import take_back_subsidy
from voucher_engine.redemption.service import campaign_of_redemption, redemption_body
from voucher_engine.settlement import repository
from voucher_engine.settlement.schemas import Clawback
from voucher_engine.settlement.service import actor


def _not_found(redemption_id: str) -> EngineError:
    return EngineError("NOT_FOUND", f"no redemption {redemption_id!r}")


def _model(row: Any, redemption: Any) -> Clawback:
    return Clawback(
        id=row["id"],
        redemption_id=row["redemption_id"],
        campaign_id=row["campaign_id"],
        merchant_id=row["merchant_id"],
        amount_fen=row["amount_fen"],
        reason=row["reason"],
        ledger_tx_id=row["ledger_tx_id"],
        return_tx_id=row["return_tx_id"],
        created_at=row["created_at"],
        redemption=redemption_body(redemption),
    )


async def claw_back(engine: AsyncEngine, subject: Subject, redemption_id: str, reason: str) -> tuple[Clawback, bool]:
    """Answer (clawback, created). Idempotent per redemption: a second call answers the first clawback."""
    if campaign_of_redemption(redemption_id) is None:
        raise _not_found(redemption_id)
    async with engine.begin() as sa_conn:
        return await claw_back_in(sa_conn, subject, redemption_id, reason)


async def claw_back_in(
    sa_conn: AsyncConnection, subject: Subject, redemption_id: str, reason: str
) -> tuple[Clawback, bool]:
    """`claw_back` in the caller's transaction (a confirmed risk flag claws back its redemptions with its
    decision, all or nothing). Raises before writing anything when the caller may not or nothing stands."""
    campaign_id = campaign_of_redemption(redemption_id)
    if campaign_id is None:
        raise _not_found(redemption_id)
    now = clock.now()
    conn = await driver(sa_conn)
    campaign = await repository.lock_campaign_for_clawback(conn, campaign_id)
    if campaign is None:
        raise _not_found(redemption_id)
    campaign_status, issuer_id = campaign
    _require_clawer(subject, issuer_id, redemption_id)
    redemption = await redemption_repository.lock_redemption(conn, campaign_id, redemption_id)
    if redemption is None:
        raise _not_found(redemption_id)
    existing = await repository.read_clawback(conn, campaign_id, redemption_id)
    if existing is not None:
        return _model(existing, redemption), False
    amount = redemption["subsidy_fen"] - redemption["subsidy_refunded_fen"]
    if amount <= 0:
        raise EngineError("INVALID_STATE", "Refunds already took back this redemption's whole subsidy.")
    stored, updated = await _record_clawback(sa_conn, conn, subject, redemption, amount, reason, campaign_status, now)
    return _model(stored, updated), True


def _require_clawer(subject: Subject, issuer_id: str, redemption_id: str) -> None:
    """Admin, or the gov of the campaign's own issuer (a co-funder's gov only reads)."""
    if subject.role == "admin" or (subject.role == "gov" and subject.issuer_id == issuer_id):
        return
    if subject.role == "gov":
        raise _not_found(redemption_id)  # another issuer's redemption: none of its business
    raise EngineError("FORBIDDEN", "A clawback needs the admin role or the campaign's gov.")


async def _record_clawback(
    sa_conn: AsyncConnection,
    conn: asyncpg.Connection,
    subject: Subject,
    redemption: Any,
    amount_fen: int,
    reason: str,
    campaign_status: str,
    now: datetime,
) -> tuple[Any, Any]:
    """The clawback's rows and its ledger transactions, in the caller's transaction. The `clawback.created` event
    belongs here."""
    campaign_id, merchant_id = redemption["campaign_id"], redemption["merchant_id"]
    if redemption["spend_day"] is not None:
        # A daily cap counts what stands: the day gets the subsidy back, as it does on a refund.
        await redemption_repository.give_back_daily_spend(conn, campaign_id, redemption["spend_day"], amount_fen)
    updated = await redemption_repository.mark_clawed_back(conn, campaign_id, redemption["id"], amount_fen)
    tx_id = ledger.new_tx_ids(1)[0]
    return_tx_id, returned = await take_back_subsidy(
        sa_conn, redemption, amount_fen, kind="clawback", now=now, campaign_status=campaign_status, tx_id=tx_id
    )
    if campaign_status == "closed" and returned != amount_fen:
        # A closed campaign's escrow held nothing before the clawback.
        raise EngineError("INTERNAL", f"closed campaign {campaign_id} returned {returned}, not {amount_fen}")
    stored = await repository.insert_clawback(
        conn,
        campaign_id=campaign_id,
        redemption_id=redemption["id"],
        clawback_id="clb_" + os.urandom(10).hex(),
        merchant_id=merchant_id,
        amount_fen=amount_fen,
        reason=reason,
        ledger_tx_id=tx_id,
        return_tx_id=return_tx_id,
        created_by=actor(subject),
        created_at=now,
    )
    return stored, updated
