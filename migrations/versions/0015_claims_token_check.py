"""Claims check their bearer token in their own batch.

`campaign_claims_by_token(token_ids, ...)` takes the token id of each claim of a batch before `campaign_claims`'
arguments: a claim whose token is revoked (or gone) is answered `UNAUTHENTICATED` and takes no unit; the others go
to `campaign_claims` in their order, and their answers are put back in place. The check runs in the batch's own
statement, whose snapshot is taken after every claim of the batch arrived, so a token revoked (committed) before a
claim arrived never gets that claim a voucher, on any worker, without a round trip of its own (campaigns/claims.py).

Revision ID: 0015_claims_token_check
Revises: 0014_money_governance
"""

from __future__ import annotations

from alembic import op

revision = "0015_claims_token_check"
down_revision = "0014_money_governance"
branch_labels = None
depends_on = None

SIGNATURE = (
    "campaign_claims_by_token(text[], text, text[], text[], text[], integer, integer, timestamptz[], timestamptz[],"
    " timestamptz[], bigint, text[], bytea[], text[])"
)

FUNCTION = r"""
CREATE FUNCTION campaign_claims_by_token(
    p_token_ids text[],
    p_campaign_id text, p_voucher_ids text[], p_wallet_ids text[], p_id_hashes text[], p_per_holder_limit integer,
    p_start_shard integer, p_issued_ats timestamptz[], p_valid_froms timestamptz[], p_valid_untils timestamptz[],
    p_face_value_fen bigint, p_jtis text[], p_attestation_sha256s bytea[], p_attester_ids text[])
RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_count integer := coalesce(cardinality(p_token_ids), 0);
    v_live integer[];
    v_inner text[];
    v_results text[];
BEGIN
    -- The claims whose token is still live, in order (a fresh snapshot: this statement began after they arrived).
    SELECT coalesce(array_agg(t.i::integer ORDER BY t.i), '{}') INTO v_live
      FROM unnest(p_token_ids) WITH ORDINALITY AS t(tok, i)
     WHERE EXISTS (SELECT 1 FROM api_tokens a WHERE a.id = t.tok AND a.revoked_at IS NULL);
    IF cardinality(v_live) = v_count THEN
        RETURN campaign_claims(p_campaign_id, p_voucher_ids, p_wallet_ids, p_id_hashes, p_per_holder_limit,
                               p_start_shard, p_issued_ats, p_valid_froms, p_valid_untils, p_face_value_fen, p_jtis,
                               p_attestation_sha256s, p_attester_ids);
    END IF;
    v_results := array_fill('UNAUTHENTICATED'::text, ARRAY[v_count]);
    IF cardinality(v_live) = 0 THEN
        RETURN v_results;
    END IF;
    v_inner := campaign_claims(
        p_campaign_id,
        ARRAY(SELECT p_voucher_ids[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        ARRAY(SELECT p_wallet_ids[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        ARRAY(SELECT p_id_hashes[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        p_per_holder_limit, p_start_shard,
        ARRAY(SELECT p_issued_ats[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        ARRAY(SELECT p_valid_froms[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        ARRAY(SELECT p_valid_untils[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        p_face_value_fen,
        ARRAY(SELECT p_jtis[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        ARRAY(SELECT p_attestation_sha256s[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o),
        ARRAY(SELECT p_attester_ids[i] FROM unnest(v_live) WITH ORDINALITY AS u(i, o) ORDER BY o));
    FOR j IN 1 .. cardinality(v_live) LOOP
        v_results[v_live[j]] := v_inner[j];
    END LOOP;
    RETURN v_results;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
