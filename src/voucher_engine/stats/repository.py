"""SQL of the statistics: one statement per rollup round, and the few reads of the stats endpoint."""

from __future__ import annotations

import asyncpg

from voucher_engine.auth.repository import ACTIVE_TOKEN

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
    SELECT t.seq, t.id AS tx_id, t.kind, t.campaign_id,
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
), versions AS (
    INSERT INTO stats_campaigns AS v (campaign_id, last_seq)
    SELECT campaign_id, max(seq) FROM moves WHERE campaign_id IS NOT NULL GROUP BY campaign_id
    ON CONFLICT (campaign_id) DO UPDATE SET last_seq = greatest(v.last_seq, excluded.last_seq)
    RETURNING 1
), moved AS (
    UPDATE stats_cursor SET last_seq = (SELECT max(seq) FROM taken), updated_at = now()
     WHERE id = 1 AND EXISTS (SELECT 1 FROM taken)
     RETURNING last_seq
)
SELECT (SELECT count(*) FROM taken) AS taken, (SELECT count(*) FROM moves) AS moves,
       (SELECT count(*) FROM hourly) + (SELECT count(*) FROM regions) + (SELECT count(*) FROM mccs)
       + (SELECT count(*) FROM versions) AS rows,
       (SELECT last_seq FROM moved) AS last_seq
"""

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"


def _iso(local: str, offset: str) -> str:
    """SQL: RFC 3339 as Python's isoformat() writes it, from the local time and its offset from UTC (an interval)."""
    return (
        f"to_char({local}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN {offset} < interval '0'"
        f" THEN '-' || to_char(-{offset}, 'HH24:MI') ELSE '+' || to_char({offset}, 'HH24:MI') END"
    )


def _local(ts: str) -> str:
    """SQL columns `local` and `utc_offset` of the timestamptz `ts` in the campaign's time zone (`c.timezone`)."""
    return f"({ts}) AT TIME ZONE c.timezone AS local, ({ts}) AT TIME ZONE c.timezone - ({ts}) AT TIME ZONE 'UTC' AS utc_offset"


