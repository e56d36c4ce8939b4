"""redemption: settled redemptions, refunds, daily spend under caps

Revision ID: 0004_redemption
Revises: 0003_campaigns
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_redemption"
down_revision = "0003_campaigns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redemptions",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("merchant_id", sa.Text(), nullable=False),
        sa.Column("pos_txn_id", sa.Text(), nullable=False),
        sa.Column("request_sha256", sa.Text(), nullable=False),
        sa.Column("voucher_id", sa.Text(), nullable=False),
        sa.Column("wallet_id", sa.Text(), nullable=False),
        sa.Column("order_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("payable_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("subsidy_refunded_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("ledger_tx_id", sa.Text(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spend_day", sa.Date(), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "subsidy_fen > 0 AND subsidy_fen <= order_amount_fen", name=op.f("ck_redemptions_subsidy_range")
        ),
        sa.CheckConstraint("payable_fen = order_amount_fen - subsidy_fen", name=op.f("ck_redemptions_payable_is_rest")),
        sa.CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= order_amount_fen", name=op.f("ck_redemptions_refund_range")
        ),
        sa.CheckConstraint(
            "subsidy_refunded_fen >= 0 AND subsidy_refunded_fen <= subsidy_fen",
            name=op.f("ck_redemptions_clawback_range"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", "id", name=op.f("pk_redemptions")),
    )
    op.create_index("uq_redemptions_merchant_id_pos_txn_id", "redemptions", ["merchant_id", "pos_txn_id"], unique=True)
    op.create_index("ix_redemptions_campaign_id_voucher_id", "redemptions", ["campaign_id", "voucher_id"], unique=False)
    op.create_table(
        "refunds",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("redemption_id", sa.Text(), nullable=False),
        sa.Column("refund_id", sa.Text(), nullable=False),
        sa.Column("request_sha256", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_clawback_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ledger_tx_id", sa.Text(), nullable=True),
        sa.Column("voucher_restored", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_refunds_amount_positive")),
        sa.CheckConstraint("subsidy_clawback_fen >= 0", name=op.f("ck_refunds_clawback_nonnegative")),
        sa.PrimaryKeyConstraint("campaign_id", "redemption_id", "refund_id", name=op.f("pk_refunds")),
    )
    op.create_table(
        "daily_spend",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("cap_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("spent_fen >= 0 AND spent_fen <= cap_fen", name=op.f("ck_daily_spend_within_cap")),
        sa.PrimaryKeyConstraint("campaign_id", "day", name=op.f("pk_daily_spend")),
    )


def downgrade() -> None:
    op.drop_table("daily_spend")
    op.drop_table("refunds")
    op.drop_index("ix_redemptions_campaign_id_voucher_id", table_name="redemptions")
    op.drop_index("uq_redemptions_merchant_id_pos_txn_id", table_name="redemptions")
    op.drop_table("redemptions")
