"""SQL of the window detector: one statement that takes the newly sequenced redemptions and refunds into the
events, one that adds them to the window counts, and one statement per window signal over the merchants, holders
and pairs a pass touched (filtered to a group of campaigns where campaigns' rules differ). Each is a typed function
below; the detector passes no SQL of its own.

Buckets are aligned on UTC (`date_bin` from 2000-01-01Z): every China-time hour and minute is one of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import asyncpg

LOCK_KEY = 7_412_930_018  # beside the stats poller's key: one detector pass at a time, across workers
TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
_ORIGIN = "timestamptz '2000-01-01 00:00Z'"

READ_CURSOR = "SELECT last_seq, claims_at FROM risk_w_cursor WHERE id = 1 FOR UPDATE"
MOVE_CURSOR = "UPDATE risk_w_cursor SET last_seq = $1, updated_at = now() WHERE id = 1"
MOVE_CLAIMS_CURSOR = "UPDATE risk_w_cursor SET claims_at = $1, updated_at = now() WHERE id = 1"

# The next sequenced transactions after the cursor (at most $2), and the redemptions and refunds among them copied
# into the events, in one statement: the rows never travel to the detector and back (at 1,000 redemptions a second
# that was most of the detector's own CPU). Every transaction is taken, so the cursor can move past the kinds the
# windows do not read. An event's holder is the voucher's id_hash, else its wallet; its minimum spend is the voucher's
# terms' (0 when it has none). Answers how many were taken, the last seq, how many were events, the seqs new to the
# events (a span read again inserts none), the events' campaigns and the newest event's time.
TAKE_EVENTS = """
WITH taken AS MATERIALIZED (
    SELECT s.seq, t.id AS tx_id, t.kind, t.at, t.campaign_id, t.refs ->> 'redemption_id' AS redemption_id
      FROM ledger_sequence s JOIN ledger_transactions t ON t.id = s.tx_id
     WHERE s.seq > $1
     ORDER BY s.seq LIMIT $2
), events AS MATERIALIZED (
    SELECT t.seq, t.kind,
           CASE WHEN t.kind = 'redeem' THEN r.settled_at ELSE coalesce(f.created_at, t.at) END AS at,
           t.campaign_id, r.id AS redemption_id, r.merchant_id, coalesce(v.id_hash, 'w:' || r.wallet_id) AS holder,
           r.voucher_id, r.order_amount_fen,
           coalesce((c.summary -> 'terms' ->> 'min_spend_fen')::bigint, 0) AS min_spend_fen
      FROM taken t
      JOIN redemptions r ON r.campaign_id = t.campaign_id AND r.id = t.redemption_id
      LEFT JOIN refunds f
             ON t.kind = 'refund' AND f.campaign_id = t.campaign_id AND f.redemption_id = t.redemption_id
            AND f.ledger_tx_id = t.tx_id
      LEFT JOIN vouchers v ON v.campaign_id = r.campaign_id AND v.id = r.voucher_id
      LEFT JOIN campaigns c ON c.id = t.campaign_id
     WHERE t.kind IN ('redeem', 'refund')
), fresh AS (
    INSERT INTO risk_w_events (seq, kind, at, campaign_id, redemption_id, merchant_id, holder, voucher_id,
                               order_amount_fen, min_spend_fen)
    SELECT * FROM events
    ON CONFLICT (seq) DO NOTHING
    RETURNING seq
)
SELECT (SELECT count(*) FROM taken) AS taken, (SELECT max(seq) FROM taken) AS last_seq,
       (SELECT count(*) FROM events) AS events, (SELECT array_agg(seq ORDER BY seq) FROM fresh) AS fresh,
       (SELECT array_agg(DISTINCT campaign_id) FROM events) AS campaigns, (SELECT max(at) FROM events) AS newest
