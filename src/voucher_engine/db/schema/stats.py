"""Tables of the campaign statistics (统计): rollups kept off the redemption path by the stats poller.

The poller (`stats.service.rollup_round`) tails the ledger's sequenced transactions by `seq` (a gap-free, durable
cursor: only committed transactions are ever sequenced) and adds each redemption, refund and clawback to three
rollups: per campaign and hour, per campaign and merchant region, per campaign and merchant category. The cursor
moves in the same database transaction as the rollups, so a crash neither loses nor counts a transaction twice.
`GET /v1/campaigns/{id}/stats` reads only these rows: a few hundred per campaign, however many redemptions.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import metadata

TS = sa.DateTime(timezone=True)


def _money_columns() -> list[sa.Column]:
    # Subsidy moved (redeemed), given back by refunds and taken back by clawbacks; order amounts of the redemptions
    # and the order amount refunded. Counts of redemptions. Every figure only ever grows.
    return [
        sa.Column("redemptions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("redeemed_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("refunded_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("clawed_back_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("order_amount_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("order_refunded_fen", sa.BigInteger, nullable=False, server_default="0"),
    ]


stats_cursor = sa.Table(
    "stats_cursor",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True),
    # The last ledger seq whose transaction is in the rollups.
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

stats_hourly = sa.Table(
    "stats_hourly",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    # The hour (UTC-aligned; every China-time hour is one) in which the transaction's business time falls.
    sa.Column("hour", TS, primary_key=True),
    *_money_columns(),
)

stats_by_region = sa.Table(
    "stats_by_region",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, primary_key=True),
    *_money_columns(),
)

stats_by_mcc = sa.Table(
    "stats_by_mcc",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("mcc", sa.Text, primary_key=True),
    *_money_columns(),
)

# Each campaign's rollup sequence: the last ledger seq whose transaction changed this campaign's rollups, moved in
# the same statement as they are. The stats endpoint keeps its answer per worker under it (migration 0021).
stats_campaigns = sa.Table(
    "stats_campaigns",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)
