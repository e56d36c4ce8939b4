"""webhooks: subscriptions, the outbox, the delivery queue, the attempts log and the ledger cursor

The outbox holds the events of cold-path causes (campaign funded, activated, closed; refunds), written in the cause's
own transaction. `redemption.settled` is derived from the ledger instead (db/schema/webhooks.py says how): the cursor
starts at the ledger's current head, so transactions from before this migration raise no events.

Revision ID: 0013_webhooks
Revises: 0012_attestations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0013_webhooks"
down_revision = "0012_attestations"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("issuer_id", sa.Text, nullable=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("cardinality(events) BETWEEN 1 AND 16", name="ck_webhook_subscriptions_events_count"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_subscriptions"),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=True),
        sa.Column("issuer_id", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("data", pg.JSONB, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_outbox"),
    )
    op.create_index("ix_webhook_outbox_created_at", "webhook_outbox", ["created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("subscription_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", TS, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.CheckConstraint("state IN ('pending', 'failed')", name="ck_webhook_deliveries_state_known"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index(
        "ix_webhook_deliveries_subscription_id_event_id",
        "webhook_deliveries",
        ["subscription_id", "event_id"],
        unique=True,
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["subscription_id", "next_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("subscription_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.CheckConstraint("outcome IN ('delivered', 'retrying', 'failed')", name="ck_webhook_attempts_outcome_known"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
    )
    op.create_index("ix_webhook_attempts_subscription_id_id", "webhook_attempts", ["subscription_id", "id"])
    op.create_index("ix_webhook_attempts_at", "webhook_attempts", ["at"])
    op.create_table(
        "webhook_cursor",
        sa.Column("id", sa.SmallInteger, autoincrement=False, nullable=False),
        sa.Column("ledger_seq", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.CheckConstraint("id = 1", name="ck_webhook_cursor_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_cursor"),
    )
    op.execute("INSERT INTO webhook_cursor (id, ledger_seq) SELECT 1, coalesce(max(seq), 0) FROM ledger_sequence")


def downgrade() -> None:
    for table in (
        "webhook_cursor",
        "webhook_attempts",
        "webhook_deliveries",
        "webhook_outbox",
        "webhook_subscriptions",
    ):
        op.drop_table(table)
