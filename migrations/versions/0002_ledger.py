"""ledger: accounts, immutable transactions, the sequencer's chain, entries and tree, checkpoints, campaign totals

Revision ID: 0002_ledger
Revises: 0001_foundation

Tables from autogenerate (voucher_engine/db/schema/ledger.py); the functions and triggers below are by hand:
- `ledger_postings_valid(accounts, amounts_fen)`, called by a CHECK, so the database itself refuses a transaction
  whose debits and credits differ;
- `ledger_append_only()`, fired BEFORE UPDATE, DELETE and TRUNCATE on every append-only ledger table, and
  `ledger_keep_rows()` on the two tables whose figures move (balances, campaign totals): their rows may change
  figures, never be deleted or renamed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_ledger"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

APPEND_ONLY = ("ledger_transactions", "ledger_sequence", "ledger_entries", "ledger_tree", "ledger_checkpoints")
KEEP_ROWS = ("ledger_accounts", "ledger_campaign_totals")

POSTINGS_VALID = r"""
CREATE FUNCTION ledger_postings_valid(accounts text[], amounts_fen bigint[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    total bigint := 0;
    amount bigint;
BEGIN
    -- Same shape as model.py checks before writing: 2..64 postings, none zero, each below 2^53 (exact in JSON),
    -- and the debits (positive) equal the credits (negative).
    IF cardinality(accounts) <> cardinality(amounts_fen) OR cardinality(amounts_fen) NOT BETWEEN 2 AND 64
       OR array_position(accounts, NULL) IS NOT NULL THEN
        RETURN false;
    END IF;
    FOREACH amount IN ARRAY amounts_fen LOOP
        IF amount IS NULL OR amount = 0 OR abs(amount) > 9007199254740991 THEN
            RETURN false;
        END IF;
        total := total + amount;
    END LOOP;
    RETURN total = 0;
END
$$
"""

APPEND_ONLY_FN = r"""
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

KEEP_ROWS_FN = r"""
CREATE FUNCTION ledger_keep_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are kept: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.execute(POSTINGS_VALID)
    op.execute(APPEND_ONLY_FN)
    op.execute(KEEP_ROWS_FN)
    op.create_table(
        "ledger_accounts",
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "account ~ '^(fiscal|escrow|merchant):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'",
            name=op.f("ck_ledger_accounts_account_format"),
        ),
        sa.CheckConstraint("kind <> 'escrow' OR balance_fen >= 0", name=op.f("ck_ledger_accounts_escrow_not_negative")),
        sa.CheckConstraint("kind = split_part(account, ':', 1)", name=op.f("ck_ledger_accounts_kind_matches_name")),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_ledger_accounts")),
    )
    op.create_table(
        "ledger_campaign_totals",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("funder", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("tx_count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_fen >= 0 AND tx_count >= 0", name=op.f("ck_ledger_campaign_totals_not_negative")),
        sa.PrimaryKeyConstraint("campaign_id", "kind", "funder", name=op.f("pk_ledger_campaign_totals")),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "tree_size >= 1 AND length(root_hash) = 32 AND length(signature) = 64 AND length(public_key) = 32",
            name=op.f("ck_ledger_checkpoints_sizes"),
        ),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_ledger_checkpoints")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "seq", name=op.f("pk_ledger_entries")),
    )
    op.create_table(
        "ledger_pending",
        sa.Column("batch", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tx_ids", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("batch", name=op.f("pk_ledger_pending")),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("accounts", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("amounts_fen", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.CheckConstraint("jsonb_typeof(refs) = 'object'", name=op.f("ck_ledger_transactions_refs_object")),
        sa.CheckConstraint(
            "kind IN ('fund', 'redeem', 'refund', 'return')", name=op.f("ck_ledger_transactions_kind_known")
        ),
        sa.CheckConstraint(
            "ledger_postings_valid(accounts, amounts_fen)", name=op.f("ck_ledger_transactions_postings_balanced")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
    )
    op.create_table(
        "ledger_tree",
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "level BETWEEN 1 AND 63 AND idx >= 0 AND length(hash) = 32", name=op.f("ck_ledger_tree_node_valid")
        ),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_ledger_tree")),
    )
    op.create_table(
        "ledger_sequence",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tx_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("merchant_id", sa.Text(), nullable=True),
        sa.Column("voucher_id", sa.Text(), nullable=True),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "length(hash) = 32 AND length(prev_hash) = 32 AND length(leaf_hash) = 32",
            name=op.f("ck_ledger_sequence_hash_sizes"),
        ),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_ledger_sequence_seq_positive")),
        sa.ForeignKeyConstraint(
            ["tx_id"], ["ledger_transactions.id"], name=op.f("fk_ledger_sequence_tx_id_ledger_transactions")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_sequence")),
        sa.UniqueConstraint("tx_id", name=op.f("uq_ledger_sequence_tx_id")),
    )
    op.create_index(op.f("ix_ledger_sequence_campaign_id_seq"), "ledger_sequence", ["campaign_id", "seq"], unique=False)
    op.create_index(op.f("ix_ledger_sequence_merchant_id_seq"), "ledger_sequence", ["merchant_id", "seq"], unique=False)
    op.create_index(op.f("ix_ledger_sequence_voucher_id_seq"), "ledger_sequence", ["voucher_id", "seq"], unique=False)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        )
    op.execute(
        "CREATE TRIGGER ledger_accounts_keep_name BEFORE UPDATE OF account, kind ON ledger_accounts "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_keep_rows()"
    )
    op.execute(
        "CREATE TRIGGER ledger_campaign_totals_keep_key BEFORE UPDATE OF campaign_id, kind, funder "
        "ON ledger_campaign_totals FOR EACH STATEMENT EXECUTE FUNCTION ledger_keep_rows()"
    )
    for table in KEEP_ROWS:
        op.execute(
            f"CREATE TRIGGER {table}_keep_rows BEFORE DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_keep_rows()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_keep_rows()"
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_sequence_voucher_id_seq"), table_name="ledger_sequence")
    op.drop_index(op.f("ix_ledger_sequence_merchant_id_seq"), table_name="ledger_sequence")
    op.drop_index(op.f("ix_ledger_sequence_campaign_id_seq"), table_name="ledger_sequence")
    op.drop_table("ledger_sequence")
    op.drop_table("ledger_tree")
    op.drop_table("ledger_transactions")
    op.drop_table("ledger_pending")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_campaign_totals")
    op.drop_table("ledger_accounts")
    op.execute("DROP FUNCTION ledger_keep_rows()")
    op.execute("DROP FUNCTION ledger_append_only()")
    op.execute("DROP FUNCTION ledger_postings_valid(text[], bigint[])")
