"""Merchant settlement and clawbacks: payout runs and items, payout holds, clawbacks, and the ledger's new kinds

The ledger gains `clawback` (merchant -> escrow, a campaign kind) and the three payout kinds, which move a merchant's
own money (`merchant:<m>` -> `payout:<m>` -> `settled:<m>`, or back) and belong to no campaign: their
`campaign_id` is null, in the transaction and in its sequence row. A `payout:<m>` account can never go below zero.
A BRIN index on the transactions' business time lets a payout run find what was credited after its cutoff without
a scan of the whole ledger; BRIN, because `at` grows with the table and its upkeep costs an insert next to nothing.

Revision ID: 0011_settlement
Revises: 0010_campaign_stats
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_settlement"
down_revision = "0010_campaign_stats"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
KINDS = "('fund', 'redeem', 'refund', 'return', 'clawback', 'payout', 'payout_confirm', 'payout_reversal')"
MERCHANT_KINDS = "('payout', 'payout_confirm', 'payout_reversal')"
ACCOUNTS = "'^(fiscal|escrow|merchant|payout|settled):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"


def upgrade() -> None:
    op.alter_column("ledger_transactions", "campaign_id", nullable=True)
    op.alter_column("ledger_sequence", "campaign_id", nullable=True)
    op.drop_constraint(op.f("ck_ledger_transactions_kind_known"), "ledger_transactions", type_="check")
    op.create_check_constraint(op.f("ck_ledger_transactions_kind_known"), "ledger_transactions", f"kind IN {KINDS}")
    op.create_check_constraint(
        op.f("ck_ledger_transactions_campaign_for_kind"),
        "ledger_transactions",
        f"(campaign_id IS NULL) = (kind IN {MERCHANT_KINDS})",
    )
    op.create_index(
        "ix_ledger_transactions_at_brin", "ledger_transactions", ["at"], unique=False, postgresql_using="brin"
    )
    op.drop_constraint(op.f("ck_ledger_accounts_account_format"), "ledger_accounts", type_="check")
    op.create_check_constraint(op.f("ck_ledger_accounts_account_format"), "ledger_accounts", f"account ~ {ACCOUNTS}")
    op.create_check_constraint(
        op.f("ck_ledger_accounts_payout_not_negative"), "ledger_accounts", "kind <> 'payout' OR balance_fen >= 0"
    )

    # Every registered merchant gets the two accounts settlement moves its money to (new ones get them at
    # registration).
    op.execute(
        "INSERT INTO ledger_accounts (account, kind, balance_fen, opened_at) "
        "SELECT k.kind || ':' || m.id, k.kind, 0, now() FROM merchants m "
        "CROSS JOIN (VALUES ('payout'), ('settled')) AS k(kind) ON CONFLICT (account) DO NOTHING"
    )
    op.add_column("merchants", sa.Column("payout_hold_reason", sa.Text(), nullable=True))
    op.add_column("merchants", sa.Column("payout_hold_since", TS, nullable=True))
    op.create_check_constraint(
        op.f("ck_merchants_payout_hold_whole"),
        "merchants",
        "(payout_hold_reason IS NULL) = (payout_hold_since IS NULL)",
    )

    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("redemptions", sa.Column("clawed_back_fen", sa.BigInteger(), server_default="0", nullable=False))
    op.create_check_constraint(
        op.f("ck_redemptions_clawed_back_range"),
        "redemptions",
        "clawed_back_fen >= 0 AND subsidy_refunded_fen + clawed_back_fen <= subsidy_fen",
    )
    op.create_table(
        "clawbacks",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("redemption_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("merchant_id", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ledger_tx_id", sa.Text(), nullable=False),
        sa.Column("return_tx_id", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_clawbacks_amount_positive")),
        sa.PrimaryKeyConstraint("campaign_id", "redemption_id", name=op.f("pk_clawbacks")),
        sa.UniqueConstraint("id", name=op.f("uq_clawbacks_id")),
    )

    op.create_table(
        "payout_runs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("cutoff", TS, nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("total_fen >= 0 AND item_count >= 0", name=op.f("ck_payout_runs_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_runs")),
    )
    op.create_table(
        "payout_items",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("merchant_id", sa.Text(), nullable=False),
        sa.Column("settlement_wallet", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("ledger_tx_id", sa.Text(), nullable=False),
        sa.Column("confirm_tx_id", sa.Text(), nullable=True),
        sa.Column("bank_reference", sa.Text(), nullable=True),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_payout_items_amount_positive")),
        sa.CheckConstraint("status IN ('sent', 'paid', 'failed')", name=op.f("ck_payout_items_status_known")),
        sa.CheckConstraint("(status = 'sent') = (confirm_tx_id IS NULL)", name=op.f("ck_payout_items_confirmed_once")),
        sa.PrimaryKeyConstraint("run_id", "id", name=op.f("pk_payout_items")),
    )
    op.create_index("uq_payout_items_run_id_merchant_id", "payout_items", ["run_id", "merchant_id"], unique=True)
    op.create_index("ix_payout_items_merchant_id", "payout_items", ["merchant_id"], unique=False)
    op.create_table(
        "payout_hold_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("merchant_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.CheckConstraint("action IN ('hold', 'release')", name=op.f("ck_payout_hold_events_action_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_hold_events")),
    )
    op.create_index("ix_payout_hold_events_merchant_id", "payout_hold_events", ["merchant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("payout_hold_events")
    op.drop_table("payout_items")
    op.drop_table("payout_runs")
    op.drop_table("clawbacks")
    op.drop_constraint(op.f("ck_redemptions_clawed_back_range"), "redemptions", type_="check")
    op.drop_column("redemptions", "clawed_back_fen")
    op.drop_constraint(op.f("ck_merchants_payout_hold_whole"), "merchants", type_="check")
    op.drop_column("merchants", "payout_hold_since")
    op.drop_column("merchants", "payout_hold_reason")
    op.drop_constraint(op.f("ck_ledger_accounts_payout_not_negative"), "ledger_accounts", type_="check")
    op.drop_constraint(op.f("ck_ledger_accounts_account_format"), "ledger_accounts", type_="check")
    op.create_check_constraint(
        op.f("ck_ledger_accounts_account_format"),
        "ledger_accounts",
        "account ~ '^(fiscal|escrow|merchant):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'",
    )
    op.drop_index("ix_ledger_transactions_at_brin", "ledger_transactions")
    op.drop_constraint(op.f("ck_ledger_transactions_campaign_for_kind"), "ledger_transactions", type_="check")
    op.drop_constraint(op.f("ck_ledger_transactions_kind_known"), "ledger_transactions", type_="check")
    op.create_check_constraint(
        op.f("ck_ledger_transactions_kind_known"),
        "ledger_transactions",
        "kind IN ('fund', 'redeem', 'refund', 'return')",
    )
    op.alter_column("ledger_sequence", "campaign_id", nullable=False)
    op.alter_column("ledger_transactions", "campaign_id", nullable=False)
