"""Tables of the webhooks room (回调): subscriptions, the outbox, the delivery queue, the attempts log, the cursor.

How an event gets from its cause to a receiver:
- a cold-path cause (a campaign funded, activated or closed, a refund) inserts its event into `webhook_outbox` in
  its own database transaction;
- a `redemption.settled` event costs the hot path nothing: the redemption's ledger transaction, written in the
  redemption's own database transaction, is the record. The ledger's sequencer gives committed transactions a
  gap-free `seq` in commit order, so the dispatcher tails `ledger_sequence` by a durable cursor
  (`webhook_cursor.ledger_seq`) and derives the events from it (ledger kinds `redeem`, and later `clawback` and the
  payouts', map to event types);
- fan-out (one dispatcher at a time: the cursor row is locked `FOR UPDATE SKIP LOCKED`) turns both into one
  `webhook_deliveries` row per matching subscription, takes the outbox rows away and moves the cursor, in one
  transaction: nothing is lost between them and nothing is fanned out twice;
- senders lease due deliveries (attempts + 1, next_at = now + lease) and record each attempt in `webhook_attempts`;
  a delivered row is deleted, a failed one rescheduled with backoff, or given up (`state = 'failed'`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from . import metadata

TS = sa.DateTime(timezone=True)

webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", pg.ARRAY(sa.Text), nullable=False),
    # A gov's subscription sees its own issuer's campaigns' events only; NULL (an admin's) sees every event.
    sa.Column("issuer_id", sa.Text, nullable=True),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("deleted_at", TS, nullable=True),
    # Deliveries waiting (pending) for this subscription, kept by fan-out and the senders: the outbox's bound.
    sa.Column("pending", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("cardinality(events) BETWEEN 1 AND 16", name="events_count"),
)

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("campaign_id", sa.Text, nullable=True),
    sa.Column("issuer_id", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("data", pg.JSONB, nullable=False),
    sa.Index(None, "created_at"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    # The event document as sent, byte for byte the same at every attempt (the signature covers it).
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # When the next attempt is due; while an attempt is in flight, when its lease ends.
    sa.Column("next_at", TS, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.CheckConstraint("state IN ('pending', 'failed')", name="state_known"),
    sa.Index(None, "subscription_id", "event_id", unique=True),
    sa.Index("ix_webhook_deliveries_due", "subscription_id", "next_at", postgresql_where=sa.text("state = 'pending'")),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    # 0 for an event never sent (the subscription's outbox was full); 1 for the first try.
    sa.Column("attempt", sa.Integer, nullable=False),
    # NULL when no HTTP answer came (timeout, refused connection, ...).
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("at", TS, nullable=False),
    # delivered | retrying | failed (given up)
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.CheckConstraint("outcome IN ('delivered', 'retrying', 'failed')", name="outcome_known"),
    sa.Index(None, "subscription_id", "id"),
    sa.Index(None, "at"),
)

webhook_cursor = sa.Table(
    "webhook_cursor",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    # The last ledger seq whose events have been fanned out.
    sa.Column("ledger_seq", sa.BigInteger, nullable=False),
    # Real time of the last fan-out round: workers take over from a dead dispatcher process when it grows old.
    sa.Column("heartbeat_at", TS, nullable=True),
    sa.CheckConstraint("id = 1", name="single_row"),
)
