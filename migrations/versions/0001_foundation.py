"""foundation: issuers, merchants, keys, tokens, nonces, test clock

Revision ID: 0001_foundation
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuers",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("region_code", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("region_code ~ '^[0-9]{6}$'", name=op.f("ck_issuers_region_code_format")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuers")),
        sa.UniqueConstraint("region_code", name=op.f("uq_issuers_region_code")),
    )
    op.create_table(
        "merchants",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("mcc", sa.Text(), nullable=False),
        sa.Column("region_code", sa.Text(), nullable=False),
        sa.Column("settlement_wallet", sa.Text(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("mcc ~ '^[0-9]{4}$'", name=op.f("ck_merchants_mcc_format")),
        sa.CheckConstraint("region_code ~ '^[0-9]{6}$'", name=op.f("ck_merchants_region_code_format")),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_merchants_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
    )
    op.create_table(
        "request_nonces",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "nonce", name=op.f("pk_request_nonces")),
    )
    op.create_index(op.f("ix_request_nonces_seen_at"), "request_nonces", ["seen_at"], unique=False)
    op.create_table(
        "test_clock",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("offset_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_test_clock_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_clock")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("issuer_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role <> 'admin' OR issuer_id IS NULL", name=op.f("ck_api_tokens_admin_unbound")),
        sa.CheckConstraint("role <> 'gov' OR issuer_id IS NOT NULL", name=op.f("ck_api_tokens_gov_has_issuer")),
        sa.CheckConstraint("role IN ('admin', 'gov', 'auditor')", name=op.f("ck_api_tokens_role_known")),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name=op.f("fk_api_tokens_issuer_id_issuers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_table(
        "merchant_keys",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("merchant_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_keys_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_merchant_keys")),
    )
    op.create_index(op.f("ix_merchant_keys_merchant_id"), "merchant_keys", ["merchant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_merchant_keys_merchant_id"), table_name="merchant_keys")
    op.drop_table("merchant_keys")
    op.drop_table("api_tokens")
    op.drop_table("test_clock")
    op.drop_index(op.f("ix_request_nonces_seen_at"), table_name="request_nonces")
    op.drop_table("request_nonces")
    op.drop_table("merchants")
    op.drop_table("issuers")
