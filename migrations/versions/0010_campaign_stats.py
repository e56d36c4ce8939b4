"""stats: rollups of redemptions, refunds and clawbacks per campaign by hour, merchant region and merchant category

Kept by the stats poller off the redemption path: it tails `ledger_sequence` by seq from `stats_cursor.last_seq`
(starting at 0, so an existing ledger is rolled up on the first rounds after this migration).

Revision ID: 0010_campaign_stats
Revises: 0009_sequence_without_fk
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_campaign_stats"
down_revision = "0009_sequence_without_fk"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _money_columns() -> list[sa.Column]:
    return [
        sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
        for name in (
            "redemptions",
            "redeemed_fen",
            "refunded_fen",
            "clawed_back_fen",
            "order_amount_fen",
            "order_refunded_fen",
        )
    ]


def upgrade() -> None:
    op.create_table(
        "stats_cursor",
        sa.Column("id", sa.SmallInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_stats_cursor_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_cursor")),
    )
    op.execute("INSERT INTO stats_cursor (id, last_seq, updated_at) VALUES (1, 0, now())")
    op.create_table(
        "stats_hourly",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("hour", TS, nullable=False),
        *_money_columns(),
        sa.PrimaryKeyConstraint("campaign_id", "hour", name=op.f("pk_stats_hourly")),
    )
    op.create_table(
        "stats_by_region",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        *_money_columns(),
        sa.PrimaryKeyConstraint("campaign_id", "region_code", name=op.f("pk_stats_by_region")),
    )
    op.create_table(
        "stats_by_mcc",
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("mcc", sa.Text, nullable=False),
        *_money_columns(),
        sa.PrimaryKeyConstraint("campaign_id", "mcc", name=op.f("pk_stats_by_mcc")),
    )


def downgrade() -> None:
    for table in ("stats_by_mcc", "stats_by_region", "stats_hourly", "stats_cursor"):
        op.drop_table(table)
