"""risk windows: the window detector's cursor, its recent events, merchant hours, holder–merchant pairs, claims seen

Also: `risk_flags.merchant_id` may be NULL (a pattern of no one merchant: a holder's spread, a claims burst).

Kept by the risk room's detector off the redemption path: it tails `ledger_sequence` by seq from
`risk_w_cursor.last_seq` (starting at 0, so an existing ledger is read on the first passes after this migration).

Revision ID: 0018_risk_windows
Revises: 0016_risk_flags
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0018_risk_windows"
down_revision = "0016_risk_flags"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A flag may name no merchant: one holder across many merchants, a claims burst on a first-come campaign.
    op.alter_column("risk_flags", "merchant_id", nullable=True)
    op.create_table(
        "risk_w_cursor",
        sa.Column("id", sa.SmallInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("claims_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_risk_w_cursor_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_w_cursor")),
    )
    op.execute("INSERT INTO risk_w_cursor (id, last_seq, updated_at) VALUES (1, 0, now())")
    op.create_table(
        "risk_w_events",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("redemption_id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("voucher_id", sa.Text, nullable=False),
        sa.Column("order_amount_fen", sa.BigInteger, nullable=False),
        sa.Column("min_spend_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint("kind IN ('redeem', 'refund')", name=op.f("ck_risk_w_events_kind_known")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_risk_w_events")),
    )
    op.create_index("ix_risk_w_events_merchant_id_at", "risk_w_events", ["merchant_id", "at"])
    op.create_index("ix_risk_w_events_holder_at", "risk_w_events", ["holder", "at"])
    op.create_index("ix_risk_w_events_at_brin", "risk_w_events", ["at"], postgresql_using="brin")
    op.create_table(
        "risk_w_merchant_hours",
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("hour", TS, nullable=False),
        sa.Column("redemptions", sa.Integer, nullable=False),
        sa.Column("max_minute", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "hour", name=op.f("pk_risk_w_merchant_hours")),
    )
    op.create_table(
        "risk_w_pairs",
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("redemptions", sa.Integer, nullable=False),
        sa.Column("campaigns", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("hugging", sa.Integer, nullable=False),
        sa.Column("redemption_ids", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("holder", "merchant_id", name=op.f("pk_risk_w_pairs")),
    )
    op.create_table(
        "risk_w_claims_seen",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_risk_w_claims_seen")),
    )


def downgrade() -> None:
    for table in ("risk_w_claims_seen", "risk_w_pairs", "risk_w_merchant_hours", "risk_w_events", "risk_w_cursor"):
        op.drop_table(table)
    op.execute("UPDATE risk_flags SET merchant_id = '' WHERE merchant_id IS NULL")
    op.alter_column("risk_flags", "merchant_id", nullable=False)