"""


# The pass's new events ($1: their seqs, as TAKE_EVENTS answered them; a span read again adds nothing twice) added
# to each merchant's minutes, hours and threshold orders. A window is then read from these counts, never by counting
# a merchant's events again: a pass costs what its new events cost, not what the merchant's whole window holds. The
# hours' busiest minute is the greatest of the minutes as they now stand (counts only grow).
ADD_COUNTS = f"""
WITH fresh AS MATERIALIZED (
    SELECT merchant_id, at, min_spend_fen, order_amount_fen FROM risk_w_events
     WHERE seq = ANY($1::bigint[]) AND kind = 'redeem'
), minutes AS (
    INSERT INTO risk_w_merchant_minutes AS m (merchant_id, minute, redemptions)
    SELECT merchant_id, date_bin('1 minute', at, {_ORIGIN}), count(*) FROM fresh GROUP BY 1, 2
    ON CONFLICT (merchant_id, minute) DO UPDATE SET redemptions = m.redemptions + excluded.redemptions
    RETURNING merchant_id, minute, redemptions
), hours AS (
    INSERT INTO risk_w_merchant_hours AS h (merchant_id, hour, redemptions, max_minute)
    SELECT f.merchant_id, f.hour, f.n, b.busiest
      FROM (SELECT merchant_id, date_bin('1 hour', at, {_ORIGIN}) AS hour, count(*)::int AS n FROM fresh GROUP BY 1, 2) f
      JOIN (SELECT merchant_id, date_bin('1 hour', minute, {_ORIGIN}) AS hour, max(redemptions) AS busiest
              FROM minutes GROUP BY 1, 2) b ON b.merchant_id = f.merchant_id AND b.hour = f.hour
    ON CONFLICT (merchant_id, hour) DO UPDATE
       SET redemptions = h.redemptions + excluded.redemptions, max_minute = greatest(h.max_minute, excluded.max_minute)
    RETURNING 1
), amounts AS (
    INSERT INTO risk_w_merchant_amounts AS a (merchant_id, hour, min_spend_fen, order_amount_fen, orders)
    SELECT merchant_id, date_bin('1 hour', at, {_ORIGIN}), min_spend_fen, order_amount_fen, count(*)
      FROM fresh WHERE min_spend_fen > 0 GROUP BY 1, 2, 3, 4
    ON CONFLICT (merchant_id, hour, min_spend_fen, order_amount_fen) DO UPDATE SET orders = a.orders + excluded.orders
    RETURNING 1
)
SELECT (SELECT count(*) FROM minutes) + (SELECT count(*) FROM hours) + (SELECT count(*) FROM amounts)
"""

# Per merchant the pass touched (by redemptions of the campaigns $4; NULL: of any), and per day (a backlog of days is judged day by day): the busiest sliding hour (60 minutes up to a minute the pass touched: a burst
# that straddles a clock hour is still one hour's) and the busiest minute among the touched ones, with the busiest
# clock hour and minute of its history before that window (hours that end before it starts), how far its history
# goes back, and when the merchant was registered. Read from the minutes and hours (ADD_COUNTS, run first).
TOUCH_MERCHANTS = f"""
WITH touched AS (
    SELECT DISTINCT merchant_id, date_bin('1 minute', at, {_ORIGIN}) AS minute
      FROM risk_w_events
     WHERE seq > $1 AND seq <= $2 AND kind = 'redeem' AND ($4::text[] IS NULL OR campaign_id = ANY($4::text[]))
), windows AS (
    SELECT t.merchant_id, t.minute + interval '1 minute' AS until,
           (SELECT coalesce(sum(m.redemptions), 0) FROM risk_w_merchant_minutes m
             WHERE m.merchant_id = t.merchant_id AND m.minute > t.minute - interval '1 hour'
               AND m.minute <= t.minute) AS in_hour,
           (SELECT coalesce(sum(m.redemptions), 0) FROM risk_w_merchant_minutes m
             WHERE m.merchant_id = t.merchant_id AND m.minute = t.minute) AS in_minute
      FROM touched t
), best AS (
    SELECT DISTINCT ON (merchant_id, day) merchant_id, until, in_hour,
           max(in_minute) OVER (PARTITION BY merchant_id, day) AS max_minute
      FROM (SELECT *, date_bin('1 day', until, {_ORIGIN}) AS day FROM windows) w
     ORDER BY merchant_id, day, in_hour DESC, until
)
SELECT b.merchant_id, b.until, b.in_hour AS redemptions, b.max_minute, m.created_at AS registered_at,
       hist.max_hour, hist.max_minute AS hist_max_minute, hist.first_hour
  FROM best b
  LEFT JOIN merchants m ON m.id = b.merchant_id
  CROSS JOIN LATERAL (
      SELECT coalesce(max(h.redemptions), 0) AS max_hour, coalesce(max(h.max_minute), 0) AS max_minute,
             (SELECT min(f.hour) FROM risk_w_merchant_hours f WHERE f.merchant_id = b.merchant_id) AS first_hour
        FROM risk_w_merchant_hours h
       WHERE h.merchant_id = b.merchant_id AND h.hour >= b.until - $3::interval
         AND h.hour < date_bin('1 hour', b.until - interval '1 hour', {_ORIGIN})
  ) hist
