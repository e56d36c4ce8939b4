"""SQL of the statistics: one statement per rollup round, and the few reads of the stats endpoint."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

STATS_LOCK_KEY = 7_412_930_017  # beside the sequencer's and the expiry sweep's keys

_MONEY = ("redemptions", "redeemed_fen", "refunded_fen", "clawed_back_fen", "order_amount_fen", "order_refunded_fen")
_SUMS = ", ".join(f"sum({column})::bigint" for column in _MONEY)
_NAMED_SUMS = ", ".join(f"sum({column})::bigint AS {column}" for column in _MONEY)
_COLUMNS = ", ".join(_MONEY)


def _add(table: str, key: str) -> str:
    """An upsert of the round's facts into one rollup, grouped by (campaign_id, key)."""
    updates = ", ".join(f"{column} = r.{column} + excluded.{column}" for column in _MONEY)
    return f"""
    INSERT INTO {table} AS r (campaign_id, {key}, {_COLUMNS})
    SELECT campaign_id, {key}, {_SUMS} FROM facts GROUP BY campaign_id, {key}
    ON CONFLICT (campaign_id, {key}) DO UPDATE SET {updates}
    RETURNING 1"""


# One round: the next sequenced transactions after the cursor (in seq order, at most $1), their redemption-side
# facts, added to the three rollups, and the cursor moved to the last seq taken — all in one statement and one
# transaction. The subsidy moved is read from the postings (what the merchant's account gained or gave back), the
# order amounts from the redemption and refund rows, the region and category from the merchant registry.
ROLLUP_ROUND = f"""
WITH taken AS MATERIALIZED (
    SELECT s.seq, t.id, t.kind, t.at, t.campaign_id, t.refs, t.accounts, t.amounts_fen
      FROM ledger_sequence s JOIN ledger_transactions t ON t.id = s.tx_id
     WHERE s.seq > (SELECT last_seq FROM stats_cursor WHERE id = 1)
     ORDER BY s.seq LIMIT $1
), moves AS MATERIALIZED (
    SELECT t.id AS tx_id, t.kind, t.campaign_id,
           date_trunc('hour', t.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
           t.refs ->> 'merchant_id' AS merchant_id, t.refs ->> 'redemption_id' AS redemption_id,
           (SELECT abs(sum(p.amount)) FROM unnest(t.accounts, t.amounts_fen) AS p(account, amount)
             WHERE p.account = 'merchant:' || (t.refs ->> 'merchant_id'))::bigint AS subsidy_fen
      FROM taken t
     WHERE t.kind IN ('redeem', 'refund', 'clawback')
), facts AS MATERIALIZED (
    SELECT m.campaign_id, m.hour, coalesce(mer.region_code, '') AS region_code, coalesce(mer.mcc, '') AS mcc,
           (m.kind = 'redeem')::int AS redemptions,
           CASE WHEN m.kind = 'redeem' THEN m.subsidy_fen ELSE 0 END AS redeemed_fen,
           CASE WHEN m.kind = 'refund' THEN m.subsidy_fen ELSE 0 END AS refunded_fen,
           CASE WHEN m.kind = 'clawback' THEN m.subsidy_fen ELSE 0 END AS clawed_back_fen,
           coalesce(r.order_amount_fen, 0) AS order_amount_fen,
           coalesce(f.amount_fen, 0) AS order_refunded_fen
      FROM moves m
      LEFT JOIN redemptions r
             ON m.kind = 'redeem' AND r.campaign_id = m.campaign_id AND r.id = m.redemption_id
      LEFT JOIN refunds f
             ON m.kind = 'refund' AND f.campaign_id = m.campaign_id AND f.redemption_id = m.redemption_id
            AND f.ledger_tx_id = m.tx_id
      LEFT JOIN merchants mer ON mer.id = m.merchant_id
), hourly AS ({_add("stats_hourly", "hour")}
), regions AS ({_add("stats_by_region", "region_code")}
), mccs AS ({_add("stats_by_mcc", "mcc")}
), moved AS (
    UPDATE stats_cursor SET last_seq = (SELECT max(seq) FROM taken), updated_at = now()
     WHERE id = 1 AND EXISTS (SELECT 1 FROM taken)
     RETURNING last_seq
)
SELECT (SELECT count(*) FROM taken) AS taken, (SELECT count(*) FROM moves) AS moves,
       (SELECT count(*) FROM hourly) + (SELECT count(*) FROM regions) + (SELECT count(*) FROM mccs) AS rows,
       (SELECT last_seq FROM moved) AS last_seq
"""

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"


async def cursor(conn: AsyncConnection) -> sa.Row:
    """(last_seq, updated_at): how far the rollups have got in the ledger."""
    query = sa.text("SELECT last_seq, updated_at FROM stats_cursor WHERE id = 1")
    return (await conn.execute(query)).one()


async def timezone_of(conn: AsyncConnection, campaign_id: str) -> str:
    """The campaign's calendar (an IANA zone, China Standard Time unless its contract says otherwise)."""
    query = sa.text("SELECT timezone FROM campaigns WHERE id = :c")
    return (await conn.execute(query, {"c": campaign_id})).scalar_one()


async def ledger_head(conn: AsyncConnection) -> int:
    return (await conn.execute(sa.text("SELECT coalesce(max(seq), 0) FROM ledger_sequence"))).scalar_one()


async def hourly(conn: AsyncConnection, campaign_id: str, limit: int) -> list[sa.Row]:
    """The campaign's latest `limit` hours with activity, oldest first."""
    query = sa.text(
        f"SELECT * FROM (SELECT hour AS start, {_COLUMNS} FROM stats_hourly WHERE campaign_id = :c"
        " ORDER BY hour DESC LIMIT :limit) h ORDER BY start"
    )
    return list((await conn.execute(query, {"c": campaign_id, "limit": limit})).all())


async def daily(conn: AsyncConnection, campaign_id: str, timezone: str, limit: int) -> list[sa.Row]:
    """The campaign's latest `limit` days with activity (calendar days of `timezone`), oldest first."""
    query = sa.text(
        f"SELECT * FROM (SELECT (hour AT TIME ZONE :tz)::date AS start, {_NAMED_SUMS}"
        " FROM stats_hourly WHERE campaign_id = :c GROUP BY 1 ORDER BY 1 DESC LIMIT :limit) d ORDER BY start"
    )
    return list((await conn.execute(query, {"c": campaign_id, "tz": timezone, "limit": limit})).all())


async def breakdown(conn: AsyncConnection, table: str, key: str, campaign_id: str, limit: int) -> list[sa.Row]:
    """Rows of `stats_by_region` or `stats_by_mcc`, the largest subsidy first."""
    assert (table, key) in (("stats_by_region", "region_code"), ("stats_by_mcc", "mcc")), table
    query = sa.text(
        f"SELECT {key}, {_COLUMNS} FROM {table} WHERE campaign_id = :c ORDER BY redeemed_fen DESC, {key} LIMIT :limit"
    )
    return list((await conn.execute(query, {"c": campaign_id, "limit": limit})).all())


async def whole(conn: AsyncConnection, campaign_id: str) -> dict[str, Any]:
    """The campaign's sums over every hour."""
    query = sa.text(f"SELECT {_SUMS} FROM stats_hourly WHERE campaign_id = :c")
    row = (await conn.execute(query, {"c": campaign_id})).one()
    return {column: int(value or 0) for column, value in zip(_MONEY, row, strict=True)}
