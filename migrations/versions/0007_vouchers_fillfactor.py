"""vouchers: fillfactor 85, so that a redemption's update of its voucher stays on the page (HOT)

A voucher is written once at issue and updated at redemption (a balance voucher a few times). With full pages
(fillfactor 100, the default) the new row version goes to another page and every index of the table gets a new
entry: in a redemption load only a third of the voucher updates were HOT (pg_stat_user_tables). With 15 % of each
page kept free, nearly all are, and the indexes are not touched. Pages written from now on (new issuances) get
the room; existing ones keep theirs until rewritten.

Revision ID: 0007_vouchers_fillfactor
Revises: 0006_campaign_claims
"""

from __future__ import annotations

from alembic import op

revision = "0007_vouchers_fillfactor"
down_revision = "0006_campaign_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE vouchers SET (fillfactor = 85)")


def downgrade() -> None:
    op.execute("ALTER TABLE vouchers RESET (fillfactor)")
