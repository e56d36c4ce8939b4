"""stats: each campaign's rollup sequence (the last ledger seq that changed its rollups), the stats answer's cache key

The stats poller moves it in the same statement as the rollups; `GET /v1/campaigns/{id}/stats` keeps its answer per
worker under it and builds the answer again only when it has moved. Campaigns already rolled up start at the
cursor.

Revision ID: 0021_stats_campaign_seq
Revises: 0020_ledger_post_batch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_stats_campaign_seq"
down_revision = "0020_ledger_post_batch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stats_campaigns",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_stats_campaigns")),
    )
    op.execute(
        "INSERT INTO stats_campaigns (campaign_id, last_seq)"
        " SELECT DISTINCT h.campaign_id, c.last_seq FROM stats_hourly h CROSS JOIN stats_cursor c"
    )


def downgrade() -> None:
    op.drop_table("stats_campaigns")