"""

# A merchant's redemptions of the 60 minutes up to $2 (the evidence of a velocity flag), the latest first (by time,
# so that the index on (merchant_id, at) is read backwards and stops at the limit, however busy the hour).
HOUR_REDEMPTIONS = """
SELECT redemption_id, campaign_id FROM risk_w_events
 WHERE merchant_id = $1 AND kind = 'redeem' AND at >= $2::timestamptz - interval '1 hour' AND at < $2
 ORDER BY at DESC, seq DESC LIMIT $3
"""

# Orders that hug the threshold, per merchant touched (by the campaigns $6; NULL: any), over its threshold-voucher orders of the window (whole hours)
# up to its latest: how many, how many within the band ($4 basis points above the minimum spend), the most repeated
# exact amount. Read from the merchant's hourly amounts (ADD_COUNTS), not its events.
HUGGING = """
WITH touched AS (
    SELECT merchant_id, max(at) AS until FROM risk_w_events
     WHERE seq > $1 AND seq <= $2 AND kind = 'redeem' AND min_spend_fen > 0
       AND ($6::text[] IS NULL OR campaign_id = ANY($6::text[]))
     GROUP BY merchant_id
), orders AS (
    SELECT a.merchant_id, t.until, a.order_amount_fen, a.min_spend_fen, a.orders,
           (a.order_amount_fen * 10000 <= a.min_spend_fen * (10000 + $4)) AS near
      FROM touched t JOIN risk_w_merchant_amounts a ON a.merchant_id = t.merchant_id
     WHERE a.hour > t.until - $3::interval AND a.hour <= t.until
), tops AS (
    SELECT DISTINCT ON (merchant_id) merchant_id, order_amount_fen, n
      FROM (SELECT merchant_id, order_amount_fen, sum(orders) AS n FROM orders GROUP BY merchant_id, order_amount_fen) x
     ORDER BY merchant_id, n DESC, order_amount_fen
)
SELECT o.merchant_id, sum(o.orders) AS orders, coalesce(sum(o.orders) FILTER (WHERE o.near), 0) AS near,
       t.order_amount_fen AS top_amount_fen, t.n AS top_count, min(o.min_spend_fen) AS min_spend_fen,
       max(o.until) AS until
  FROM orders o JOIN tops t ON t.merchant_id = o.merchant_id
 GROUP BY o.merchant_id, t.order_amount_fen, t.n
HAVING sum(o.orders) >= $5
"""

# The redemptions in the band of a merchant that HUGGING found hugging (the flag's evidence), the latest first.
NEAR_REDEMPTIONS = """
SELECT redemption_id, campaign_id FROM risk_w_events
 WHERE merchant_id = $1 AND kind = 'redeem' AND min_spend_fen > 0
   AND order_amount_fen * 10000 <= min_spend_fen * (10000 + $4)
   AND at > $2::timestamptz - $3::interval AND at <= $2
 ORDER BY at DESC, seq DESC LIMIT $5
"""

# One exact amount repeated at a merchant: for the pass's threshold-voucher redemptions (of the campaigns $7; NULL:
# any) whose amount hugs the minimum
# spend (within $4 basis points above it), the merchant's orders of that same amount in the $3 up to each; the most
# per merchant. One look per merchant, amount and minute (at its latest redemption), not one per redemption: a till
# ringing the same amount a hundred times a minute costs one count, not a hundred.
EXACT_REPEAT = f"""
WITH news AS (
    SELECT DISTINCT ON (merchant_id, order_amount_fen, date_bin('1 minute', at, {_ORIGIN})) *
      FROM risk_w_events
     WHERE seq > $1 AND seq <= $2 AND kind = 'redeem' AND min_spend_fen > 0
       AND order_amount_fen * 10000 <= min_spend_fen * (10000 + $4)
       AND ($7::text[] IS NULL OR campaign_id = ANY($7::text[]))
     ORDER BY merchant_id, order_amount_fen, date_bin('1 minute', at, {_ORIGIN}), at DESC, seq DESC
)
SELECT DISTINCT ON (n.merchant_id) n.merchant_id, n.order_amount_fen, n.min_spend_fen, n.at, x.n, x.ids, x.campaigns
  FROM news n
  CROSS JOIN LATERAL (
      SELECT count(*) AS n, (array_agg(e.redemption_id ORDER BY e.seq DESC))[1:$6] AS ids,
             (array_agg(e.campaign_id ORDER BY e.seq DESC))[1:$6] AS campaigns
        FROM risk_w_events e
       WHERE e.merchant_id = n.merchant_id AND e.kind = 'redeem' AND e.order_amount_fen = n.order_amount_fen
         AND e.at > n.at - $3::interval AND e.at <= n.at
  ) x
 WHERE x.n >= $5
 ORDER BY n.merchant_id, x.n DESC, n.seq
