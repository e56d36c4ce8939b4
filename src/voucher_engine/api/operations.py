"""The database's side of GET /metrics: figures every worker shares, read at scrape time (a few index reads)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.db.raw import driver
from voucher_engine.ledger import repository as ledger
from voucher_engine.observability.metrics import MAX_ESCROW_SERIES
from voucher_engine.webhooks import repository as webhooks

log = logging.getLogger("voucher_engine.metrics")


async def database_figures(engine: AsyncEngine) -> dict[str, Any]:
    """Answers what it could read: a database that is down leaves these gauges out, never the whole scrape."""
    try:
        async with engine.connect() as conn:
            raw = await driver(conn)
            queue = await webhooks.queue_figures(raw, clock.real_now())
            backlog = await ledger.sequencer_backlog(raw, clock.now())
            escrow = await ledger.open_escrows(raw, MAX_ESCROW_SERIES)
    except Exception:
        log.warning("metrics: database figures unavailable", exc_info=True)
        return {}
    return {
        "webhook_pending": queue["pending"],
        "webhook_failed": queue["failed"],
        "webhook_outbox": queue["outbox"],
        "webhook_ledger_behind": queue["ledger_behind"],
        "webhook_oldest_due_s": float(queue["oldest_due_s"] or 0),
        "ledger_unsequenced": backlog.unsequenced,
        "ledger_lag_s": max(0.0, backlog.lag_s),
        "escrow": escrow,
    }
