"""attestations: attesters and spent attestations; no raw holder attributes at rest

- `attesters` (Ed25519 public keys of public-data operators, retired but never deleted) and `attestation_uses`
  (per campaign and jti: the eligibility decision, the attestation's SHA-256, the attester, the wallet).
- `vouchers.attributes` is dropped: the engine decides eligibility at issue and keeps only the decision (a voucher
  exists) — an engine that decides eligibility must not be a second copy of the population register. Issuances
  and lottery publications never held attributes (rejections are wallet and code; lottery keys are wallet and
  id_hash).
- `campaign_claims(...)` loses its attributes argument and gains the claims' attestations (jti, digest,
  attester): a claim's jti is locked (advisory, in the same global order as the holders) and checked against
  `attestation_uses` and the batch's earlier claims (`ATTESTATION_REPLAYED`), and recorded in the same transaction
  as its voucher.

The downgrade brings the column back empty (`{}`): dropped attributes cannot be restored, by design.

Revision ID: 0012_attestations
Revises: 0011_settlement
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0012_attestations"
down_revision = "0011_settlement"
branch_labels = None
depends_on = None

OLD_SIGNATURE = (
    "campaign_claims(text, text[], text[], text[], integer, integer, timestamptz[], timestamptz[], timestamptz[],"
    " bigint, jsonb[])"
)
NEW_SIGNATURE = (
    "campaign_claims(text, text[], text[], text[], integer, integer, timestamptz[], timestamptz[], timestamptz[],"
    " bigint, text[], bytea[], text[])"
)

CLAIMS_FUNCTION = r"""
CREATE FUNCTION campaign_claims(
    p_campaign_id text, p_voucher_ids text[], p_wallet_ids text[], p_id_hashes text[], p_per_holder_limit integer,
    p_start_shard integer, p_issued_ats timestamptz[], p_valid_froms timestamptz[], p_valid_untils timestamptz[],
    p_face_value_fen bigint, p_jtis text[], p_attestation_sha256s bytea[], p_attester_ids text[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_count integer := cardinality(p_voucher_ids);
    v_keys text[];
    v_replayed boolean[];
    v_results text[];
    v_wanted integer[];
    v_soft integer[];
    v_status text;
    v_shards integer;
    v_need integer;
    v_got integer := 0;
    v_took bigint;
    v_short text;
    v_lock bigint;
BEGIN
    SELECT status, stock_shards INTO v_status, v_shards FROM campaigns WHERE id = p_campaign_id;
    IF v_status IS DISTINCT FROM 'active' OR v_shards < 1 THEN
        RETURN array_fill('CAMPAIGN_NOT_ACTIVE'::text, ARRAY[v_count]);
    END IF;
    SELECT array_agg(CASE WHEN h IS NULL THEN 'w:' || w ELSE 'h:' || h END ORDER BY i) INTO v_keys
      FROM unnest(p_wallet_ids, p_id_hashes) WITH ORDINALITY AS c(w, h, i);
    -- The batch's holders and attestations (by jti), locked first and in one global order: only claims of the
    -- same holder or the same attestation ever wait for each other, and two batches never wait in a cycle.
    FOR v_lock IN SELECT DISTINCT hashtextextended(p_campaign_id || '/' || k, 0) AS h
                    FROM (SELECT unnest(v_keys) AS k
                          UNION ALL SELECT 'jti:' || j FROM unnest(p_jtis) AS j WHERE j IS NOT NULL) AS keys
                   ORDER BY h LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
    -- An attestation spent before (committed: its jti lock is ours now) or by an earlier claim of this batch.
    SELECT array_agg(c.j IS NOT NULL AND (c.n > 1 OR EXISTS (
                         SELECT 1 FROM attestation_uses u WHERE u.campaign_id = p_campaign_id AND u.jti = c.j))
                     ORDER BY c.i)
      INTO v_replayed
      FROM (SELECT j, i, row_number() OVER (PARTITION BY j ORDER BY i) AS n
              FROM unnest(p_jtis) WITH ORDINALITY AS x(j, i)) AS c;
    -- Each claim's place among its holder's vouchers: those already held plus the same holder's earlier claims in
    -- this batch. Past the limit: HOLDER_LIMIT (`v_soft` when only this batch's own earlier claims put it there).
    SELECT array_agg(CASE WHEN r.replayed THEN 'ATTESTATION_REPLAYED'
                          WHEN r.nth > p_per_holder_limit THEN 'HOLDER_LIMIT' END ORDER BY r.i),
           array_agg(r.i ORDER BY r.i) FILTER (WHERE NOT r.replayed AND r.nth <= p_per_holder_limit),
           array_agg(r.i ORDER BY r.i) FILTER (WHERE NOT r.replayed AND r.nth > p_per_holder_limit
                                                 AND r.held < p_per_holder_limit)
      INTO v_results, v_wanted, v_soft
      FROM (SELECT c.i, c.replayed, held.n AS held,
                   held.n + row_number() OVER (PARTITION BY c.k, c.replayed ORDER BY c.i) AS nth
              FROM unnest(v_keys, v_replayed) WITH ORDINALITY AS c(k, replayed, i)
             CROSS JOIN LATERAL (SELECT count(*) AS n FROM vouchers v
                                  WHERE v.campaign_id = p_campaign_id AND v.holder_key = c.k
                                    AND v.issuance_id IS NULL) AS held) AS r;
    v_need := coalesce(cardinality(v_wanted), 0);
    -- Units for the whole batch from the first shard, from this batch's random start, that has stock and that no
    -- other transaction holds (then the next, if it had fewer): concurrent batches spread over the shards instead
    -- of queueing on one counter, and a batch of k claims updates one row by k, not one row k times.
    WHILE v_got < v_need LOOP
        v_took := NULL;
        WITH pick AS MATERIALIZED (
            SELECT c.shard, c.remaining FROM claim_stock c
             WHERE c.campaign_id = p_campaign_id AND c.remaining > 0
             ORDER BY (c.shard - p_start_shard + v_shards) % v_shards
             LIMIT 1 FOR UPDATE SKIP LOCKED)
        UPDATE claim_stock s SET remaining = s.remaining - least(pick.remaining, v_need - v_got)
          FROM pick
         WHERE s.campaign_id = p_campaign_id AND s.shard = pick.shard
        RETURNING least(pick.remaining, v_need - v_got) INTO v_took;
        EXIT WHEN v_took IS NULL;
        v_got := v_got + v_took::integer;
    END LOOP;
    IF v_got > 0 THEN
        INSERT INTO vouchers (campaign_id, id, wallet_id, id_hash, holder_key, status, valid_from, valid_until,
                              face_value_fen, balance_fen, issued_at, issuance_id, version, updated_at)
        SELECT p_campaign_id, p_voucher_ids[i], p_wallet_ids[i], p_id_hashes[i], v_keys[i], 'issued',
               p_valid_froms[i], p_valid_untils[i], p_face_value_fen, p_face_value_fen, p_issued_ats[i], NULL,
               1, p_issued_ats[i]
          FROM unnest(v_wanted[1:v_got]) AS i;
        FOR j IN 1 .. v_got LOOP
            v_results[v_wanted[j]] := 'OK';
        END LOOP;
    END IF;
    IF v_got < v_need THEN
        -- Never wait for a shard (that could close a cycle with another batch): sold out when no shard has stock,
        -- else every shard with stock is held by another batch for a moment, and the caller retries. A claim
        -- refused only because of its holder's earlier claims in this batch is over the limit only if those got
        -- their units; else it shares their answer.
        v_short := CASE WHEN EXISTS (SELECT 1 FROM claim_stock c WHERE c.campaign_id = p_campaign_id
                                                                   AND c.remaining > 0)
                        THEN 'RETRY' ELSE 'SOLD_OUT' END;
        FOR j IN v_got + 1 .. v_need LOOP
            v_results[v_wanted[j]] := v_short;
        END LOOP;
        FOR j IN 1 .. coalesce(cardinality(v_soft), 0) LOOP
            -- The holder's vouchers now, this batch's included (this transaction sees its own inserts).
            SELECT count(*) INTO v_took FROM vouchers v
             WHERE v.campaign_id = p_campaign_id AND v.holder_key = v_keys[v_soft[j]] AND v.issuance_id IS NULL;
            IF v_took < p_per_holder_limit THEN
                v_results[v_soft[j]] := v_short;
            END IF;
        END LOOP;
    END IF;
    -- Attestations decided in this batch are spent, whatever the stock said; a claim to be retried keeps its own.
    INSERT INTO attestation_uses (campaign_id, jti, attestation_sha256, attester_id, wallet_id, decision,
                                  issuance_id, used_at)
    SELECT p_campaign_id, p_jtis[i], p_attestation_sha256s[i], p_attester_ids[i], p_wallet_ids[i], 'eligible',
           NULL, p_issued_ats[i]
      FROM generate_series(1, v_count) AS i
     WHERE p_jtis[i] IS NOT NULL AND v_results[i] NOT IN ('RETRY', 'ATTESTATION_REPLAYED');
    RETURN v_results;
END
$fn$;
"""


def upgrade() -> None:
    op.create_table(
        "attesters",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("octet_length(public_key) = 32", name="ck_attesters_ed25519_key_length"),
        sa.PrimaryKeyConstraint("id", name="pk_attesters"),
        sa.UniqueConstraint("public_key", name="uq_attesters_public_key"),
    )
    op.create_index("ix_attesters_name", "attesters", ["name"])
    op.create_table(
        "attestation_uses",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("jti", sa.Text, nullable=False),
        sa.Column("attestation_sha256", sa.LargeBinary, nullable=False),
        sa.Column("attester_id", sa.Text, nullable=False),
        sa.Column("wallet_id", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("issuance_id", sa.Text, nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("decision IN ('eligible', 'not_eligible')", name="ck_attestation_uses_decision_known"),
        sa.CheckConstraint("octet_length(attestation_sha256) = 32", name="ck_attestation_uses_sha256_length"),
        sa.PrimaryKeyConstraint("campaign_id", "jti", name="pk_attestation_uses"),
    )
    op.drop_column("vouchers", "attributes")
    op.execute(f"DROP FUNCTION IF EXISTS {OLD_SIGNATURE}")
    op.execute(CLAIMS_FUNCTION)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {NEW_SIGNATURE}")
    op.add_column("vouchers", sa.Column("attributes", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")))
    op.alter_column("vouchers", "attributes", server_default=None)
    op.execute(_claims_0006())
    op.drop_table("attestation_uses")
    op.drop_index("ix_attesters_name", table_name="attesters")
    op.drop_table("attesters")


def _claims_0006() -> str:
    """0006's function text, read from that migration (so the downgrade restores exactly what it made)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0006_campaign_claims.py")
    spec = importlib.util.spec_from_file_location("_migration_0006_campaign_claims", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CLAIMS_FUNCTION
