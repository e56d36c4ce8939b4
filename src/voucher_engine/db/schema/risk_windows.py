"""Tables of the risk room's window detector (反欺诈, patterns over time): its cursor and its window state.

The detector (`risk.detector`) tails the ledger's sequenced transactions by `seq` like the stats poller, copies each
redemption and refund it takes into `risk_w_events` (what the windows of the last days need: merchant, holder,
voucher, order amount, the voucher's minimum spend), and keeps two aggregates that outlive those days: a merchant's
hours (its own history, against which velocity is judged) and holder–merchant pairs (which recur across vouchers
and campaigns over weeks). Everything lives in PostgreSQL, so whichever worker runs the next pass sees it; the
cursor moves in the same transaction as the state and the flags it opens.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from . import metadata

TS = sa.DateTime(timezone=True)

risk_w_cursor = sa.Table(
    "risk_w_cursor",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True),
    # The last ledger seq the windows have taken in.
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    # First-come claims are not in the ledger (no money moves): the business time up to which they were read.
    sa.Column("claims_at", TS, nullable=True),
    sa.Column("updated_at", TS, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

risk_w_events = sa.Table(
    "risk_w_events",
    metadata,
    # The ledger seq of the redemption's or refund's transaction: unique, and the order things happened in.
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("campaign_id", sa.Text, nullable=False),
    sa.Column("redemption_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    # The holder: the voucher's id_hash, else "w:" + its wallet (never an attribute).
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("voucher_id", sa.Text, nullable=False),
    sa.Column("order_amount_fen", sa.BigInteger, nullable=False),
    # The voucher's minimum spend (0: none), so a window can tell orders that hug it.
    sa.Column("min_spend_fen", sa.BigInteger, nullable=False),
    sa.CheckConstraint("kind IN ('redeem', 'refund')", name="kind_known"),
    sa.Index("ix_risk_w_events_merchant_id_at", "merchant_id", "at"),
    sa.Index("ix_risk_w_events_holder_at", "holder", "at"),
    sa.Index("ix_risk_w_events_at_brin", "at", postgresql_using="brin"),
)

risk_w_merchant_hours = sa.Table(
    "risk_w_merchant_hours",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("hour", TS, primary_key=True),
    sa.Column("redemptions", sa.Integer, nullable=False),
    # The busiest minute of that hour.
    sa.Column("max_minute", sa.Integer, nullable=False),
)

# Each merchant's redemptions per minute (kept a day): its sliding hour and busiest minute are read from at most 60
# of these rows instead of counting its events again (migration 0022).
risk_w_merchant_minutes = sa.Table(
    "risk_w_merchant_minutes",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("minute", TS, primary_key=True),
    sa.Column("redemptions", sa.Integer, nullable=False),
)

# Each merchant's threshold-voucher orders per hour, minimum spend and exact amount (kept as long as the events):
# its share of orders that hug the minimum spend, and its most repeated amount, over the week.
risk_w_merchant_amounts = sa.Table(
    "risk_w_merchant_amounts",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("hour", TS, primary_key=True),
    sa.Column("min_spend_fen", sa.BigInteger, primary_key=True),
    sa.Column("order_amount_fen", sa.BigInteger, primary_key=True),
    sa.Column("orders", sa.Integer, nullable=False),
)

risk_w_pairs = sa.Table(
    "risk_w_pairs",
    metadata,
    sa.Column("holder", sa.Text, primary_key=True),
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("redemptions", sa.Integer, nullable=False),
    sa.Column("campaigns", pg.ARRAY(sa.Text), nullable=False),
    # Of its redemptions, those whose order hugs the voucher's minimum spend (a sale rung at the threshold).
    sa.Column("hugging", sa.Integer, nullable=False),
    # The latest redemptions of the pair (at most 50), for a flag's evidence.
    sa.Column("redemption_ids", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("first_at", TS, nullable=False),
    sa.Column("last_at", TS, nullable=False),
)

risk_w_claims_seen = sa.Table(
    "risk_w_claims_seen",
    metadata,
    # A first-come campaign's stock left when the detector last read its claims: unchanged, nothing to read.
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("remaining", sa.BigInteger, nullable=False),
)
