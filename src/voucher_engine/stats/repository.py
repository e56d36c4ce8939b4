"""SQL of the statistics: one statement per rollup round, and the few reads of the stats endpoint."""

from __future__ import annotations

import asyncpg

STATS_LOCK_KEY = 7_412_930_017  # beside the sequencer's and the expiry sweep's keys

MONEY = ("redemptions", "redeemed_fen", "refunded_fen", "clawed_back_fen", "order_amount_fen", "order_refunded_fen")
_SUMS = ", ".join(f"sum({column})::bigint" for column in MONEY)
_NAMED_SUMS = ", ".join(f"sum({column})::bigint AS {column}" for column in MONEY)
_COLUMNS = ", ".join(MONEY)


def _add(table: str, key: str) -> str:
    """An upsert of the round's facts into one rollup, grouped by (campaign_id, key)."""
    updates = ", ".join(f"{column} = r.{column} + excluded.{column}" for column in MONEY)
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


# The whole answer of the stats endpoint in one round trip: who may see the campaign, its calendar, the buckets
# (as arrays, oldest first), the two breakdowns, the sums and how far the rollups have got. $2 is the number of
# latest buckets, $3 of breakdown rows. Buckets come as [start, the six money columns]: an epoch second for hours,
# a date for days (the caller writes them in the campaign's time zone).
_ROW = "jsonb_build_array(" + ", ".join(MONEY) + ")"
_STATS_HEAD = """
WITH c AS (
    SELECT id, issuer_id, timezone,
           ARRAY(SELECT f.issuer_id FROM campaign_funders f WHERE f.campaign_id = campaigns.id) AS funders
      FROM campaigns WHERE id = $1
)
SELECT c.issuer_id, c.funders, c.timezone, (SELECT last_seq FROM stats_cursor WHERE id = 1) AS last_seq,
       (SELECT updated_at FROM stats_cursor WHERE id = 1) AS updated_at,
       (SELECT coalesce(max(seq), 0) FROM ledger_sequence) AS head_seq,
"""
_STATS_TAIL = f"""
       (SELECT coalesce(jsonb_agg(jsonb_build_array(region_code) || {_ROW} ORDER BY redeemed_fen DESC,
                                 region_code), '[]')
          FROM (SELECT * FROM stats_by_region WHERE campaign_id = $1 ORDER BY redeemed_fen DESC, region_code
                LIMIT $3) x) AS by_region,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(mcc) || {_ROW} ORDER BY redeemed_fen DESC, mcc), '[]')
          FROM (SELECT * FROM stats_by_mcc WHERE campaign_id = $1 ORDER BY redeemed_fen DESC, mcc LIMIT $3) x)
       AS by_mcc,
       (SELECT jsonb_build_array({_SUMS}) FROM stats_hourly WHERE campaign_id = $1) AS sums
  FROM c
"""
STATS_BY_HOUR = (
    _STATS_HEAD
    + f"""
       (SELECT coalesce(jsonb_agg(jsonb_build_array(extract(epoch FROM hour)::bigint) || {_ROW} ORDER BY hour),
                        '[]')
          FROM (SELECT * FROM stats_hourly WHERE campaign_id = $1 ORDER BY hour DESC LIMIT $2) x) AS buckets,"""
    + _STATS_TAIL
)
STATS_BY_DAY = (
    _STATS_HEAD
    + f"""
       (SELECT coalesce(jsonb_agg(jsonb_build_array(day) || jsonb_build_array({", ".join(MONEY)}) ORDER BY day),
                        '[]')
          FROM (SELECT (hour AT TIME ZONE c.timezone)::date AS day, {_NAMED_SUMS}
                  FROM stats_hourly WHERE campaign_id = $1 GROUP BY 1 ORDER BY 1 DESC LIMIT $2) x) AS buckets,"""
    + _STATS_TAIL
)


async def rollup_round(raw: asyncpg.Connection, limit: int) -> tuple[int, int, int | None] | None:
    """One round of ROLLUP_ROUND under the stats try-lock: (transactions taken, of which moves, the cursor after),
    or None when another poller holds the lock."""
    if not await raw.fetchval(TRY_LOCK, STATS_LOCK_KEY):
        return None
    row = await raw.fetchrow(ROLLUP_ROUND, limit)
    return int(row["taken"]), int(row["moves"]), row["last_seq"]


async def campaign_figures(
    raw: asyncpg.Connection, campaign_id: str, *, by_hour: bool, max_buckets: int, max_breakdown_rows: int
) -> asyncpg.Record | None:
    """STATS_BY_HOUR or STATS_BY_DAY's one row for the campaign (None: no such campaign)."""
    return await raw.fetchrow(STATS_BY_HOUR if by_hour else STATS_BY_DAY, campaign_id, max_buckets, max_breakdown_rows)
