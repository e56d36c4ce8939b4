"""Tables of the audit ledger (账本): accounts, immutable transactions, and the sequencer's append-only chain and tree.

Two writers, never the same rows:
- the money path (`ledger.service.post_many`, inside the caller's transaction) inserts `ledger_transactions` (each
  row one balanced transaction, its postings as two parallel arrays), one `ledger_pending` row per batch, and moves
  `ledger_accounts.balance_fen` and `ledger_campaign_totals`;
- the sequencer (`ledger.sequencer`, one at a time across all workers) drains `ledger_pending` and appends
  `ledger_sequence` (gap-free `seq`, hash chain, Merkle leaf), `ledger_entries` (account history by seq) and
  `ledger_tree` (the complete subtrees of the RFC 6962 tree); checkpoints are signed over those rows only.

Triggers made by migration 0002 refuse UPDATE, DELETE and TRUNCATE on every ledger table except the three mutable
ones: balances and totals (whose figures move, but whose rows may not be deleted or renamed) and the pending queue.
The functions the CHECK constraints call are also made there.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from . import metadata

TS = sa.DateTime(timezone=True)

# Account names: `fiscal:<issuer>`, `escrow:<campaign>`, `merchant:<merchant>`, `payout:<merchant>` (sent to the bank,
# not yet confirmed) and `settled:<merchant>` (paid out); model.ACCOUNT_PATTERN says the same.
ACCOUNT_NAME_CHECK = "account ~ '^(fiscal|escrow|merchant|payout|settled):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"
KINDS_CHECK = (
    "kind IN ('fund', 'redeem', 'refund', 'return', 'clawback', 'payout', 'payout_confirm', 'payout_reversal')"
)
# The payout kinds move a merchant's own money and belong to no campaign; every other kind moves a campaign's escrow.
CAMPAIGN_CHECK = "(campaign_id IS NULL) = (kind IN ('payout', 'payout_confirm', 'payout_reversal'))"

ledger_accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    # Money in minus money out (debits minus credits), moved by every posting in the same transaction.
    sa.Column("balance_fen", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("opened_at", TS, nullable=False),
    sa.CheckConstraint(ACCOUNT_NAME_CHECK, name="account_format"),
    sa.CheckConstraint("kind = split_part(account, ':', 1)", name="kind_matches_name"),
    # The database, not the code, is what keeps an escrow from paying out money it does not hold.
    sa.CheckConstraint("kind <> 'escrow' OR balance_fen >= 0", name="escrow_not_negative"),
    # Money sent to the bank leaves only as what was sent: confirmed or reversed, never more.
    sa.CheckConstraint("kind <> 'payout' OR balance_fen >= 0", name="payout_not_negative"),
)

ledger_transactions = sa.Table(
    "ledger_transactions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("campaign_id", sa.Text, nullable=True),
    sa.Column("kind", sa.Text, nullable=False),
    # Business time (clock.now()) of the move, as the caller gave it.
    sa.Column("at", TS, nullable=False),
    sa.Column("refs", pg.JSONB, nullable=False),
    # Postings, in order: accounts[i] is debited amounts_fen[i] when positive, credited -amounts_fen[i] when negative.
    sa.Column("accounts", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("amounts_fen", pg.ARRAY(sa.BigInteger), nullable=False),
    sa.CheckConstraint(KINDS_CHECK, name="kind_known"),
    sa.CheckConstraint(CAMPAIGN_CHECK, name="campaign_for_kind"),
    sa.CheckConstraint("jsonb_typeof(refs) = 'object'", name="refs_object"),
    # ledger_postings_valid(): same lengths, 2..64 postings, no zero, |amount| < 2^53, debits equal credits.
    sa.CheckConstraint("ledger_postings_valid(accounts, amounts_fen)", name="postings_balanced"),
    # A payout run finds what each merchant was credited since its cutoff: BRIN, because `at` grows with the table
    # and a BRIN index costs the redemption path next to nothing to keep (migration 0011).
    sa.Index("ix_ledger_transactions_at_brin", "at", postgresql_using="brin"),
)

ledger_pending = sa.Table(
    "ledger_pending",
    metadata,
    # Taken after the batch's balance rows are locked, so a batch that waited on another sorts after it.
    sa.Column("batch", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column("tx_ids", pg.ARRAY(sa.Text), nullable=False),
)

ledger_sequence = sa.Table(
    "ledger_sequence",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    # No foreign key (migration 0009 says why): verify reports a sequenced transaction whose row is missing.
    sa.Column("tx_id", sa.Text, nullable=False, unique=True),
    # Copies of the transaction's refs, so that filtered lists page by seq on an index (no campaign: a payout kind).
    sa.Column("campaign_id", sa.Text, nullable=True),
    sa.Column("merchant_id", sa.Text, nullable=True),
    sa.Column("voucher_id", sa.Text, nullable=True),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    sa.Column("prev_hash", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
    sa.CheckConstraint("seq >= 1", name="seq_positive"),
    sa.CheckConstraint("length(hash) = 32 AND length(prev_hash) = 32 AND length(leaf_hash) = 32", name="hash_sizes"),
    sa.Index(None, "campaign_id", "seq"),
    sa.Index(None, "merchant_id", "seq"),
    sa.Index(None, "voucher_id", "seq"),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
)

ledger_tree = sa.Table(
    "ledger_tree",
    metadata,
    # The complete subtree covering leaves [idx * 2^level, (idx + 1) * 2^level); level 0 lives in ledger_sequence.
    sa.Column("level", sa.SmallInteger, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    sa.CheckConstraint("level BETWEEN 1 AND 63 AND idx >= 0 AND length(hash) = 32", name="node_valid"),
)

ledger_checkpoints = sa.Table(
    "ledger_checkpoints",
    metadata,
    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("root_hash", sa.LargeBinary, nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("signed_at", TS, nullable=False),
    sa.CheckConstraint(
        "tree_size >= 1 AND length(root_hash) = 32 AND length(signature) = 64 AND length(public_key) = 32", name="sizes"
    ),
)

ledger_campaign_totals = sa.Table(
    "ledger_campaign_totals",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    # '' for the kind's total; an issuer id for that funder's part of a fund or return.
    sa.Column("funder", sa.Text, primary_key=True),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("tx_count", sa.BigInteger, nullable=False),
    sa.CheckConstraint("amount_fen >= 0 AND tx_count >= 0", name="not_negative"),
)
