"""Tables of campaigns (消费券活动): the immutable contract, its funders, the vouchers, first-come stock, issuances.

Every hot table leads with `campaign_id` in its primary key, so that the schema can be distributed by campaign
(Citus) without change. The interface the redemption path relies on is the `vouchers` table:

- `status` moves `issued -> redeemed | expired | revoked` by conditional UPDATEs (`WHERE status = 'issued'`), and
  back `redeemed -> issued` on a full refund; `version` is bumped and `updated_at` set on every change.
- `balance_fen` is what is left on the voucher: for `balance` vouchers it is spent down, for every other kind it
  equals `face_value_fen` until the voucher is redeemed.
- `valid_from <= t < valid_until` is the voucher's window (half-open), already resolved from the contract at
  issue (a relative validity is turned into absolute times here).
- `holder_key` is what per-holder limits count: `h:<id_hash>` when the holder gave one, else `w:<wallet_id>`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from . import metadata

TS = sa.DateTime(timezone=True)

CAMPAIGN_STATUSES = ("draft", "funded", "active", "paused", "closed")
VOUCHER_STATUSES = ("issued", "redeemed", "expired", "revoked")

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    # The ledger's gov scoping reads (id, issuer_id) from this table: keep both names.
    sa.Column("issuer_id", sa.Text, sa.ForeignKey("issuers.id"), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    # The contract is the whole campaign; it is never updated, and is identified by its SHA-256.
    sa.Column("contract_source", sa.Text, nullable=False),
    sa.Column("contract_sha256", sa.Text, nullable=False, index=True),
    sa.Column("issuer_region", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("budget_fen", sa.BigInteger, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("per_holder_limit", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("distribution", sa.Text, nullable=False),
    sa.Column("face_value_fen", sa.BigInteger, nullable=False),
    sa.Column("daily_cap_fen", sa.BigInteger, nullable=True),
    # A fixed window (both set) or a validity relative to each voucher's issue (validity_seconds set).
    sa.Column("valid_from", TS, nullable=True),
    sa.Column("valid_until", TS, nullable=True),
    sa.Column("validity_seconds", sa.BigInteger, nullable=True),
    sa.Column("summary", pg.JSONB, nullable=False),
    # First-come campaigns split their stock over this many rows of `claim_stock` (0 for other distributions).
    sa.Column("stock_shards", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fund_tx_id", sa.Text, nullable=True),
    sa.Column("return_tx_id", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("funded_at", TS, nullable=True),
    sa.Column("activated_at", TS, nullable=True),
    sa.Column("closed_at", TS, nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.CheckConstraint("status IN ('draft', 'funded', 'active', 'paused', 'closed')", name="status_known"),
    # The digest is the contract's identity; the database checks it (a trigger of 0003 also refuses any change
    # to the stored text or digest after creation).
    sa.CheckConstraint(
        "contract_sha256 = encode(sha256(convert_to(contract_source, 'UTF8')), 'hex')", name="contract_sha256_matches"
    ),
    sa.CheckConstraint("distribution IN ('targeted', 'lottery', 'first_come')", name="distribution_known"),
    sa.CheckConstraint(
        "budget_fen > 0 AND face_value_fen > 0 AND quantity > 0 AND per_holder_limit > 0", name="terms_positive"
    ),
    sa.CheckConstraint(
        "(valid_from IS NOT NULL AND valid_until IS NOT NULL AND validity_seconds IS NULL)"
        " OR (valid_from IS NULL AND valid_until IS NULL AND validity_seconds > 0)",
        name="validity_one_form",
    ),
)

campaign_funders = sa.Table(
    "campaign_funders",
    metadata,
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaigns.id"), primary_key=True),
    # Order as listed in the contract: the first funder takes the leftover fen of every split.
    sa.Column("position", sa.SmallInteger, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    # `iss_<region_code>`; not a foreign key because a funder need only be registered by the time of funding.
    sa.Column("issuer_id", sa.Text, nullable=False),
    sa.Column("share_bp", sa.Integer, nullable=False),
    # Consent (出资同意): `own` for the campaign's own issuer, else `pending` until that funder's gov approves or
    # declines; the latest decision's who and when beside it, every decision in campaign_funder_decisions.
    sa.Column("approval", sa.Text, nullable=False),
    sa.Column("decided_by", sa.Text, nullable=True),
    sa.Column("decided_at", TS, nullable=True),
    sa.CheckConstraint("share_bp > 0 AND share_bp <= 10000", name="share_range"),
    sa.CheckConstraint("approval IN ('own', 'pending', 'approved', 'declined')", name="approval_known"),
)

FUNDER_DECISIONS = ("approved", "declined")

campaign_funder_decisions = sa.Table(
    "campaign_funder_decisions",
    metadata,
    # Every approval and decline a co-funder gave, kept for good (append-only: a trigger of migration 0014 refuses
    # UPDATE and DELETE).
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaigns.id"), nullable=False, index=True),
    sa.Column("issuer_id", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    # The token that gave it (its id, never the secret) and the business time it was given.
    sa.Column("token_id", sa.Text, nullable=False),
    sa.Column("decided_at", TS, nullable=False),
    sa.CheckConstraint("decision IN ('approved', 'declined')", name="decision_known"),
)

VOUCHERS_FILLFACTOR = 85

vouchers = sa.Table(
    "vouchers",
    metadata,
    # No foreign key to campaigns: a per-row RI trigger would double the cost of issuing a million vouchers by
    # COPY; every writer goes through campaigns/ which checks the campaign first.
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("wallet_id", sa.Text, nullable=False, index=True),
    sa.Column("id_hash", sa.Text, nullable=True),
    sa.Column("holder_key", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("valid_from", TS, nullable=False),
    sa.Column("valid_until", TS, nullable=False),
    sa.Column("face_value_fen", sa.BigInteger, nullable=False),
    sa.Column("balance_fen", sa.BigInteger, nullable=False),
    sa.Column("issued_at", TS, nullable=False),
    # NULL for vouchers won by a first-come claim.
    sa.Column("issuance_id", sa.Text, nullable=True),
    # No holder attributes: eligibility is decided at issue and only the decision is kept (migration 0012 dropped
    # the column; attested holders leave their attestation's digest and jti in `attestation_uses`).
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("updated_at", TS, nullable=False),
    sa.CheckConstraint("status IN ('issued', 'redeemed', 'expired', 'revoked')", name="status_known"),
    sa.CheckConstraint("balance_fen >= 0 AND balance_fen <= face_value_fen", name="balance_range"),
    sa.CheckConstraint("valid_from < valid_until", name="window_order"),
    # Claims count a holder's vouchers one holder at a time; a first-come campaign holds claimed vouchers only
    # (issuance_id NULL). Issuances count their campaign's holders in one pass over the primary key, so issued
    # vouchers stay out of this index: it was most of the database's work in a million-voucher COPY.
    sa.Index(
        "ix_vouchers_claimed_holder", "campaign_id", "holder_key", postgresql_where=sa.text("issuance_id IS NULL")
    ),
    # The expiry sweep finds due vouchers by a BRIN index: valid_until follows insertion order (a campaign's
    # vouchers share one window, or a window counted from issue), it costs next to nothing on a million-row COPY,
    # where a B-tree would add a third to the time.
    sa.Index("ix_vouchers_valid_until_brin", "valid_until", postgresql_using="brin"),
    # Room on every page for the redemption's new row version (migration 0007): the update then stays on its page
    # (HOT) and touches none of the indexes.
    postgresql_with={"fillfactor": VOUCHERS_FILLFACTOR},
)

claim_stock = sa.Table(
    "claim_stock",
    metadata,
    # A first-come campaign's unclaimed vouchers, split over several rows so that concurrent claims take from
    # different rows (SKIP LOCKED) instead of queueing behind one counter. The CHECK makes oversell impossible.
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True),
    sa.Column("remaining", sa.BigInteger, nullable=False),
    sa.CheckConstraint("remaining >= 0", name="remaining_nonnegative"),
)

issuances = sa.Table(
    "issuances",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaigns.id"), nullable=False, index=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("issued", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected_count", sa.BigInteger, nullable=False, server_default="0"),
    # The first rejections (capped), each {"wallet_id", "code"}.
    sa.Column("rejected", pg.JSONB, nullable=False, server_default="[]"),
    # What anyone needs to recompute a lottery draw (seed, applicants' digest, slots, algorithm, winners).
    sa.Column("lottery", pg.JSONB, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=True),
    sa.CheckConstraint("kind IN ('targeted', 'lottery')", name="kind_known"),
    sa.CheckConstraint("status IN ('running', 'done', 'failed')", name="status_known"),
)