"""

# Holder–merchant pairs: the redemptions new to the events ($1: their seqs; a span read again adds nothing twice)
# added, with how many of them hug the minimum spend (within their campaign's band: $3/$4, campaigns and basis
# points, else $2), and the pairs they touched with the campaigns of the new redemptions (whose rules judge them),
# only those with $5 redemptions or more (the fewest any rule asks for: most pairs are a first visit).
ADD_PAIRS = """
WITH bands AS (
    SELECT * FROM unnest($3::text[], $4::bigint[]) AS b(campaign_id, band)
), fresh AS (
    SELECT e.holder, e.merchant_id, count(*) AS n, array_agg(DISTINCT e.campaign_id) AS campaigns,
           count(*) FILTER (WHERE e.min_spend_fen > 0
                              AND e.order_amount_fen * 10000 <= e.min_spend_fen * (10000 + coalesce(b.band, $2)))
             AS hugging,
           (array_agg(e.redemption_id ORDER BY e.seq DESC))[1:50] AS ids, min(e.at) AS first_at, max(e.at) AS last_at
      FROM risk_w_events e LEFT JOIN bands b ON b.campaign_id = e.campaign_id
     WHERE e.seq = ANY($1::bigint[]) AND e.kind = 'redeem'
     GROUP BY e.holder, e.merchant_id
), up AS (
    INSERT INTO risk_w_pairs AS p (holder, merchant_id, redemptions, campaigns, hugging, redemption_ids, first_at,
                                   last_at)
    SELECT holder, merchant_id, n, campaigns, hugging, ids, first_at, last_at FROM fresh
    ON CONFLICT (holder, merchant_id) DO UPDATE
       SET redemptions = p.redemptions + excluded.redemptions, hugging = p.hugging + excluded.hugging,
           campaigns = ARRAY(SELECT DISTINCT c FROM unnest(p.campaigns || excluded.campaigns) AS c ORDER BY c),
           redemption_ids = (excluded.redemption_ids || p.redemption_ids)[1:50],
           last_at = greatest(p.last_at, excluded.last_at)
    RETURNING holder, merchant_id, redemptions, campaigns, hugging, redemption_ids, first_at, last_at
)
SELECT up.*, f.campaigns AS new_campaigns
  FROM up JOIN fresh f ON f.holder = up.holder AND f.merchant_id = up.merchant_id
 WHERE up.redemptions >= $5
"""

# One holder across many merchants: for each of the pass's redemptions (of the campaigns $5; NULL: any), the holder's distinct merchants in the
# window up to it; the widest per holder.
HOLDER_VELOCITY = """
SELECT DISTINCT ON (n.holder) n.holder, n.at, w.merchants, w.merchant_ids, w.ids, w.campaigns
  FROM risk_w_events n
  CROSS JOIN LATERAL (
      SELECT count(DISTINCT e.merchant_id) AS merchants, array_agg(DISTINCT e.merchant_id) AS merchant_ids,
             array_agg(e.redemption_id ORDER BY e.seq) AS ids, array_agg(e.campaign_id ORDER BY e.seq) AS campaigns
        FROM risk_w_events e
       WHERE e.holder = n.holder AND e.kind = 'redeem' AND e.at > n.at - $3::interval AND e.at <= n.at
  ) w
 WHERE n.seq > $1 AND n.seq <= $2 AND n.kind = 'redeem' AND w.merchants >= $4
   AND ($5::text[] IS NULL OR n.campaign_id = ANY($5::text[]))
 ORDER BY n.holder, w.merchants DESC, n.seq
