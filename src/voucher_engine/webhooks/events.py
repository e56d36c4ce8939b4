"""The event types of API.md, and which of them are derived from the ledger instead of written to the outbox."""

from __future__ import annotations

EVENT_TYPES = (
    "campaign.funded",
    "campaign.activated",
    "campaign.closed",
    "redemption.settled",
    "refund.created",
    "clawback.created",
    "payout.sent",
    "payout.paid",
    "payout.failed",
    "risk.flag_opened",
)

# Events read off the ledger by the dispatcher (db/schema/webhooks.py says why): ledger kind -> event type. The hot
# path writes nothing for them beyond its own ledger transaction. Kinds the ledger does not have yet (clawback,
# payouts: the settlement room) join here as they land.
LEDGER_EVENTS: dict[str, str] = {"redeem": "redemption.settled"}

# Events that carry no campaign (merchant-level money): an admin's subscription receives them, a gov's never.
WITHOUT_CAMPAIGN = frozenset({"payout.sent", "payout.paid", "payout.failed"})
