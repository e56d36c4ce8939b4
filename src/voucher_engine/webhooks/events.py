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

# Events read off the ledger by the dispatcher (db/schema/webhooks.py says why): ledger kind -> event type. Their
# causes write nothing for them beyond their own ledger transactions, which are in the causes' own database
# transactions: a redemption, a clawback, a payout run's item, a bank's confirmation or failure.
LEDGER_EVENTS: dict[str, str] = {
    "redeem": "redemption.settled",
    "clawback": "clawback.created",
    "payout": "payout.sent",
    "payout_confirm": "payout.paid",
    "payout_reversal": "payout.failed",
}

# Events that carry no campaign (merchant-level money): an admin's subscription receives them, a gov's never.
WITHOUT_CAMPAIGN = frozenset({"payout.sent", "payout.paid", "payout.failed"})
