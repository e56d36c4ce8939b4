"""ledger_sequence.tx_id: no foreign key to ledger_transactions

The key's check ran once per sequenced transaction, inside the sequencer's append: a query, and a FOR KEY SHARE
lock that wrote a lock record to the WAL and dirtied the transaction's page again. It guarded nothing that is not
guarded otherwise: the sequencer sequences only transactions it has just read in the same database transaction,
ledger_transactions rows can be neither deleted nor updated (its append-only triggers), and `ledger verify` reports
a sequenced transaction whose row is missing at its seq.

Revision ID: 0009_sequence_without_fk
Revises: 0008_batch_written_whole
"""

from __future__ import annotations

from alembic import op

revision = "0009_sequence_without_fk"
down_revision = "0008_batch_written_whole"
branch_labels = None
depends_on = None

FK = "fk_ledger_sequence_tx_id_ledger_transactions"


def upgrade() -> None:
    op.drop_constraint(FK, "ledger_sequence", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(FK, "ledger_sequence", "ledger_transactions", ["tx_id"], ["id"])
