"""Tables of the foundation: issuers, merchants and their POS keys, API tokens, request nonces, the test clock."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from . import metadata

TS = sa.DateTime(timezone=True)

issuers = sa.Table(
    "issuers",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    # GB/T 2260 code; one issuer per region, because contracts name funders by region code.
    sa.Column("region_code", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
    # The appropriation (预算额度): the most this issuer may have committed at once (its share of every funded
    # campaign, less what came back); NULL = no limit. What it has committed is read from its fiscal account.
    sa.Column("appropriation_fen", sa.BigInteger, nullable=True),
    sa.CheckConstraint("region_code ~ '^[0-9]{6}$'", name="region_code_format"),
    sa.CheckConstraint("appropriation_fen IS NULL OR appropriation_fen >= 0", name="appropriation_not_negative"),
)

merchants = sa.Table(
    "merchants",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("mcc", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("settlement_wallet", sa.Text, nullable=False),
    sa.Column("tags", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    # Bumped on every change, so that in-memory registry caches can tell they are stale.
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    # Payout hold (settlement/): a held merchant keeps redeeming but is left out of payout runs until released.
    sa.Column("payout_hold_reason", sa.Text, nullable=True),
    sa.Column("payout_hold_since", TS, nullable=True),
    sa.CheckConstraint("status IN ('active', 'suspended')", name="status_known"),
    sa.CheckConstraint("(payout_hold_reason IS NULL) = (payout_hold_since IS NULL)", name="payout_hold_whole"),
    sa.CheckConstraint("mcc ~ '^[0-9]{4}$'", name="mcc_format"),
    sa.CheckConstraint("region_code ~ '^[0-9]{6}$'", name="region_code_format"),
)

merchant_keys = sa.Table(
    "merchant_keys",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("merchant_id", sa.Text, sa.ForeignKey("merchants.id"), nullable=False, index=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("revoked_at", TS, nullable=True),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    # SHA-256 of the token: the token itself is shown once and never stored.
    sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("issuer_id", sa.Text, sa.ForeignKey("issuers.id"), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("revoked_at", TS, nullable=True),
    # Real time, written at most once a minute per token and worker (auth/service.py), not on every request.
    sa.Column("last_used_at", TS, nullable=True),
    sa.CheckConstraint("role IN ('admin', 'gov', 'auditor')", name="role_known"),
    sa.CheckConstraint("role <> 'gov' OR issuer_id IS NOT NULL", name="gov_has_issuer"),
    sa.CheckConstraint("role <> 'admin' OR issuer_id IS NULL", name="admin_unbound"),
)

request_nonces = sa.Table(
    "request_nonces",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("nonce", sa.Text, primary_key=True),
    # Real (wall-clock) time: replay windows never follow the test clock.
    sa.Column("seen_at", TS, nullable=False, index=True),
)

test_clock = sa.Table(
    "test_clock",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True),
    sa.Column("offset_us", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)
