"""campaigns: campaigns, their funders, vouchers, first-come stock, issuances; the claim function

Revision ID: 0003_campaigns
Revises: 0002_ledger

`campaign_claim_batch(...)` is a batch of first-come claims of one campaign as one statement, one transaction and
one WAL flush (plans cached by PL/pgSQL): status check, per-holder advisory locks (in one global order) and counts,
one unit of stock per claim from a shard that no other transaction holds (SKIP LOCKED, never waiting), and the
voucher rows. See voucher_engine/campaigns/claims.py for the design.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_campaigns"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None

CONTRACT_IMMUTABLE = r"""
CREATE FUNCTION campaigns_contract_immutable() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.contract_source IS DISTINCT FROM OLD.contract_source
       OR NEW.contract_sha256 IS DISTINCT FROM OLD.contract_sha256 THEN
        RAISE EXCEPTION 'a campaign''s contract is immutable (campaign %)', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$fn$;
"""

CONTRACT_TRIGGER = r"""
CREATE TRIGGER campaigns_contract_immutable BEFORE UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION campaigns_contract_immutable();
"""

CLAIM_FUNCTION = r"""
CREATE FUNCTION campaign_claim_batch(
    p_campaign_id text, p_voucher_ids text[], p_wallet_ids text[], p_id_hashes text[], p_holder_keys text[],
    p_per_holder_limit integer, p_start_shard integer, p_valid_froms timestamptz[], p_valid_untils timestamptz[],
    p_face_value_fen bigint, p_attributes jsonb[], p_now timestamptz)
RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_count integer := cardinality(p_voucher_ids);
    v_results text[] := array_fill(NULL::text, ARRAY[cardinality(p_voucher_ids)]);
    v_status text;
    v_shards integer;
    v_held bigint;
    v_shard smallint;
    v_lock bigint;