"""

# First-come campaigns whose stock moved since the detector last read their claims.
CLAIMS_MOVED = """
WITH stock AS (
    SELECT c.id AS campaign_id, sum(s.remaining)::bigint AS remaining
      FROM campaigns c JOIN claim_stock s ON s.campaign_id = c.id
     WHERE c.distribution = 'first_come' AND c.status IN ('active', 'paused')
     GROUP BY c.id
), moved AS (
    INSERT INTO risk_w_claims_seen AS seen (campaign_id, remaining)
    SELECT campaign_id, remaining FROM stock
    ON CONFLICT (campaign_id) DO UPDATE SET remaining = excluded.remaining
     WHERE seen.remaining IS DISTINCT FROM excluded.remaining
    RETURNING campaign_id
)
SELECT array_agg(campaign_id) FROM moved
"""

# Claims of those campaigns since the claims cursor (less a minute, for bursts that straddle passes), per campaign,
# block of wallets and minute, where a minute holds a burst.
CLAIMS_BURSTS = f"""
SELECT campaign_id, left(wallet_id, $3) AS wallet_block, date_bin('1 minute', issued_at, {_ORIGIN}) AS minute,
       count(*) AS claims, (array_agg(id ORDER BY issued_at))[1:$5] AS voucher_ids,
       min(issued_at) AS first_at, max(issued_at) AS last_at
  FROM vouchers
 WHERE campaign_id = ANY($1) AND issuance_id IS NULL AND issued_at > $2
 GROUP BY 1, 2, 3
HAVING count(*) >= $4
"""
CLAIMS_LATEST = "SELECT max(issued_at) FROM vouchers WHERE campaign_id = ANY($1) AND issuance_id IS NULL"

# Window state older than the longest window is dropped (events after their last window, hours after the history,
# pairs after theirs): relative to the newest event the pass took, so a test clock moving days ahead prunes alike.
PRUNE = """
WITH e AS (DELETE FROM risk_w_events WHERE at < $1::timestamptz - $2::interval RETURNING 1),
     a AS (DELETE FROM risk_w_merchant_amounts WHERE hour < $1::timestamptz - $2::interval RETURNING 1),
     h AS (DELETE FROM risk_w_merchant_hours WHERE hour < $1::timestamptz - $3::interval RETURNING 1),
     p AS (DELETE FROM risk_w_pairs WHERE last_at < $1::timestamptz - $4::interval RETURNING 1),
     m AS (DELETE FROM risk_w_merchant_minutes WHERE minute < $1::timestamptz - $5::interval RETURNING 1)
SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM a) + (SELECT count(*) FROM h) + (SELECT count(*) FROM p)
       + (SELECT count(*) FROM m)
"""


async def try_lock(raw: asyncpg.Connection) -> bool:
    """Take the pass's lock for the caller's transaction, or answer False: another pass holds it."""
    return bool(await raw.fetchval(TRY_LOCK, LOCK_KEY))


async def read_cursor(raw: asyncpg.Connection) -> tuple[int, datetime | None]:
    """The cursors (the last ledger seq taken, the latest claim read), the row locked to the end of the pass."""
    row = await raw.fetchrow(READ_CURSOR)
    if row is None:  # migration 0018 inserts the one row
        raise RuntimeError("risk_w_cursor has no row")
    return row["last_seq"], row["claims_at"]


async def move_cursor(raw: asyncpg.Connection, last_seq: int) -> None:
    await raw.execute(MOVE_CURSOR, last_seq)


async def move_claims_cursor(raw: asyncpg.Connection, at: datetime) -> None:
    await raw.execute(MOVE_CLAIMS_CURSOR, at)


class Taken(NamedTuple):
    """What TAKE_EVENTS took: transactions, the last one's seq (None: none), events among them, the seqs new to the
    events, the events' campaigns and the newest event's time (None: no events)."""

    taken: int
    last_seq: int | None
    events: int
    fresh: list[int]
    campaigns: list[str]
    newest: datetime | None


async def take_events(raw: asyncpg.Connection, after_seq: int, limit: int) -> Taken:
    """Take the next sequenced transactions after `after_seq` (at most `limit`) and copy their events in."""
    row = await raw.fetchrow(TAKE_EVENTS, after_seq, limit)
    if row is None:  # an aggregate always answers a row
        raise RuntimeError("TAKE_EVENTS answered no row")
    return Taken(
        row["taken"],
        row["last_seq"],
        row["events"],
        list(row["fresh"] or []),
        list(row["campaigns"] or []),
        row["newest"],
    )


CAMPAIGN_CONTRACTS = "SELECT id, contract_sha256 FROM campaigns WHERE id = ANY($1::text[])"
CONTRACT_SOURCES = """
SELECT DISTINCT ON (contract_sha256) contract_sha256, contract_source FROM campaigns
 WHERE contract_sha256 = ANY($1::text[])
"""


async def campaign_contracts(raw: asyncpg.Connection, campaign_ids: list[str]) -> dict[str, str]:
    """Each campaign's contract digest (campaigns not found are left out)."""
    return {row["id"]: row["contract_sha256"] for row in await raw.fetch(CAMPAIGN_CONTRACTS, campaign_ids)}


