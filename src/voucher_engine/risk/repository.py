"""SQL of risk control, on the asyncpg connection of the caller's transaction (`voucher_engine.db.raw.driver`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

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


def batch_flags_insert(first: int, *, tail: str) -> str:
    """The flags a redemption batch opens, in one INSERT, its nine arguments (batch_flags_args) numbered from
    `first`; `tail`: its ON CONFLICT and RETURNING clauses."""
    n = [f"${first + i}" for i in range(9)]
    return f"""INSERT INTO risk_flags (id, signal, outcome, merchant_id, campaign_id, redemption_ids, evidence, status,
                        dedupe_key, opened_at, hold_caused)
SELECT id, signal, outcome, merchant_id, campaign_id, ARRAY[redemption_id], evidence::jsonb, 'open', dedupe_key,
       {n[8]}, false
FROM unnest({", ".join(f"{a}::text[]" for a in n[:8])})
    AS t(id, signal, outcome, merchant_id, campaign_id, redemption_id, evidence, dedupe_key)
{tail}"""


# Alone, in a locked batch's transaction: the ids of those inserted come back, so that only they get their event.
INSERT_BATCH_FLAGS = batch_flags_insert(1, tail="ON CONFLICT (dedupe_key) DO NOTHING RETURNING id")
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


class BatchFlag(NamedTuple):
    """One flag of a redemption batch, as INSERT_BATCH_FLAGS writes it."""

    id: str
    signal: str
    outcome: str
    merchant_id: str
    campaign_id: str
    redemption_id: str
    evidence: dict[str, Any]
    dedupe_key: str


def batch_flags_args(flags: list[BatchFlag], at: datetime) -> tuple:
    """batch_flags_insert's nine arguments."""
    columns: list[list[Any]] = [list(column) for column in zip(*flags)]
    columns[6] = [orjson.dumps(evidence).decode() for evidence in columns[6]]
    return (*columns, at)


async def insert_batch_flags(raw: asyncpg.Connection, flags: list[BatchFlag], at: datetime) -> set[str]:
    """INSERT_BATCH_FLAGS; the ids of the flags inserted."""
    rows = await raw.fetch(INSERT_BATCH_FLAGS, *batch_flags_args(flags, at))
    return {row["id"] for row in rows}


async def flag_by_dedupe_key(raw: asyncpg.Connection, dedupe_key: str) -> asyncpg.Record | None:
    """The flag opened under `dedupe_key` with its campaign's issuer and its decision (the columns of to_model)."""
    return await raw.fetchrow(BY_DEDUPE_KEY, dedupe_key)


async def get_flag(raw: asyncpg.Connection, flag_id: str) -> asyncpg.Record | None:
    """The flag with its campaign's issuer and its decision (the columns of to_model)."""
    return await raw.fetchrow(GET_FLAG, flag_id)


async def lock_flag(raw: asyncpg.Connection, flag_id: str) -> bool:
    """Lock the flag's row to the end of the transaction; answer whether there is one."""
    return await raw.fetchrow(LOCK_FLAG, flag_id) is not None


async def set_hold_caused(raw: asyncpg.Connection, flag_id: str) -> None:
    """Record that the flag put its merchant on payout hold (a `clear` may then release it)."""
    await raw.execute(SET_HOLD_CAUSED, flag_id)


async def list_flags(
    raw: asyncpg.Connection,
    *,
    campaign_id: str | None,
    merchant_id: str | None,
    status: str | None,
    issuer_id: str | None,
    unscoped_too: bool,
    signal: str | None,
    before_seq: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """LIST_FLAGS's rows, newest first: `issuer_id` only that issuer's campaigns' flags; `unscoped_too` flags of no
    campaign as well."""
    return await raw.fetch(
        LIST_FLAGS, campaign_id, merchant_id, status, issuer_id, unscoped_too, signal, before_seq, limit
    )


async def decide_flag(raw: asyncpg.Connection, flag_id: str, status: str, at: datetime) -> bool:
    """Move an open flag to `status`; answer False when it was not open (decided already)."""
    return await raw.fetchrow(DECIDE_FLAG, flag_id, status, at) is not None


async def insert_decision(
    raw: asyncpg.Connection,
    flag_id: str,
    decision: str,
    note: str | None,
    role: str,
    token_id: str | None,
    issuer_id: str | None,
    at: datetime,
    clawback_ids: list[str],
    released_hold: bool,
) -> None:
    await raw.execute(
        INSERT_DECISION, flag_id, decision, note, role, token_id, issuer_id, at, clawback_ids, released_hold
    )


async def other_holding_flags(raw: asyncpg.Connection, merchant_id: str, flag_id: str) -> int:
    """How many other flags of the merchant still need its payout hold."""
    return int(await raw.fetchval(OTHER_HOLDING_FLAGS, merchant_id, flag_id))


async def campaign_issuer(raw: asyncpg.Connection, campaign_id: str) -> str | None:
    return await raw.fetchval(CAMPAIGN_ISSUER, campaign_id)


class CampaignContract(NamedTuple):
    issuer_id: str
    contract_sha256: str
    contract_source: str


async def campaign_contract(raw: asyncpg.Connection, campaign_id: str) -> CampaignContract | None:
    """The campaign's issuer and contract (None: no such campaign)."""
    row = await raw.fetchrow(CAMPAIGN_CONTRACT, campaign_id)
    return None if row is None else CampaignContract(row["issuer_id"], row["contract_sha256"], row["contract_source"])
