"""campaigns: first-come claims decided set-wise, one stock row update per batch instead of one per claim

`campaign_claims(...)` replaces `campaign_claim_batch(...)` of 0003. The rules are the same (the campaign's status
read once; holder advisory locks in one global order; per-holder limits counted under them; stock taken only under
a shard's row lock, never waiting for one; the vouchers inserted in the same transaction), but a batch now costs
one count per holder, one UPDATE of the shard(s) it takes units from (`remaining - k` for k claims), and one
multi-row INSERT: the per-claim UPDATE of 0003 was most of PostgreSQL's work in a burst. The holder key is derived
in SQL from the id_hash or wallet (`h:<id_hash>` / `w:<wallet_id>`), as issuance writes it.

The (campaign_id, holder_key) index now covers claimed vouchers only (`issuance_id IS NULL`): claims are the only
reader that looks holders up one by one (a first-come campaign has no issued vouchers, so its counts are whole),
while issuances count their campaign's holders in one pass over the primary key. Kept for every issued voucher,
that index was most of PostgreSQL's work in a million-voucher COPY (random inserts into a B-tree: about 10 s of
its 19 s of CPU).

Revision ID: 0006_campaign_claims
Revises: 0005_reliability
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_campaign_claims"
down_revision = "0005_reliability"
branch_labels = None
depends_on = None

CLAIMS_FUNCTION = r"""
CREATE FUNCTION campaign_claims(
    p_campaign_id text, p_voucher_ids text[], p_wallet_ids text[], p_id_hashes text[], p_per_holder_limit integer,
    p_start_shard integer, p_issued_ats timestamptz[], p_valid_froms timestamptz[], p_valid_untils timestamptz[],
    p_face_value_fen bigint, p_attributes jsonb[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_count integer := cardinality(p_voucher_ids);
    v_keys text[];
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
    -- The batch's holders, locked first and in one global order: only claims of the same holder ever wait for
    -- each other, and two batches can never wait on each other in a cycle.
    FOR v_lock IN SELECT DISTINCT hashtextextended(p_campaign_id || '/' || k, 0) AS h
                    FROM unnest(v_keys) AS k ORDER BY h LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
    -- Each claim's place among its holder's vouchers: those already held plus the same holder's earlier claims in
    -- this batch. Past the limit: HOLDER_LIMIT (`v_soft` when only this batch's own earlier claims put it there).
    SELECT array_agg(CASE WHEN r.nth > p_per_holder_limit THEN 'HOLDER_LIMIT' END ORDER BY r.i),
           array_agg(r.i ORDER BY r.i) FILTER (WHERE r.nth <= p_per_holder_limit),
           array_agg(r.i ORDER BY r.i) FILTER (WHERE r.nth > p_per_holder_limit AND r.held < p_per_holder_limit)
      INTO v_results, v_wanted, v_soft
      FROM (SELECT c.i, held.n AS held, held.n + row_number() OVER (PARTITION BY c.k ORDER BY c.i) AS nth
              FROM unnest(v_keys) WITH ORDINALITY AS c(k, i)
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
                              face_value_fen, balance_fen, issued_at, issuance_id, attributes, version, updated_at)
        SELECT p_campaign_id, p_voucher_ids[i], p_wallet_ids[i], p_id_hashes[i], v_keys[i], 'issued',
               p_valid_froms[i], p_valid_untils[i], p_face_value_fen, p_face_value_fen, p_issued_ats[i], NULL,
               p_attributes[i], 1, p_issued_ats[i]
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
    RETURN v_results;
END
$fn$;
"""


def upgrade() -> None:
    op.drop_index("ix_vouchers_campaign_id_holder_key", table_name="vouchers")
    op.create_index(
        "ix_vouchers_claimed_holder",
        "vouchers",
        ["campaign_id", "holder_key"],
        unique=False,
        postgresql_where=sa.text("issuance_id IS NULL"),
    )
    op.execute(CLAIMS_FUNCTION)
    op.execute(
        "DROP FUNCTION IF EXISTS campaign_claim_batch(text, text[], text[], text[], text[], integer, integer,"
        " timestamptz[], timestamptz[], bigint, jsonb[], timestamptz)"
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS campaign_claims(text, text[], text[], text[], integer, integer,"
        " timestamptz[], timestamptz[], timestamptz[], bigint, jsonb[])"
    )
    op.execute(_claim_batch_0003())
    op.drop_index("ix_vouchers_claimed_holder", table_name="vouchers", postgresql_where=sa.text("issuance_id IS NULL"))
    op.create_index("ix_vouchers_campaign_id_holder_key", "vouchers", ["campaign_id", "holder_key"], unique=False)


def _claim_batch_0003() -> str:
    """0003's function text, read from that migration (so the downgrade restores exactly what it made)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0003_campaigns.py")
    spec = importlib.util.spec_from_file_location("_migration_0003_campaigns", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CLAIM_FUNCTION
