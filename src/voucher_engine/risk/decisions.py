"""Decisions on risk flags (审核): `confirm` claws back every redemption the flag names and keeps the merchant on
payout hold; `clear` releases the hold the flag caused. Once per flag, kept with who and when.

A decision is one database transaction: the flag's row is locked first, so two reviewers deciding at once are
served one after the other and the second finds it decided (INVALID_STATE); `risk_decisions.flag_id` is unique as
the database's own last word. The clawbacks are settlement's (`clawbacks.claw_back_in`, which takes the subsidy
back through `redemption.refunds.take_back_subsidy`), in the same transaction: all of them or none.

A hold is released on `clear` only when it is this flag's to release: the flag put on or renewed the merchant's
current hold, no operator held the merchant by hand since its last release (a hold by hand is the operator's to
lift), and no other flag of the merchant still needs it (open with a `hold` outcome, or confirmed).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.risk import repository
from voucher_engine.risk.schemas import RiskFlag
from voucher_engine.risk.service import hold_actor, to_model, visible
from voucher_engine.settlement import clawbacks
from voucher_engine.settlement import service as settlement

MAX_NOTE = 2000


async def decide(engine: AsyncEngine, subject: Subject, flag_id: str, decision: str, note: str | None) -> RiskFlag:
    """Clear or confirm an open flag. Admin, or the gov of the flag's campaign's issuer."""
    if subject.role not in ("admin", "gov"):
        raise EngineError("FORBIDDEN", "A decision on a risk flag needs the admin role or the campaign's gov.")
    if decision not in ("clear", "confirm"):
        raise EngineError("VALIDATION_ERROR", "decision is clear or confirm")
    async with engine.begin() as sa_conn:
        raw = await driver(sa_conn)
        locked = await repository.lock_flag(raw, flag_id)
        row = await repository.get_flag(raw, flag_id) if locked else None
        if row is None or not visible(subject, to_model(row), row["campaign_issuer_id"]):
            raise EngineError("NOT_FOUND", f"no risk flag {flag_id!r}")
        flag = to_model(row)
        if flag.status != "open":
            decided = flag.decision
            by = f" by {decided.role} {decided.token_id} at {decided.decided_at.isoformat()}" if decided else ""
            raise EngineError("INVALID_STATE", f"risk flag {flag_id} was already {flag.status}{by}.")
        now = clock.now()
        clawback_ids: list[str] = []
        released = False
        if decision == "confirm":
            reason = f"risk flag {flag_id} confirmed ({flag.signal})" + (f": {note}" if note else "")
            for redemption_id in flag.redemption_ids:
                try:
                    clawback, _ = await clawbacks.claw_back_in(sa_conn, subject, redemption_id, reason[:500])
                except EngineError as exc:
                    if exc.code != "INVALID_STATE":  # refunds took the whole subsidy back: nothing stands
                        raise
                    continue
                clawback_ids.append(clawback.id)
            if flag.merchant_id is not None:  # a holder's spread or a claims burst names no merchant to hold
                await settlement.hold_by_cause(
                    raw, flag.merchant_id, f"risk flag {flag_id} confirmed: {flag.signal}", hold_actor(flag_id), now
                )
        else:
            released = await _release_if_ours(raw, flag, now)
        status = "confirmed" if decision == "confirm" else "cleared"
        if not await repository.decide_flag(raw, flag_id, status, now):
            raise EngineError("INVALID_STATE", f"risk flag {flag_id} was already decided.")  # pragma: no cover
        await repository.insert_decision(
            raw,
            flag_id,
            decision,
            note,
            subject.role,
            subject.token_id,
            subject.issuer_id,
            now,
            clawback_ids,
            released,
        )
        stored = await repository.get_flag(raw, flag_id)
    return to_model(stored)


async def _release_if_ours(raw, flag: RiskFlag, now) -> bool:
    if flag.merchant_id is None:
        return False  # a pattern of no one merchant held no one
    holders = await settlement.holders_since_release(raw, flag.merchant_id)
    if hold_actor(flag.id) not in holders:
        return False  # the flag did not hold the merchant (or an operator has released it since)
    if any(not holder.startswith("risk:") for holder in holders):
        return False  # held by hand too: the operator's to release
    if await repository.other_holding_flags(raw, flag.merchant_id, flag.id):
        return False  # another flag still needs it
    await settlement.release_by_cause(raw, flag.merchant_id, hold_actor(flag.id), now)
    return True
