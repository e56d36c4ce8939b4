"""The database's side of GET /metrics: figures every worker shares, read at scrape time (a few index reads)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.db.raw import driver
from voucher_engine.observability.metrics import MAX_ESCROW_SERIES
from voucher_engine.webhooks import repository as webhooks

log = logging.getLogger("voucher_engine.metrics")

LEDGER_FIGURES = """
SELECT coalesce(sum(cardinality(p.tx_ids)), 0) AS unsequenced,
       (SELECT extract(epoch FROM $1 - min(t.at)) FROM ledger_transactions t
         WHERE t.id = (SELECT tx_ids[1] FROM ledger_pending ORDER BY batch LIMIT 1)) AS lag_s
FROM ledger_pending p
"""
# Open escrows of campaigns not closed, newest first; a closed campaign's escrow is empty by construction.
ESCROW = """
SELECT c.id, a.balance_fen FROM campaigns c JOIN ledger_accounts a ON a.account = 'escrow:' || c.id
WHERE c.status <> 'closed' ORDER BY c.created_at DESC LIMIT $1
"""


async def database_figures(engine: AsyncEngine) -> dict[str, Any]:
    """Answers what it could read: a database that is down leaves these gauges out, never the whole scrape."""
    try:
        async with engine.connect() as conn:
            raw = await driver(conn)
            queue = await webhooks.queue_figures(raw, clock.real_now())
            ledger = await raw.fetchrow(LEDGER_FIGURES, clock.now())
            escrow = await raw.fetch(ESCROW, MAX_ESCROW_SERIES)
    except Exception:
        log.warning("metrics: database figures unavailable", exc_info=True)
        return {}
    return {
        "webhook_pending": queue["pending"],
        "webhook_failed": queue["failed"],
        "webhook_outbox": queue["outbox"],
        "webhook_ledger_behind": queue["ledger_behind"],
        "webhook_oldest_due_s": float(queue["oldest_due_s"] or 0),
        "ledger_unsequenced": ledger["unsequenced"],
        "ledger_lag_s": max(0.0, float(ledger["lag_s"] or 0)),
        "escrow": [(row["id"], row["balance_fen"]) for row in escrow],
    }
