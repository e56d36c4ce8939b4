"""ledger_post_batch(...): the ledger's posting statement as a function of typed arrays

A micro-batch of balanced transactions is posted by one statement (balances, transactions, the sequencer's queue
entry, campaign totals). It was SQL text that callers wanting to post in their own statement (the redemption batch,
to save a round trip) had to splice into theirs, with its `$N` placeholders renumbered. It is now this function:
`ledger.service.post_many` calls it alone, and a caller's statement calls it after its own WITH items, with the
arrays `ledger.service.prepare` made from typed `NewTransaction`s. Its last argument, `p_after`, is any value the
caller computes from its own writes: arguments are evaluated before the call, so those writes are made before the
ledger's accounts are locked (an escrow that every batch of a campaign moves is then locked for the ledger's own
rows and the commit only).

The body is the statement it replaces, unchanged:

1. `locked` locks the batch's accounts in name order (two batches that share accounts can never wait on each other
   in a cycle); `moved` then moves each balance by the batch's net amount, but only if every account is open (else
   nothing at all is written and `moved` is 0). The CHECK on escrow rows is what refuses an overdraft.
2. Everything else reads `ready`, the count of moved balances, so it is data-dependent on step 1: PostgreSQL runs
   the sub-statements of a WITH in no set order, but none of these can form a row before every balance row is
   locked and moved. That is the order the sequencer relies on: the queue number (`ledger_pending.batch`, an
   identity) is drawn after the locks, so a batch that waited for another one's escrow always sorts after it, and
   seq order never shows an escrow below zero; and the campaign totals rows are locked after the accounts, in key
   order, in every batch.

It answers one row: accounts moved, transactions inserted, the queued batch, campaign totals rows, and `whole`, true
when every row the batch names landed (for a statement that is its own transaction and must refuse itself).

Revision ID: 0020_ledger_post_batch
Revises: 0018_risk_windows
"""

from __future__ import annotations

from alembic import op

revision = "0020_ledger_post_batch"
down_revision = "0018_risk_windows"
branch_labels = None
depends_on = None

SIGNATURE = (
    "ledger_post_batch(text[], bigint[], text[], text[], text[], timestamptz[], text[], integer[], text[], bigint[],"
    " text[], text[], text[], bigint[], bigint[], bigint)"
)

FUNCTION = r"""
CREATE FUNCTION ledger_post_batch(
    p_accounts text[], p_deltas_fen bigint[],
    p_ids text[], p_campaign_ids text[], p_kinds text[], p_ats timestamptz[], p_refs text[],
    p_posting_tx integer[], p_posting_accounts text[], p_posting_amounts_fen bigint[],
    p_total_campaign_ids text[], p_total_kinds text[], p_total_funders text[], p_total_amounts_fen bigint[],
    p_total_counts bigint[],
    p_after bigint DEFAULT 0)
RETURNS TABLE (moved bigint, inserted bigint, batch bigint, totals bigint, whole boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH delta AS (
        SELECT account, delta_fen FROM unnest(p_accounts, p_deltas_fen) AS d(account, delta_fen)
    ), locked AS MATERIALIZED (
        SELECT a.account FROM ledger_accounts a WHERE a.account = ANY(p_accounts) ORDER BY a.account FOR UPDATE
    ), moved AS (
        UPDATE ledger_accounts a SET balance_fen = a.balance_fen + delta.delta_fen
        FROM delta JOIN locked ON locked.account = delta.account
        WHERE a.account = delta.account AND (SELECT count(*) FROM locked) = cardinality(p_accounts)
        RETURNING a.account
    ), ready AS MATERIALIZED (
        SELECT count(*) = cardinality(p_accounts) AS ok, count(*) AS moved FROM moved
    ), p AS (
        SELECT tx_ix, array_agg(account ORDER BY ord) AS accounts, array_agg(amount_fen ORDER BY ord) AS amounts_fen
        FROM unnest(p_posting_tx, p_posting_accounts, p_posting_amounts_fen) WITH ORDINALITY
             AS p(tx_ix, account, amount_fen, ord)
        GROUP BY tx_ix
    ), tx AS (
        INSERT INTO ledger_transactions (id, campaign_id, kind, at, refs, accounts, amounts_fen)
        SELECT t.id, t.campaign_id, t.kind, t.at, t.refs::jsonb, p.accounts, p.amounts_fen
        FROM unnest(p_ids, p_campaign_ids, p_kinds, p_ats, p_refs) WITH ORDINALITY AS t(id, campaign_id, kind, at, refs, ix)
        JOIN p ON p.tx_ix = t.ix
        WHERE (SELECT ok FROM ready)
        RETURNING 1
    ), queued AS (
        INSERT INTO ledger_pending (tx_ids) SELECT p_ids WHERE (SELECT ok FROM ready)
        RETURNING batch
    ), totals AS (
        INSERT INTO ledger_campaign_totals AS c (campaign_id, kind, funder, amount_fen, tx_count)
        SELECT * FROM unnest(p_total_campaign_ids, p_total_kinds, p_total_funders, p_total_amounts_fen, p_total_counts)
        WHERE (SELECT ok FROM ready)
        ON CONFLICT (campaign_id, kind, funder) DO UPDATE
            SET amount_fen = c.amount_fen + excluded.amount_fen, tx_count = c.tx_count + excluded.tx_count
        RETURNING 1
    )
    SELECT (SELECT moved FROM ready), (SELECT count(*) FROM tx), (SELECT batch FROM queued),
           (SELECT count(*) FROM totals),
           (SELECT ok FROM ready) AND (SELECT count(*) FROM tx) = cardinality(p_ids)
           AND (SELECT batch FROM queued) IS NOT NULL
           AND (SELECT count(*) FROM totals) = cardinality(p_total_campaign_ids);
END
$fn$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
