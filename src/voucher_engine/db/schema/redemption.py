"""Tables of the redemption path (核销): settled redemptions, their refunds, and per-day spend under daily caps.

`redemptions` leads with `campaign_id` like every hot table; its idempotency key `(merchant_id, pos_txn_id)` is a
unique index of its own (under Citus it would become a reference to a table distributed by merchant).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from . import metadata

TS = sa.DateTime(timezone=True)

redemptions = sa.Table(
    "redemptions",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("pos_txn_id", sa.Text, nullable=False),
    # SHA-256 of the request's canonical JSON: a retry must carry the same body to get the same answer.
    sa.Column("request_sha256", sa.Text, nullable=False),
    sa.Column("voucher_id", sa.Text, nullable=False),
    sa.Column("wallet_id", sa.Text, nullable=False),
    sa.Column("order_amount_fen", sa.BigInteger, nullable=False),
    sa.Column("subsidy_fen", sa.BigInteger, nullable=False),
    sa.Column("payable_fen", sa.BigInteger, nullable=False),
    # Running totals of refunds: order amount given back, and the subsidy clawed back to escrow with it.
    sa.Column("refunded_fen", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("subsidy_refunded_fen", sa.BigInteger, nullable=False, server_default="0"),
    # The subsidy a clawback (追回) took back; non-zero only once the redemption is `clawed_back` (a `clawbacks` row).
    sa.Column("clawed_back_fen", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("ledger_tx_id", sa.Text, nullable=False),
    sa.Column("settled_at", TS, nullable=False),
    # The China calendar day the subsidy counted against (daily caps give it back to that day on refund).
    sa.Column("spend_day", sa.Date, nullable=False),
    sa.Column("items", pg.JSONB, nullable=True),
    sa.CheckConstraint("subsidy_fen > 0 AND subsidy_fen <= order_amount_fen", name="subsidy_range"),
    sa.CheckConstraint("payable_fen = order_amount_fen - subsidy_fen", name="payable_is_rest"),
    sa.CheckConstraint("refunded_fen >= 0 AND refunded_fen <= order_amount_fen", name="refund_range"),
    sa.CheckConstraint("subsidy_refunded_fen >= 0 AND subsidy_refunded_fen <= subsidy_fen", name="clawback_range"),
    sa.CheckConstraint(
        "clawed_back_fen >= 0 AND subsidy_refunded_fen + clawed_back_fen <= subsidy_fen", name="clawed_back_range"
    ),
    sa.Index("uq_redemptions_merchant_id_pos_txn_id", "merchant_id", "pos_txn_id", unique=True),
    sa.Index("ix_redemptions_campaign_id_voucher_id", "campaign_id", "voucher_id"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("redemption_id", sa.Text, primary_key=True),
    # The till's own id for the refund: the idempotency key, within its redemption.
    sa.Column("refund_id", sa.Text, primary_key=True),
    sa.Column("request_sha256", sa.Text, nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("subsidy_clawback_fen", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ledger_tx_id", sa.Text, nullable=True),
    sa.Column("voucher_restored", sa.Boolean, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
    sa.CheckConstraint("subsidy_clawback_fen >= 0", name="clawback_nonnegative"),
)

daily_spend = sa.Table(
    "daily_spend",
    metadata,
    # What a capped campaign has paid out on one calendar day of its time zone; the CHECK makes the cap hard.
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("spent_fen", sa.BigInteger, nullable=False),
    sa.Column("cap_fen", sa.BigInteger, nullable=False),
    sa.CheckConstraint("spent_fen >= 0 AND spent_fen <= cap_fen", name="within_cap"),
)

clawbacks = sa.Table(
    "clawbacks",
    metadata,
    # One per redemption: a second clawback of the same redemption answers this one (idempotent).
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("redemption_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ledger_tx_id", sa.Text, nullable=False),
    # The `return` that sent it on to the funders, when the campaign had already closed.
    sa.Column("return_tx_id", sa.Text, nullable=True),
    # Who asked: the token's role and id (an admin, or the campaign's gov).
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
)
