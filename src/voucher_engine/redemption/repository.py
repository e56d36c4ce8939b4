"""SQL of the redemption path: set-based statements over a whole micro-batch, on the raw asyncpg connection.

Each function is one round trip whatever the batch size (arrays in, `unnest` inside). Vouchers are locked in
(campaign_id, id) order so that two batches touching the same vouchers can never deadlock.
"""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

CLAIM_NONCES = """
INSERT INTO request_nonces (key_id, nonce, seen_at)
SELECT k, n, $3 FROM unnest($1::text[], $2::text[]) AS t(k, n)
ON CONFLICT DO NOTHING
RETURNING key_id, nonce
"""

ACTIVE_KEYS = """
SELECT k.key_id, m.id AS merchant_id, m.status, m.mcc, m.region_code, m.tags
FROM merchant_keys k JOIN merchants m ON m.id = k.merchant_id
WHERE k.key_id = ANY($1::text[]) AND k.revoked_at IS NULL
"""

LOCK_VOUCHERS = """
SELECT v.campaign_id, v.id, v.wallet_id, v.status, v.valid_from, v.valid_until, v.face_value_fen, v.balance_fen,
       c.status AS campaign_status, c.kind, c.daily_cap_fen, c.timezone, c.contract_sha256
FROM vouchers v JOIN campaigns c ON c.id = v.campaign_id
WHERE (v.campaign_id, v.id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY v.campaign_id, v.id
FOR UPDATE OF v
"""

READ_VOUCHERS = LOCK_VOUCHERS.replace("FOR UPDATE OF v", "")

EXISTING_REDEMPTIONS = """
SELECT * FROM redemptions
WHERE (merchant_id, pos_txn_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""

LOCK_DAILY_SPEND = """
SELECT campaign_id, day, spent_fen FROM daily_spend
WHERE (campaign_id, day) IN (SELECT * FROM unnest($1::text[], $2::date[]))
ORDER BY campaign_id, day
FOR UPDATE
"""

ADD_DAILY_SPEND = """
INSERT INTO daily_spend (campaign_id, day, spent_fen, cap_fen)
SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[])
ON CONFLICT (campaign_id, day) DO UPDATE SET spent_fen = daily_spend.spent_fen + EXCLUDED.spent_fen
"""

UPDATE_VOUCHERS = """
UPDATE vouchers v SET status = u.status, balance_fen = u.balance, version = v.version + 1, updated_at = $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(campaign_id, id, status, balance)
WHERE v.campaign_id = u.campaign_id AND v.id = u.id
"""

INSERT_REDEMPTIONS = """
INSERT INTO redemptions (campaign_id, id, merchant_id, pos_txn_id, request_sha256, voucher_id, wallet_id,
                         order_amount_fen, subsidy_fen, payable_fen, ledger_tx_id, settled_at, spend_day, items)
SELECT c, i, m, p, h, v, w, o, s, o - s, l, $12, d, it::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
            $9::bigint[], $10::text[], $11::date[], $13::text[]) AS t(c, i, m, p, h, v, w, o, s, l, d, it)
"""

CONTRACT_SOURCE = "SELECT contract_source FROM campaigns WHERE contract_sha256 = $1 LIMIT 1"


async def claim_nonces(conn: asyncpg.Connection, pairs: list[tuple[str, str]], at: datetime) -> set[tuple[str, str]]:
    """Record nonces; answer the pairs that were new (the others are replays)."""
    rows = await conn.fetch(CLAIM_NONCES, [k for k, _ in pairs], [n for _, n in pairs], at)
    return {(row["key_id"], row["nonce"]) for row in rows}


async def active_keys(conn: asyncpg.Connection, key_ids: list[str]) -> dict[str, asyncpg.Record]:
    return {row["key_id"]: row for row in await conn.fetch(ACTIVE_KEYS, key_ids)}


async def vouchers(conn: asyncpg.Connection, keys: list[tuple[str, str]], *, lock: bool
                   ) -> dict[tuple[str, str], asyncpg.Record]:
    rows = await conn.fetch(LOCK_VOUCHERS if lock else READ_VOUCHERS, [c for c, _ in keys], [v for _, v in keys])
    return {(row["campaign_id"], row["id"]): row for row in rows}


async def existing_redemptions(conn: asyncpg.Connection, keys: list[tuple[str, str]]
                               ) -> dict[tuple[str, str], asyncpg.Record]:
    rows = await conn.fetch(EXISTING_REDEMPTIONS, [m for m, _ in keys], [p for _, p in keys])
    return {(row["merchant_id"], row["pos_txn_id"]): row for row in rows}


async def daily_spend(conn: asyncpg.Connection, keys: list[tuple[str, date]]) -> dict[tuple[str, date], int]:
    rows = await conn.fetch(LOCK_DAILY_SPEND, [c for c, _ in keys], [d for _, d in keys])
    return {(row["campaign_id"], row["day"]): row["spent_fen"] for row in rows}


async def add_daily_spend(conn: asyncpg.Connection, rows: list[tuple[str, date, int, int]]) -> None:
    if rows:
        await conn.execute(ADD_DAILY_SPEND, *map(list, zip(*rows)))


async def update_vouchers(conn: asyncpg.Connection, rows: list[tuple[str, str, str, int]], at: datetime) -> None:
    if rows:
        await conn.execute(UPDATE_VOUCHERS, *map(list, zip(*rows)), at)


async def insert_redemptions(conn: asyncpg.Connection, rows: list[tuple], at: datetime) -> None:
    """Rows of (campaign_id, id, merchant_id, pos_txn_id, request_sha256, voucher_id, wallet_id, order_fen,
    subsidy_fen, ledger_tx_id, spend_day, items_json)."""
    if rows:
        columns = list(map(list, zip(*rows)))
        await conn.execute(INSERT_REDEMPTIONS, *columns[:11], at, columns[11])


async def contract_source(conn: asyncpg.Connection, sha256: str) -> str:
    return await conn.fetchval(CONTRACT_SOURCE, sha256)
