"""batch_written_whole(ok, what): the redemption batch's all-or-nothing check, inside its own statement

The redemption path reads a batch without locks and writes it in one statement that is its own transaction (no
BEGIN, no COMMIT: one round trip, and the campaign's escrow row is locked only while that statement runs and
commits). The statement must then refuse itself when what it was decided on has changed meanwhile (a voucher's
version, a nonce spent by a racing replay) or when any row it names did not land: it ends by calling this function
with that condition, and a false one raises serialization_failure (SQLSTATE 40001), which rolls the whole statement
back. The caller then runs the batch again under locks.

Revision ID: 0008_batch_written_whole
Revises: 0007_vouchers_fillfactor
"""

from __future__ import annotations

from alembic import op

revision = "0008_batch_written_whole"
down_revision = "0007_vouchers_fillfactor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION batch_written_whole(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'the batch was not written whole: %', what USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$
""")


def downgrade() -> None:
    op.execute("DROP FUNCTION batch_written_whole(boolean, text)")
