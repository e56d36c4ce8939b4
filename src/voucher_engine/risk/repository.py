"""SQL of risk control, on the asyncpg connection of the caller's transaction (`voucher_engine.db.raw.driver`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

# A new flag, or nothing when its dedupe key is taken (a detector running again, a batch retried).
INSERT_FLAG = """
INSERT INTO risk_flags (id, signal, outcome, merchant_id, campaign_id, redemption_ids, evidence, status, dedupe_key,
                        opened_at, hold_caused)
VALUES ($1, $2, $3, $4, $5, $6::text[], $7::jsonb, 'open', $8, $9, false)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING *
"""
SET_HOLD_CAUSED = "UPDATE risk_flags SET hold_caused = true WHERE id = $1 RETURNING *"

_FLAG_COLUMNS = """
f.*, c.issuer_id AS campaign_issuer_id,
d.decision AS d_decision, d.note AS d_note, d.role AS d_role, d.token_id AS d_token_id, d.issuer_id AS d_issuer_id,
d.decided_at AS d_decided_at, d.clawback_ids AS d_clawback_ids, d.released_hold AS d_released_hold
"""
_FLAG_FROM = """
FROM risk_flags f
LEFT JOIN campaigns c ON c.id = f.campaign_id
LEFT JOIN risk_decisions d ON d.flag_id = f.id
"""
BY_DEDUPE_KEY = f"SELECT {_FLAG_COLUMNS} {_FLAG_FROM} WHERE f.dedupe_key = $1"
GET_FLAG = f"SELECT {_FLAG_COLUMNS} {_FLAG_FROM} WHERE f.id = $1"
LOCK_FLAG = "SELECT * FROM risk_flags WHERE id = $1 FOR UPDATE"

# Newest first by `seq`. `$4`: only flags of this issuer's campaigns (a gov, a bound auditor); `$5`: the caller
# sees flags of no campaign (admin, unbound auditor).
LIST_FLAGS = f"""
SELECT {_FLAG_COLUMNS} {_FLAG_FROM}
WHERE ($1::text IS NULL OR f.campaign_id = $1)
  AND ($2::text IS NULL OR f.merchant_id = $2)
  AND ($3::text IS NULL OR f.status = $3)
  AND ($4::text IS NULL OR c.issuer_id = $4)
  AND ($5 OR f.campaign_id IS NOT NULL)
  AND ($6::text IS NULL OR f.signal = $6)
  AND ($7::bigint IS NULL OR f.seq < $7)
ORDER BY f.seq DESC
LIMIT $8
"""

DECIDE_FLAG = "UPDATE risk_flags SET status = $2, decided_at = $3 WHERE id = $1 AND status = 'open' RETURNING *"
INSERT_DECISION = """
INSERT INTO risk_decisions (flag_id, decision, note, role, token_id, issuer_id, decided_at, clawback_ids,
                            released_hold)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text[], $9)
"""
# Other flags of the merchant that still need its payout hold: open with a `hold` outcome, or confirmed.
OTHER_HOLDING_FLAGS = """
SELECT count(*) FROM risk_flags
WHERE merchant_id = $1 AND id <> $2 AND ((status = 'open' AND outcome = 'hold') OR status = 'confirmed')
"""
CAMPAIGN_ISSUER = "SELECT issuer_id FROM campaigns WHERE id = $1"
CAMPAIGN_CONTRACT = "SELECT issuer_id, contract_sha256, contract_source FROM campaigns WHERE id = $1"


async def insert_flag(
    raw: asyncpg.Connection,
    flag_id: str,
    signal: str,
    outcome: str,
    merchant_id: str | None,
    campaign_id: str | None,
    redemption_ids: list[str],
    evidence: dict[str, Any],
    dedupe_key: str,
    at: datetime,
) -> asyncpg.Record | None:
    return await raw.fetchrow(
        INSERT_FLAG,
        flag_id,
        signal,
        outcome,
        merchant_id,
        campaign_id,
        redemption_ids,
        orjson.dumps(evidence).decode(),
        dedupe_key,
        at,
    )


async def fetch(raw: asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    return await raw.fetch(sql, *args)


async def fetchrow(raw: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record | None:
    return await raw.fetchrow(sql, *args)


async def fetchval(raw: asyncpg.Connection, sql: str, *args: Any) -> Any:
    return await raw.fetchval(sql, *args)


async def execute(raw: asyncpg.Connection, sql: str, *args: Any) -> None:
    await raw.execute(sql, *args)