def _fields(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{name}', {name}" for name in names)


BREAKDOWN = ("redemptions", "redeemed_fen", "refunded_fen", "clawed_back_fen")
_BUCKET = f"{_fields(('redemptions', 'redeemed_fen', 'refunded_fen', 'clawed_back_fen'))}, " + _fields(
    ("order_amount_fen", "order_refunded_fen")
)


def _body(bucket: str) -> str:
    """SQL: the stats answer but `as_of`, written as JSON text by the database from the rollups of campaign $2.

    $4 is the number of latest buckets, $5 of breakdown rows; `c` is the campaign's row (for its time zone)."""
    if bucket == "hour":
        buckets = f"""
        SELECT coalesce(json_agg(json_build_object('start', {_iso("local", "utc_offset")}, {_BUCKET}) ORDER BY hour),
                        '[]')
          FROM (SELECT *, {_local("hour")}
                  FROM stats_hourly WHERE campaign_id = $2 ORDER BY hour DESC LIMIT $4) x"""
    else:
        buckets = f"""
        SELECT coalesce(json_agg(json_build_object('start', {_iso("local", "utc_offset")}, {_BUCKET}) ORDER BY day), '[]')
          FROM (SELECT *, {_local("day::timestamp AT TIME ZONE c.timezone")}
                  FROM (SELECT (hour AT TIME ZONE c.timezone)::date AS day, {_NAMED_SUMS}
                          FROM stats_hourly WHERE campaign_id = $2 GROUP BY 1 ORDER BY 1 DESC LIMIT $4) d) x"""
    breakdowns = {
        key: f"""
        SELECT coalesce(json_agg(json_build_object('{key}', {key}, {_fields(BREAKDOWN)})
                                 ORDER BY redeemed_fen DESC, {key}), '[]')
          FROM (SELECT * FROM {table} WHERE campaign_id = $2 ORDER BY redeemed_fen DESC, {key} LIMIT $5) x"""
        for key, table in (("region_code", "stats_by_region"), ("mcc", "stats_by_mcc"))
    }
    # The sums: every fact is in each of the three rollups, so the category rollup (a handful of rows) has them.
    # The ratio as service.ratio writes it: two decimals rounded toward zero, "0.00" without subsidy.
    leverage = """
        SELECT json_build_object('order_amount_fen', o, 'subsidy_fen', s,
                                 'ratio', CASE WHEN s > 0 THEN trunc(o::numeric / s, 2)::text ELSE '0.00' END)
          FROM (SELECT coalesce(sum(order_amount_fen - order_refunded_fen), 0)::bigint AS o,
                       coalesce(sum(redeemed_fen - refunded_fen - clawed_back_fen), 0)::bigint AS s
                  FROM stats_by_mcc WHERE campaign_id = $2) x"""
    return f"""json_build_object('campaign_id', c.id, 'bucket', '{bucket}', 'buckets', ({buckets}),
        'by_region', ({breakdowns["region_code"]}), 'by_mcc', ({breakdowns["mcc"]}), 'leverage', ({leverage}))::text"""


# The stats endpoint's one round trip: the caller's token ($1, its digest: revoked or unknown gives no row), the
# campaign ($2) with its issuer and co-funders (who may read), the campaign's rollup sequence, how far the rollups
# have got — and the answer itself, built only when the sequence differs from the one whose answer the worker keeps
# ($3; -1 when it keeps none) and the token and campaign exist. One statement: one snapshot, so the answer is the
# rollups as of the sequence it comes with.
def _stats(bucket: str) -> str:
    return f"""
WITH tok AS ({ACTIVE_TOKEN.format(digest="$1")}
), c AS (
    SELECT id, issuer_id, timezone,
           ARRAY(SELECT f.issuer_id FROM campaign_funders f WHERE f.campaign_id = campaigns.id) AS funders,
           coalesce((SELECT v.last_seq FROM stats_campaigns v WHERE v.campaign_id = campaigns.id), 0) AS version
      FROM campaigns WHERE id = $2
)
SELECT tok.id AS token_id, tok.role, tok.issuer_id AS token_issuer_id, tok.region_code AS token_region,
       c.issuer_id, c.funders, c.version, cur.last_seq, cur.updated_at,
       (SELECT coalesce(max(seq), 0) FROM ledger_sequence) AS head_seq,
       CASE WHEN tok.id IS NOT NULL AND c.id IS NOT NULL AND c.version <> $3 THEN ({_body(bucket)}) END AS body
  FROM stats_cursor cur LEFT JOIN tok ON true LEFT JOIN c ON true
 WHERE cur.id = 1
"""


STATS = {"hour": _stats("hour"), "day": _stats("day")}


async def rollup_round(raw: asyncpg.Connection, limit: int) -> tuple[int, int, int | None] | None:
    """One round of ROLLUP_ROUND under the stats try-lock: (transactions taken, of which moves, the cursor after),
    or None when another poller holds the lock."""
    if not await raw.fetchval(TRY_LOCK, STATS_LOCK_KEY):
        return None
    row = await raw.fetchrow(ROLLUP_ROUND, limit)
    return int(row["taken"]), int(row["moves"]), row["last_seq"]


async def stats_answer(
    raw: asyncpg.Connection | asyncpg.Pool,
    token_digest: str,
    campaign_id: str,
    *,
    bucket: str,
    kept_version: int,
    max_buckets: int,
    max_breakdown_rows: int,
) -> asyncpg.Record:
    """STATS[bucket]'s one row: the token, the campaign, its rollup sequence, the cursor, and the answer's JSON
    text unless the sequence is `kept_version` (-1: none kept)."""
    return await raw.fetchrow(STATS[bucket], token_digest, campaign_id, kept_version, max_buckets, max_breakdown_rows)