async def contract_sources(raw: asyncpg.Connection, digests: list[str]) -> dict[str, str]:
    """The source of each contract digest."""
    return {row["contract_sha256"]: row["contract_source"] for row in await raw.fetch(CONTRACT_SOURCES, digests)}


async def add_counts(raw: asyncpg.Connection, fresh: list[int]) -> None:
    """Add the new events (their seqs) to the merchants' minutes, hours and threshold orders."""
    await raw.fetchval(ADD_COUNTS, fresh)


async def touch_merchants(
    raw: asyncpg.Connection, span: tuple[int, int], history: timedelta, campaigns: list[str] | None
) -> list[asyncpg.Record]:
    """TOUCH_MERCHANTS's rows for the span's redemptions of `campaigns` (None: of any campaign)."""
    return await raw.fetch(TOUCH_MERCHANTS, *span, history, campaigns)


async def hour_redemptions(
    raw: asyncpg.Connection, merchant_id: str, until: datetime, limit: int
) -> list[asyncpg.Record]:
    """The merchant's redemptions (redemption_id, campaign_id) of the hour up to `until`, the latest first."""
    return await raw.fetch(HOUR_REDEMPTIONS, merchant_id, until, limit)


async def hugging(
    raw: asyncpg.Connection,
    span: tuple[int, int],
    window: timedelta,
    within_bp: int,
    at_least: int,
    campaigns: list[str] | None,
) -> list[asyncpg.Record]:
    """HUGGING's rows: per merchant the span's redemptions of `campaigns` touched, with `at_least` orders."""
    return await raw.fetch(HUGGING, *span, window, within_bp, at_least, campaigns)


async def near_redemptions(
    raw: asyncpg.Connection, merchant_id: str, until: datetime, window: timedelta, within_bp: int, limit: int
) -> list[asyncpg.Record]:
    """The merchant's orders within `within_bp` above the minimum spend, in the window up to `until`, latest first."""
    return await raw.fetch(NEAR_REDEMPTIONS, merchant_id, until, window, within_bp, limit)


async def exact_repeats(
    raw: asyncpg.Connection,
    span: tuple[int, int],
    window: timedelta,
    band_bp: int,
    times: int,
    limit: int,
    campaigns: list[str] | None,
) -> list[asyncpg.Record]:
    """EXACT_REPEAT's rows: per merchant, its most repeated amount in the band, repeated at least `times`."""
    return await raw.fetch(EXACT_REPEAT, *span, window, band_bp, times, limit, campaigns)


async def add_pairs(
    raw: asyncpg.Connection, fresh: list[int], band_bp: int, bands: dict[str, int], at_least: int
) -> list[asyncpg.Record]:
    """Add the new events to the holder–merchant pairs; answer the pairs touched that have `at_least` redemptions.
    `bands`: campaigns whose band above the minimum spend is not `band_bp`."""
    return await raw.fetch(ADD_PAIRS, fresh, band_bp, list(bands), list(bands.values()), at_least)


async def holder_spread(
    raw: asyncpg.Connection, span: tuple[int, int], window: timedelta, merchants: int, campaigns: list[str] | None
) -> list[asyncpg.Record]:
    """HOLDER_VELOCITY's rows: holders of the span's redemptions of `campaigns` at `merchants` or more in the window."""
    return await raw.fetch(HOLDER_VELOCITY, *span, window, merchants, campaigns)


async def claims_moved(raw: asyncpg.Connection) -> list[str]:
    """First-come campaigns whose stock moved since the last look (and remember their stock now)."""
    return list(await raw.fetchval(CLAIMS_MOVED) or [])


async def claims_bursts(
    raw: asyncpg.Connection, campaigns: list[str], since: datetime, block_digits: int, least: int, limit: int
) -> list[asyncpg.Record]:
    return await raw.fetch(CLAIMS_BURSTS, campaigns, since, block_digits, least, limit)


async def claims_latest(raw: asyncpg.Connection, campaigns: list[str]) -> datetime | None:
    return await raw.fetchval(CLAIMS_LATEST, campaigns)


async def prune(
    raw: asyncpg.Connection,
    newest: datetime,
    events: timedelta,
    hours: timedelta,
    pairs: timedelta,
    minutes: timedelta,
) -> int:
    """Drop window state older than its window, relative to the newest event; answer how many rows went."""
    return int(await raw.fetchval(PRUNE, newest, events, hours, pairs, minutes))