BEGIN
    SELECT status, stock_shards INTO v_status, v_shards FROM campaigns WHERE id = p_campaign_id;
    IF v_status IS DISTINCT FROM 'active' OR v_shards < 1 THEN
        RETURN array_fill('CAMPAIGN_NOT_ACTIVE'::text, ARRAY[v_count]);
    END IF;
    -- The batch's holders, locked first and in one global order: only claims of the same holder ever wait for
    -- each other, and two batches can never wait on each other in a cycle.
    FOR v_lock IN SELECT DISTINCT hashtextextended(p_campaign_id || '/' || k, 0) AS h
                    FROM unnest(p_holder_keys) AS k ORDER BY h LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
    FOR i IN 1 .. v_count LOOP
        SELECT count(*) INTO v_held FROM vouchers
         WHERE campaign_id = p_campaign_id AND holder_key = p_holder_keys[i];
        IF v_held >= p_per_holder_limit THEN
            v_results[i] := 'HOLDER_LIMIT';
            CONTINUE;
        END IF;
        -- One unit from the first shard, from this batch's random start, that has stock and that no other
        -- transaction holds: concurrent batches spread over the shards instead of queueing on one counter.
        v_shard := NULL;
        UPDATE claim_stock s SET remaining = s.remaining - 1
         WHERE s.campaign_id = p_campaign_id AND s.remaining > 0 AND s.shard = (
               SELECT c.shard FROM claim_stock c
                WHERE c.campaign_id = p_campaign_id AND c.remaining > 0
                ORDER BY (c.shard - p_start_shard + v_shards) % v_shards
                LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING s.shard INTO v_shard;
        IF v_shard IS NULL THEN
            -- Never wait for a shard (that could close a cycle with another batch): sold out when no shard has
            -- stock, else every shard with stock is held by another batch for a moment, and the caller retries.
            IF EXISTS (SELECT 1 FROM claim_stock c WHERE c.campaign_id = p_campaign_id AND c.remaining > 0) THEN
                v_results[i] := 'RETRY';
            ELSE
                v_results[i] := 'SOLD_OUT';
            END IF;
            CONTINUE;
        END IF;
        INSERT INTO vouchers (campaign_id, id, wallet_id, id_hash, holder_key, status, valid_from, valid_until,
                              face_value_fen, balance_fen, issued_at, issuance_id, attributes, version, updated_at)
        VALUES (p_campaign_id, p_voucher_ids[i], p_wallet_ids[i], p_id_hashes[i], p_holder_keys[i], 'issued',
                p_valid_froms[i], p_valid_untils[i], p_face_value_fen, p_face_value_fen, p_now, NULL,
                p_attributes[i], 1, p_now);
        v_results[i] := 'OK';
    END LOOP;
    RETURN v_results;
END
$fn$;
"""


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("issuer_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("contract_source", sa.Text(), nullable=False),
        sa.Column("contract_sha256", sa.Text(), nullable=False),
        sa.Column("issuer_region", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("budget_fen", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("per_holder_limit", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("distribution", sa.Text(), nullable=False),
        sa.Column("face_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("daily_cap_fen", sa.BigInteger(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("validity_seconds", sa.BigInteger(), nullable=True),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stock_shards", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fund_tx_id", sa.Text(), nullable=True),
        sa.Column("return_tx_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("funded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "distribution IN ('targeted', 'lottery', 'first_come')", name=op.f("ck_campaigns_distribution_known")
        ),
        sa.CheckConstraint(
            "contract_sha256 = encode(sha256(convert_to(contract_source, 'UTF8')), 'hex')",
            name=op.f("ck_campaigns_contract_sha256_matches"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'funded', 'active', 'paused', 'closed')", name=op.f("ck_campaigns_status_known")
        ),
        sa.CheckConstraint(
            "(valid_from IS NOT NULL AND valid_until IS NOT NULL AND validity_seconds IS NULL) OR (valid_from IS NULL AND valid_until IS NULL AND validity_seconds > 0)",
            name=op.f("ck_campaigns_validity_one_form"),
        ),
        sa.CheckConstraint(
            "budget_fen > 0 AND face_value_fen > 0 AND quantity > 0 AND per_holder_limit > 0",
            name=op.f("ck_campaigns_terms_positive"),
        ),
        sa.ForeignKeyConstraint(["issuer_id"], ["issuers.id"], name=op.f("fk_campaigns_issuer_id_issuers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_contract_sha256"), "campaigns", ["contract_sha256"], unique=False)
    op.create_index(op.f("ix_campaigns_issuer_id"), "campaigns", ["issuer_id"], unique=False)
    op.create_table(
        "campaign_funders",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("region_code", sa.Text(), nullable=False),
        sa.Column("issuer_id", sa.Text(), nullable=False),
        sa.Column("share_bp", sa.Integer(), nullable=False),
        sa.CheckConstraint("share_bp > 0 AND share_bp <= 10000", name=op.f("ck_campaign_funders_share_range")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_funders_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "position", name=op.f("pk_campaign_funders")),
    )
    op.create_table(
        "issuances",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("processed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("issued", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("lottery", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('targeted', 'lottery')", name=op.f("ck_issuances_kind_known")),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f("ck_issuances_status_known")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_issuances_campaign_id_campaigns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuances")),
    )
    op.create_index(op.f("ix_issuances_campaign_id"), "issuances", ["campaign_id"], unique=False)
    op.create_table(
        "claim_stock",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("remaining >= 0", name=op.f("ck_claim_stock_remaining_nonnegative")),
        sa.PrimaryKeyConstraint("campaign_id", "shard", name=op.f("pk_claim_stock")),
    )
    op.create_table(
        "vouchers",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("wallet_id", sa.Text(), nullable=False),
        sa.Column("id_hash", sa.Text(), nullable=True),
        sa.Column("holder_key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("face_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issuance_id", sa.Text(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('issued', 'redeemed', 'expired', 'revoked')", name=op.f("ck_vouchers_status_known")
        ),
        sa.CheckConstraint(
            "balance_fen >= 0 AND balance_fen <= face_value_fen", name=op.f("ck_vouchers_balance_range")
        ),
        sa.CheckConstraint("valid_from < valid_until", name=op.f("ck_vouchers_window_order")),
        sa.PrimaryKeyConstraint("campaign_id", "id", name=op.f("pk_vouchers")),
    )
    op.create_index("ix_vouchers_campaign_id_holder_key", "vouchers", ["campaign_id", "holder_key"], unique=False)
    op.create_index("ix_vouchers_valid_until_brin", "vouchers", ["valid_until"], unique=False, postgresql_using="brin")
    op.create_index(op.f("ix_vouchers_wallet_id"), "vouchers", ["wallet_id"], unique=False)
    op.execute(CLAIM_FUNCTION)
    op.execute(CONTRACT_IMMUTABLE)
    op.execute(CONTRACT_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS campaigns_contract_immutable ON campaigns")
    op.execute("DROP FUNCTION IF EXISTS campaigns_contract_immutable()")
    op.execute(
        "DROP FUNCTION IF EXISTS campaign_claim_batch(text, text[], text[], text[], text[], integer, integer,"
        " timestamptz[], timestamptz[], bigint, jsonb[], timestamptz)"
    )
    op.drop_index(op.f("ix_issuances_campaign_id"), table_name="issuances")
    op.drop_table("issuances")
    op.drop_table("campaign_funders")
    op.drop_index(op.f("ix_campaigns_issuer_id"), table_name="campaigns")
    op.drop_index(op.f("ix_campaigns_contract_sha256"), table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_index(op.f("ix_vouchers_wallet_id"), table_name="vouchers")
    op.drop_index("ix_vouchers_valid_until_brin", table_name="vouchers", postgresql_using="brin")
    op.drop_index("ix_vouchers_campaign_id_holder_key", table_name="vouchers")
    op.drop_table("vouchers")
    op.drop_table("claim_stock")
