"""Tables of risk control (反欺诈): the flags opened for review and the decisions made on them.

A flag names a signal, the outcome its rule asked for (flag | hold | refuse), the merchant, the campaign (NULL for a
pattern across campaigns), the redemptions it is about and its evidence. `dedupe_key` is unique: a detector that
runs again over the same window, or a batch that is retried, finds the flag it opened instead of opening another.
A decision (clear | confirm) is made once per flag (unique `flag_id`) and kept for good (append-only: a trigger of
migration 0016 refuses UPDATE and DELETE).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from . import metadata

TS = sa.DateTime(timezone=True)

risk_flags = sa.Table(
    "risk_flags",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    # The listing order (newest first) and its cursor: ids are random.
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("signal", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    # NULL for a pattern of no one merchant (one holder across many merchants, a claims burst): migration 0018.
    sa.Column("merchant_id", sa.Text, nullable=True),
    sa.Column("campaign_id", sa.Text, nullable=True),
    sa.Column("redemption_ids", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("evidence", pg.JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("dedupe_key", sa.Text, nullable=False, unique=True),
    sa.Column("opened_at", TS, nullable=False),
    # Whether opening the flag put the merchant on payout hold (it was not held before): the flag caused the hold.
    sa.Column("hold_caused", sa.Boolean, nullable=False),
    sa.Column("decided_at", TS, nullable=True),
    sa.CheckConstraint("outcome IN ('flag', 'hold', 'refuse')", name="outcome_known"),
    sa.CheckConstraint("status IN ('open', 'cleared', 'confirmed')", name="status_known"),
    sa.CheckConstraint("(status = 'open') = (decided_at IS NULL)", name="decided_once"),
    sa.CheckConstraint("cardinality(redemption_ids) <= 10000", name="redemptions_bounded"),
    sa.Index("ix_risk_flags_campaign_id_seq", "campaign_id", "seq"),
    sa.Index("ix_risk_flags_merchant_id_seq", "merchant_id", "seq"),
)

RISK_DECISIONS = ("clear", "confirm")

risk_decisions = sa.Table(
    "risk_decisions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    # One decision per flag, ever: the second is refused by this unique key whatever the race.
    sa.Column("flag_id", sa.Text, sa.ForeignKey("risk_flags.id"), nullable=False, unique=True),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    # Who: the caller's role and token id (never the token); the issuer a gov token is bound to.
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("token_id", sa.Text, nullable=False),
    sa.Column("issuer_id", sa.Text, nullable=True),
    sa.Column("decided_at", TS, nullable=False),
    # What the decision moved: the clawbacks it made, whether it released the merchant's hold.
    sa.Column("clawback_ids", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("released_hold", sa.Boolean, nullable=False),
    sa.CheckConstraint("decision IN ('clear', 'confirm')", name="decision_known"),
)
