"""SQL of the redemption path: set-based statements over a whole micro-batch, on the raw asyncpg connection.

Each function is one round trip whatever the batch size (arrays in, `unnest` inside; the batch's write takes its
rows as JSON). Vouchers are locked in (campaign_id, id) order so that two batches touching the same vouchers can never
deadlock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import NamedTuple

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.invariants import invariant
from voucher_engine.ledger.model import PostingResult, PreparedPosting

# The CHECK that keeps a day's spend within the campaign's daily cap (db/schema/redemption.py): the one constraint
# whose violation on a redemption is the caller's answer (DAILY_BUDGET_EXHAUSTED) rather than a bug.
DAILY_CAP_CHECK = "ck_daily_spend_within_cap"

# One round trip opens the batch: find each job's key, nonce, voucher, merchant, campaign and earlier redemption
# under its idempotency key. One row per job, in job order. Two ways, the same columns:
#
# LOAD_BATCH, inside the batch's transaction: spend the nonces, lock the vouchers in (campaign_id, id) order.
# The earlier redemption is read with the statement's snapshot, taken before the voucher locks were granted; a
# retry racing its original on another worker may miss an original that committed while it waited for the lock.
# `raced` says so: the voucher locked is a newer version than the snapshot's. Only then (and only for a job that
# would be refused) does the caller look again after the locks (EXISTING_REDEMPTIONS); a raced retry that would
# succeed instead hits the unique (merchant_id, pos_txn_id) index and its batch is rerun job by job.
#
# PEEK_BATCH, outside any transaction: writes and locks nothing; `fresh` says the nonce is not spent yet and
# `version` is the voucher's as read. The batch's one write statement then spends the nonces and updates each
# voucher only at that version, or fails whole (WRITE_BATCH_WHOLE), and the batch is run again with LOAD_BATCH.
_OPEN_BATCH = """
WITH j AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
        AS j(key_id, nonce, campaign_id, voucher_id, pos_txn_id, ix)
){FRESH}, locked AS MATERIALIZED (
    SELECT v.campaign_id, v.id, v.wallet_id, v.status, v.valid_from, v.valid_until, v.face_value_fen,
           v.balance_fen, v.version
    FROM (SELECT DISTINCT campaign_id, voucher_id FROM j WHERE voucher_id IS NOT NULL) AS wanted
    CROSS JOIN LATERAL (SELECT * FROM vouchers v
                        WHERE v.campaign_id = wanted.campaign_id AND v.id = wanted.voucher_id LIMIT 1) AS v
    ORDER BY v.campaign_id, v.id{LOCK}
)
SELECT j.ix, j.key_id, {FRESH_COLUMN} AS fresh,
       m.id AS merchant_id, m.status AS merchant_status, m.mcc, m.region_code, m.tags,
       l.campaign_id, l.id, l.wallet_id, l.status, l.valid_from, l.valid_until, l.face_value_fen, l.balance_fen,
       l.version, {RACED} AS raced,
       c.status AS campaign_status, c.kind, c.daily_cap_fen, c.timezone, c.contract_sha256,
       {PREVIOUS},
       {REFUNDS_HERE} AS refunds_here
FROM j{FRESH_JOIN}
LEFT JOIN merchant_keys k ON k.key_id = j.key_id AND k.revoked_at IS NULL
LEFT JOIN merchants m ON m.id = k.merchant_id
LEFT JOIN locked l ON l.campaign_id = j.campaign_id AND l.id = j.voucher_id
LEFT JOIN campaigns c ON c.id = l.campaign_id
LEFT JOIN LATERAL (SELECT * FROM redemptions r
                   WHERE r.merchant_id = m.id AND r.pos_txn_id = j.pos_txn_id LIMIT 1) AS r ON true
ORDER BY j.ix
"""
# What a replay answers with (service.redemption_body), named `previous_<column>`.
PREVIOUS_COLUMNS = (
    "id",
    "campaign_id",
    "voucher_id",
    "merchant_id",
    "pos_txn_id",
    "request_sha256",
    "order_amount_fen",
    "subsidy_fen",
    "payable_fen",
    "refunded_fen",
    "subsidy_refunded_fen",
    "clawed_back_fen",
    "ledger_tx_id",
    "settled_at",
    # For naming the fields that differ when a retry's body does not match (IDEMPOTENCY_CONFLICT).
    "wallet_id",
    "items",
)
_PREVIOUS = ", ".join(f"r.{c} AS previous_{c}" for c in PREVIOUS_COLUMNS)
LOAD_BATCH = (
    _OPEN_BATCH.replace(
        "{FRESH}",
        """, fresh AS (
    INSERT INTO request_nonces (key_id, nonce, seen_at)
    SELECT key_id, nonce, $6 FROM j
    ON CONFLICT DO NOTHING
    RETURNING key_id, nonce
)""",
    )
    .replace("{LOCK}", "\n    FOR UPDATE OF v")
    .replace("{FRESH_COLUMN}", "f.nonce IS NOT NULL")
    .replace(
        "{RACED}",
        """l.version IS DISTINCT FROM (SELECT s.version FROM vouchers s
                                   WHERE s.campaign_id = l.campaign_id AND s.id = l.id LIMIT 1)""",
    )
    .replace("{FRESH_JOIN}", "\nLEFT JOIN fresh f ON f.key_id = j.key_id AND f.nonce = j.nonce")
    .replace("{PREVIOUS}", _PREVIOUS)
)
PEEK_BATCH = (
    _OPEN_BATCH.replace("{FRESH}", "")
    .replace("{LOCK}", "")
    .replace("{FRESH_COLUMN}", "spent.key_id IS NULL")
    .replace("{RACED}", "false")
    # LATERAL ... LIMIT 1, as for the earlier redemption: one index probe per nonce. As a NOT EXISTS the
    # planner may hash the whole nonce table instead (seen: 12 ms a batch, with its statistics stale).
    .replace(
        "{FRESH_JOIN}",
        """
LEFT JOIN LATERAL (SELECT n.key_id FROM request_nonces n
                   WHERE n.key_id = j.key_id AND n.nonce = j.nonce LIMIT 1) AS spent ON true""",
    )
    .replace("{PREVIOUS}", _PREVIOUS)
)


# Risk control's refund_reredeem signal (contracts/risk.py): this voucher's earlier redemptions at this merchant that
# were refunded. Only for a voucher that has been written since issue (version > 0) and only with risk rules on
# (`$n`): a fresh voucher, the till's usual case, costs no probe.
_REFUNDS_HERE = """CASE WHEN {ON} AND l.version > 0 THEN (SELECT count(*) FROM redemptions x
           WHERE x.campaign_id = l.campaign_id AND x.voucher_id = l.id AND x.merchant_id = m.id
             AND x.refunded_fen > 0) ELSE 0 END"""
LOAD_BATCH = LOAD_BATCH.replace("{REFUNDS_HERE}", _REFUNDS_HERE.replace("{ON}", "$7::boolean"))
PEEK_BATCH = PEEK_BATCH.replace("{REFUNDS_HERE}", _REFUNDS_HERE.replace("{ON}", "$6::boolean"))


def previous_of(row: asyncpg.Record) -> dict | None:
    """The earlier redemption LOAD_BATCH found under the job's idempotency key, as EXISTING_REDEMPTIONS's rows."""
    if row["previous_id"] is None:
        return None
    return {column: row[f"previous_{column}"] for column in PREVIOUS_COLUMNS}


# LATERAL ... LIMIT 1 (a unique key: the limit changes nothing but stops the planner flattening the subquery into
# a hash join over the whole table): one index probe per key, whatever the table's size.
EXISTING_REDEMPTIONS = """
SELECT r.* FROM unnest($1::text[], $2::text[]) AS k(merchant_id, pos_txn_id)
CROSS JOIN LATERAL (SELECT * FROM redemptions r
                    WHERE r.merchant_id = k.merchant_id AND r.pos_txn_id = k.pos_txn_id LIMIT 1) AS r
"""

# Lock each capped (campaign, day) row, making it first if this is the day's first redemption, and read what is
# spent. A plain SELECT ... FOR UPDATE would lock nothing on a new day, so two workers' batches could both see room
# for the last fen; ON CONFLICT DO UPDATE waits for a concurrent inserter and locks and answers the latest version.
LOCK_DAILY_SPEND = """
INSERT INTO daily_spend (campaign_id, day, spent_fen, cap_fen)
SELECT campaign_id, day, 0, cap_fen FROM unnest($1::text[], $2::date[], $3::bigint[]) AS w(campaign_id, day, cap_fen)
ORDER BY campaign_id, day
ON CONFLICT (campaign_id, day) DO UPDATE SET spent_fen = daily_spend.spent_fen
RETURNING campaign_id, day, spent_fen
"""

# What a batch decided: vouchers, redemption rows, daily spend, as WITH items (sent alone as WRITE_BATCH, or with
# the batch's ledger transactions as WRITE_AND_POST). Counts come back so the caller can assert every
# row landed.
#
# Each kind of row comes as one JSON array of rows ($2..$5, `json_rows`), not as one array argument per column: the
# driver checks every element of an array argument on its way out (a Python-level isinstance per element), and
# PostgreSQL reads one jsonb of rows no slower than twenty-three arrays (`python loadtest/bench_row_arguments.py`;
# docs/redemption.md, "The morning of 2026-12-03"). jsonb, not json: `->>` on json parses its row's text again for
# every field.
WRITE_BATCH_CTES = """
v AS (
    UPDATE vouchers v SET status = u->>2, balance_fen = (u->>3)::bigint, version = v.version + 1, updated_at = $1
    FROM jsonb_array_elements($2::jsonb) AS u
    WHERE v.campaign_id = u->>0 AND v.id = u->>1 AND v.version = (u->>4)::bigint
    RETURNING 1
), n AS (
    INSERT INTO request_nonces (key_id, nonce, seen_at)
    SELECT n->>0, n->>1, $6 FROM jsonb_array_elements($5::jsonb) AS n
    ON CONFLICT DO NOTHING
    RETURNING 1
), r AS (
    INSERT INTO redemptions (campaign_id, id, merchant_id, pos_txn_id, request_sha256, voucher_id, wallet_id,
                             order_amount_fen, subsidy_fen, payable_fen, ledger_tx_id, settled_at, spend_day, items)
    SELECT t->>0, t->>1, t->>2, t->>3, t->>4, t->>5, t->>6, (t->>7)::bigint, (t->>8)::bigint,
           (t->>7)::bigint - (t->>8)::bigint, t->>9, $1, (t->>10)::date, (t->>11)::jsonb
    FROM jsonb_array_elements($3::jsonb) AS t
    RETURNING 1
), d AS (
    INSERT INTO daily_spend (campaign_id, day, spent_fen, cap_fen)
    SELECT d->>0, (d->>1)::date, (d->>2)::bigint, (d->>3)::bigint FROM jsonb_array_elements($4::jsonb) AS d
    ON CONFLICT (campaign_id, day) DO UPDATE SET spent_fen = daily_spend.spent_fen + EXCLUDED.spent_fen
    RETURNING 1
)"""
WRITE_BATCH_RESULT = (
    "(SELECT count(*) FROM v) AS vouchers, (SELECT count(*) FROM r) AS redemptions, "
    "(SELECT count(*) FROM d) AS days, (SELECT count(*) FROM n) AS nonces"
)
# Every row named landed: each voucher at the version it was decided on, each nonce unspent until now.
WRITE_BATCH_WHOLE = """(SELECT count(*) FROM v) = jsonb_array_length($2::jsonb)
       AND (SELECT count(*) FROM r) = jsonb_array_length($3::jsonb) AND (SELECT count(*) FROM d) = jsonb_array_length($4::jsonb)
       AND (SELECT count(*) FROM n) = jsonb_array_length($5::jsonb)"""
# The last argument of the ledger's function in WRITE_AND_POST (evaluated before the call): the batch's own rows are
# written before its campaign's escrow is locked. Nonces, then vouchers, then accounts: the order a locked batch
# takes them in (LOAD_BATCH, then the write), so that the two ways cannot wait on each other in a cycle.
WRITE_BATCH_FIRST = (
    "(SELECT count(*) FROM n) + (SELECT count(*) FROM v) + (SELECT count(*) FROM r) + (SELECT count(*) FROM d)"
)
WRITE_BATCH = (
    f"WITH {WRITE_BATCH_CTES} SELECT {WRITE_BATCH_RESULT}, "
    f"batch_written_whole({WRITE_BATCH_WHOLE}, 'redemption rows') AS whole"
)

# The batch's rows and its ledger transactions in one statement (one round trip, all or nothing): the ledger's own
# posting function (`ledger_post_batch`, migration 0020) after WRITE_BATCH's items, its arguments the ledger's
# `PreparedPosting.args` ($7..$21). The `_WHOLE` form is for a statement that is its own transaction: unless every
# row of both landed, batch_written_whole raises and nothing is written.
_WRITE_AND_POST = f"""WITH {WRITE_BATCH_CTES}{{items}}
SELECT {WRITE_BATCH_RESULT}, l.moved, l.inserted, l.batch, l.totals{{whole}}
FROM ledger_post_batch($7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                       {WRITE_BATCH_FIRST}{{items_first}}) AS l"""
_WHOLE = ",\n       batch_written_whole(l.whole AND {checks}, 'ledger or redemption rows') AS whole"
WRITE_AND_POST = _WRITE_AND_POST.format(items="", items_first="", whole="")
WRITE_AND_POST_WHOLE = _WRITE_AND_POST.format(items="", items_first="", whole=_WHOLE.format(checks=WRITE_BATCH_WHOLE))
# Where the arguments of another room's items in WRITE_AND_POST_WHOLE start (StatementItems).
ITEMS_FIRST = 22


class StatementItems(NamedTuple):
    """WITH items another room writes in an unlocked batch's one statement (risk control: the batch's flags and
    their events), so that they land exactly when the batch does: `ctes` (', name AS (...)'..., their arguments
    numbered from ITEMS_FIRST), `written` (a count of their rows, evaluated before the ledger locks the escrow),
    `whole` (true when all their rows landed) and `args`."""

    ctes: str
    written: str
    whole: str
    args: tuple


@functools.lru_cache(maxsize=8)
def write_and_post_whole_with(ctes: str, written: str, whole: str) -> str:
    """WRITE_AND_POST_WHOLE with another room's items (one text per kind of item, so the cache stays small)."""
    return _WRITE_AND_POST.format(
        items=ctes, items_first=f" + {written}", whole=_WHOLE.format(checks=f"{WRITE_BATCH_WHOLE} AND {whole}")
    )


CONTRACT_SOURCE = "SELECT contract_source FROM campaigns WHERE contract_sha256 = $1 LIMIT 1"


async def load_batch(
    conn: asyncpg.Connection,
    jobs: list[tuple[str, str, str | None, str | None, str | None]],
    real_now: datetime,
    *,
    locked: bool,
    risk: bool = True,
) -> list[asyncpg.Record]:
    """Rows of LOAD_BATCH (`locked`) or PEEK_BATCH for jobs of (key_id, nonce, campaign_id, voucher_id, pos_txn_id),
    in job order; `risk`: read what the per-redemption risk rules need."""
    columns = list(map(list, zip(*jobs)))
    rows = await (
        conn.fetch(LOAD_BATCH, *columns, real_now, risk) if locked else conn.fetch(PEEK_BATCH, *columns, risk)
    )
    invariant(len(rows) == len(jobs), "one row read per job", len(rows), len(jobs))
    return rows


async def existing_redemptions(
    conn: asyncpg.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], asyncpg.Record]:
    rows = await conn.fetch(EXISTING_REDEMPTIONS, [m for m, _ in keys], [p for _, p in keys])
    return {(row["merchant_id"], row["pos_txn_id"]): row for row in rows}


async def daily_spend(conn: asyncpg.Connection, keys: list[tuple[str, date, int]]) -> dict[tuple[str, date], int]:
    """What each capped (campaign, day) has spent, its row locked to the end of the transaction; keys carry caps."""
    rows = await conn.fetch(
        LOCK_DAILY_SPEND, [c for c, _, _ in keys], [d for _, d, _ in keys], [cap for _, _, cap in keys]
    )
    return {(row["campaign_id"], row["day"]): row["spent_fen"] for row in rows}


class NewRedemption(NamedTuple):
    """One redemption row as WRITE_BATCH inserts it (its fields in the order of the statement's arrays)."""

    campaign_id: str
    id: str
    merchant_id: str
    pos_txn_id: str | None
    request_sha256: str | None
    voucher_id: str
    wallet_id: str
    order_amount_fen: int
    subsidy_fen: int
    ledger_tx_id: str | None
    spend_day: date | None
    items_json: str | None


def write_args(
    at: datetime,
    vouchers: list[tuple[str, str, str, int, int]],
    redemptions: list[NewRedemption],
    spend: list[tuple[str, date, int, int]],
    nonces: list[tuple[str, str]],
    seen_at: datetime,
) -> tuple:
    """WRITE_BATCH's arguments. Vouchers (campaign_id, id, status, balance, version read); redemptions (campaign_id,
    id, merchant_id, pos_txn_id, request_sha256, voucher_id, wallet_id, order_fen, subsidy_fen, ledger_tx_id,
    spend_day, items_json); daily spend (campaign_id, day, amount_fen, cap_fen), at most one row per (campaign_id,
    day); nonces to spend (key_id, nonce), distinct, seen at `seen_at`."""
    return (at, json_rows(vouchers), json_rows(redemptions), json_rows(spend), json_rows(nonces), seen_at)


def json_rows(rows: Sequence[tuple]) -> str:
    """Rows as one JSON array of arrays (dates as ISO 8601 text), read in SQL by `json_array_elements` and `->>`."""
    return orjson.dumps(rows, default=tuple).decode()


class Written(NamedTuple):
    """How many rows of each kind a batch's write wrote."""

    vouchers: int
    redemptions: int
    days: int
    nonces: int


def check_written(written: Written, vouchers: list, redemptions: list, spend: list, nonces: list) -> None:
    # The pair of the decisions made in Python: every row they named was written (in an unlocked batch,
    # WRITE_BATCH_WHOLE has already made sure of it in the database; this says so here too).
    invariant(
        written.vouchers == len(vouchers), "every voucher decided on was written", written.vouchers, len(vouchers)
    )
    invariant(
        written.redemptions == len(redemptions),
        "every redemption decided on was written",
        written.redemptions,
        len(redemptions),
    )
    invariant(written.days == len(spend), "every day's spend decided on was written", written.days, len(spend))
    invariant(written.nonces == len(nonces), "every nonce to spend was spent", written.nonces, len(nonces))


def _written(row: asyncpg.Record) -> Written:
    return Written(row["vouchers"], row["redemptions"], row["days"], row["nonces"])


async def write_batch(
    conn: asyncpg.Connection,
    at: datetime,
    vouchers: list[tuple[str, str, str, int, int]],
    redemptions: list[NewRedemption],
    spend: list[tuple[str, date, int, int]],
    nonces: list[tuple[str, str]],
    seen_at: datetime,
) -> None:
    """WRITE_BATCH alone (a batch that moves no money: lazy expiry, spent nonces)."""
    row = await conn.fetchrow(WRITE_BATCH, *write_args(at, vouchers, redemptions, spend, nonces, seen_at))
    check_written(_written(row), vouchers, redemptions, spend, nonces)


async def write_batch_and_post(
    conn: asyncpg.Connection,
    at: datetime,
    vouchers: list[tuple[str, str, str, int, int]],
    redemptions: list[NewRedemption],
    spend: list[tuple[str, date, int, int]],
    nonces: list[tuple[str, str]],
    seen_at: datetime,
    posting: PreparedPosting,
    *,
    whole: bool,
    items: StatementItems | None = None,
) -> tuple[Written, PostingResult]:
    """WRITE_AND_POST: the batch's rows (as `write_batch`) and its ledger transactions, in one round trip.

    `whole`: the statement is its own transaction (no BEGIN): it writes everything or raises
    asyncpg.SerializationError and writes nothing. The caller wraps it in `ledger.refusals(posting)` and hands the
    `PostingResult` to `ledger.landed`. `items`: another room's rows, in a `whole` statement only."""
    invariant(items is None or whole, "another room's items go only in a statement that is its own transaction")
    if items is not None:
        sql = write_and_post_whole_with(items.ctes, items.written, items.whole)
    else:
        sql = WRITE_AND_POST_WHOLE if whole else WRITE_AND_POST
    row = await conn.fetchrow(
        sql,
        *write_args(at, vouchers, redemptions, spend, nonces, seen_at),
        *posting.args,
        *(items.args if items is not None else ()),
    )
    return _written(row), PostingResult(row["moved"], row["inserted"], row["batch"], row["totals"])


async def contract_source(conn: asyncpg.Connection, sha256: str) -> str:
    return await conn.fetchval(CONTRACT_SOURCE, sha256)


# The caller's own latest redemption of a voucher, for a VOUCHER_ALREADY_REDEEMED answer (the refusal path only).
OWN_REDEMPTION_OF_VOUCHER = """
SELECT r.id, r.pos_txn_id FROM redemptions r
JOIN merchant_keys k ON k.merchant_id = r.merchant_id AND k.key_id = $3
WHERE r.campaign_id = $1 AND r.voucher_id = $2
ORDER BY r.settled_at DESC LIMIT 1
"""


async def own_redemption_of_voucher(
    conn: asyncpg.Connection, campaign_id: str, voucher_id: str, key_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(OWN_REDEMPTION_OF_VOUCHER, campaign_id, voucher_id, key_id)


# -- code guessing (guard.py) --------------------------------------------------------------------------------------

# Add one to this minute's count and answer the window's total (the CTE's snapshot does not see its own upsert,
# so the current minute comes from RETURNING and the earlier minutes from the table). Rows of this key older than
# the window go in the same statement.
CODE_FAILURE = """
WITH up AS (
    INSERT INTO code_guess_failures (key_id, minute, failures) VALUES ($1, $2, 1)
    ON CONFLICT (key_id, minute) DO UPDATE SET failures = code_guess_failures.failures + 1
    RETURNING failures
), old AS (
    DELETE FROM code_guess_failures WHERE key_id = $1 AND minute < $3
)
SELECT (SELECT failures FROM up)
     + COALESCE((SELECT sum(failures) FROM code_guess_failures WHERE key_id = $1 AND minute >= $3 AND minute < $2),
                0) AS total
"""
_PRUNE_CODE_FAILURES = sa.text("DELETE FROM code_guess_failures WHERE minute < :cutoff")


async def record_code_failure(conn: asyncpg.Connection, key_id: str, minute: datetime, since: datetime) -> int:
    """Count one unknown voucher code of `key_id` in `minute`; answer the key's total from `since` on."""
    return int(await conn.fetchval(CODE_FAILURE, key_id, minute, since))


async def delete_code_failures_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """Delete the counts of minutes before `cutoff`; answer how many rows went."""
    return (await conn.execute(_PRUNE_CODE_FAILURES, {"cutoff": cutoff})).rowcount or 0


# -- refunds (refunds.py) ------------------------------------------------------------------------------------------

# A refund holds its campaign's row in share mode: refunds do not wait for each other, but a lifecycle move
# (close above all) waits for the refunds in flight, and a refund that starts during a close waits for it and then
# sees the campaign closed (its clawback goes on to the funders). Without it a refund could read "active", and post
# its clawback into an escrow that a close had just emptied.
LOCK_CAMPAIGN = "SELECT status, contract_sha256, contract_source FROM campaigns WHERE id = $1 FOR SHARE"
LOCK_REDEMPTION = "SELECT * FROM redemptions WHERE campaign_id = $1 AND id = $2 FOR UPDATE"
READ_REDEMPTION = "SELECT * FROM redemptions WHERE campaign_id = $1 AND id = $2"
FIND_BY_POS_TXN = "SELECT * FROM redemptions WHERE merchant_id = $1 AND pos_txn_id = $2"
READ_REFUND = "SELECT * FROM refunds WHERE campaign_id = $1 AND redemption_id = $2 AND refund_id = $3"
LOCK_VOUCHER = """
SELECT v.status, v.valid_until, v.face_value_fen, v.balance_fen, c.status AS campaign_status, c.kind
FROM vouchers v JOIN campaigns c ON c.id = v.campaign_id
WHERE v.campaign_id = $1 AND v.id = $2 FOR UPDATE OF v
"""
UPDATE_VOUCHER = """
UPDATE vouchers SET status = $3, balance_fen = $4, version = version + 1, updated_at = $5
WHERE campaign_id = $1 AND id = $2
"""
UPDATE_REDEMPTION = """
UPDATE redemptions SET refunded_fen = refunded_fen + $3, subsidy_refunded_fen = subsidy_refunded_fen + $4
WHERE campaign_id = $1 AND id = $2 RETURNING *
"""
GIVE_BACK_DAILY = """
UPDATE daily_spend SET spent_fen = spent_fen - $3 WHERE campaign_id = $1 AND day = $2
"""
INSERT_REFUND = """
INSERT INTO refunds (campaign_id, redemption_id, refund_id, request_sha256, amount_fen, subsidy_clawback_fen,
                     reason, ledger_tx_id, voucher_restored, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING *
"""


async def lock_campaign_for_refund(conn: asyncpg.Connection, campaign_id: str) -> asyncpg.Record | None:
    """The campaign's status and contract (the refund rule needs its minimum order), its row held in share mode."""
    return await conn.fetchrow(LOCK_CAMPAIGN, campaign_id)


async def lock_redemption(conn: asyncpg.Connection, campaign_id: str, redemption_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_REDEMPTION, campaign_id, redemption_id)


async def read_redemption(conn: asyncpg.Connection, campaign_id: str, redemption_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(READ_REDEMPTION, campaign_id, redemption_id)


async def find_by_pos_txn(conn: asyncpg.Connection, merchant_id: str, pos_txn_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(FIND_BY_POS_TXN, merchant_id, pos_txn_id)


async def read_refund(
    conn: asyncpg.Connection, campaign_id: str, redemption_id: str, refund_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(READ_REFUND, campaign_id, redemption_id, refund_id)


async def lock_voucher_for_refund(conn: asyncpg.Connection, campaign_id: str, voucher_id: str) -> asyncpg.Record:
    """The voucher (status, window, face value, balance) with its campaign's status and kind, locked."""
    row = await conn.fetchrow(LOCK_VOUCHER, campaign_id, voucher_id)
    if row is None:  # a redemption's voucher always exists (a foreign key)
        raise RuntimeError(f"voucher {voucher_id} of a redemption is missing")
    return row


async def set_voucher_state(
    conn: asyncpg.Connection, campaign_id: str, voucher_id: str, status: str, balance_fen: int, at: datetime
) -> None:
    await conn.execute(UPDATE_VOUCHER, campaign_id, voucher_id, status, balance_fen, at)


async def add_refunded(
    conn: asyncpg.Connection, campaign_id: str, redemption_id: str, amount_fen: int, subsidy_fen: int
) -> asyncpg.Record:
    """Add a refund's amounts to its redemption; answer the redemption as it now is."""
    row = await conn.fetchrow(UPDATE_REDEMPTION, campaign_id, redemption_id, amount_fen, subsidy_fen)
    if row is None:  # the caller holds the row's lock: it cannot have gone
        raise RuntimeError(f"redemption {redemption_id} vanished under its lock")
    return row


async def give_back_daily_spend(conn: asyncpg.Connection, campaign_id: str, day: date, amount_fen: int) -> None:
    await conn.execute(GIVE_BACK_DAILY, campaign_id, day, amount_fen)


# A clawback (settlement/clawbacks.py) marks what it took back on the redemption, under the redemption's lock.
MARK_CLAWED_BACK = "UPDATE redemptions SET clawed_back_fen = $3 WHERE campaign_id = $1 AND id = $2 RETURNING *"


async def mark_clawed_back(
    conn: asyncpg.Connection, campaign_id: str, redemption_id: str, amount_fen: int
) -> asyncpg.Record:
    """Record a clawback's amount on its redemption; answer the redemption as it now is."""
    row = await conn.fetchrow(MARK_CLAWED_BACK, campaign_id, redemption_id, amount_fen)
    if row is None:  # the caller holds the row's lock: it cannot have gone
        raise RuntimeError(f"redemption {redemption_id} vanished under its lock")
    return row


async def insert_refund(
    conn: asyncpg.Connection,
    campaign_id: str,
    redemption_id: str,
    refund_id: str,
    request_sha256: str,
    amount_fen: int,
    clawback_fen: int,
    reason: str | None,
    ledger_tx_id: str | None,
    voucher_restored: bool,
    at: datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        INSERT_REFUND,
        campaign_id,
        redemption_id,
        refund_id,
        request_sha256,
        amount_fen,
        clawback_fen,
        reason,
        ledger_tx_id,
        voucher_restored,
        at,
    )
    if row is None:
        raise RuntimeError("INSERT ... RETURNING answered no row")
    return row


# -- the till's refund (refunds.refund_signed) ---------------------------------------------------------------------

# A till's refund opens with the half of its signature check that needs the database, in the refund's own
# transaction: the key is known and not revoked, then its nonce is spent (only for a live key: nobody without the
# secret can burn a till's nonces), and the campaign's row is held in share mode as LOCK_CAMPAIGN does. One round
# trip instead of a transaction of its own (BEGIN, two statements, COMMIT) before the refund's.
OPEN_REFUND = """
WITH k AS (
    SELECT merchant_id FROM merchant_keys WHERE key_id = $1 AND revoked_at IS NULL
), n AS (
    INSERT INTO request_nonces (key_id, nonce, seen_at)
    SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM k)
    ON CONFLICT DO NOTHING
    RETURNING 1
), c AS (
    SELECT status, contract_sha256, contract_source FROM campaigns WHERE id = $4 FOR SHARE
)
SELECT (SELECT merchant_id FROM k) AS merchant_id, EXISTS (SELECT 1 FROM n) AS fresh,
       c.status, c.contract_sha256, c.contract_source
FROM (SELECT 1) AS one LEFT JOIN c ON true
"""
# The key's check and the nonce alone: a refund whose writes failed still spends its nonce, as every signed
# request does.
SPEND_NONCE = """
INSERT INTO request_nonces (key_id, nonce, seen_at)
SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM merchant_keys WHERE key_id = $1 AND revoked_at IS NULL)
ON CONFLICT DO NOTHING
"""
# The redemption and its voucher, both locked (in that order, as lock_redemption then lock_voucher_for_refund),
# with the voucher's campaign's status and kind. The earlier refund under the same refund_id is read by its own
# statement after this one: a statement's snapshot is taken before its locks are granted, and a refund of this
# redemption that committed while this one waited must be seen.
_REDEMPTION_AND_VOUCHER = """r.*, v.status AS voucher_status, v.valid_until AS voucher_valid_until,
       v.face_value_fen AS voucher_face_value_fen, v.balance_fen AS voucher_balance_fen, v.version AS voucher_version,
       c.status AS voucher_campaign_status, c.kind AS voucher_kind"""
LOCK_REDEMPTION_AND_VOUCHER = f"""
SELECT {_REDEMPTION_AND_VOUCHER}
FROM redemptions r
JOIN vouchers v ON v.campaign_id = r.campaign_id AND v.id = r.voucher_id
JOIN campaigns c ON c.id = v.campaign_id
WHERE r.campaign_id = $1 AND r.id = $2
FOR UPDATE OF r, v
"""
# A refund's unlocked way (refunds.py) reads, in one statement without locks, what the locked way reads in three:
# the key, whether the nonce is spent, the campaign, the redemption with its voucher, whether the refund_id is taken.
PEEK_REFUND = f"""
SELECT {_REDEMPTION_AND_VOUCHER},
       k.merchant_id AS key_merchant_id,
       EXISTS (SELECT 1 FROM request_nonces WHERE key_id = $3 AND nonce = $4) AS nonce_spent,
       EXISTS (SELECT 1 FROM refunds WHERE campaign_id = $1 AND redemption_id = $2 AND refund_id = $5) AS refund_taken,
       c.contract_sha256
FROM (SELECT 1) AS one
LEFT JOIN merchant_keys k ON k.key_id = $3 AND k.revoked_at IS NULL
LEFT JOIN redemptions r ON r.campaign_id = $1 AND r.id = $2
LEFT JOIN vouchers v ON v.campaign_id = r.campaign_id AND v.id = r.voucher_id
LEFT JOIN campaigns c ON c.id = $1
"""
# A refund's own rows, as WITH items: the redemption's refunded amounts, the refund, the voucher given back (when
# $11), the day's spend given back (when $15). Sent alone, or before the ledger's posting in its statement
# (REFUND_WRITE_AND_POST). The redemption is updated only at the amounts it was decided on ($17, $18) and the
# voucher only at its version ($19): under the locked way's locks they cannot differ; on the unlocked way a refund
# that committed meanwhile makes the row not match, and the statement refuses itself (_ALONE_WHOLE).
REFUND_WRITE_CTES = """
r AS (
    UPDATE redemptions SET refunded_fen = refunded_fen + $3, subsidy_refunded_fen = subsidy_refunded_fen + $4
    WHERE campaign_id = $1 AND id = $2 AND refunded_fen = $17 AND subsidy_refunded_fen = $18 AND clawed_back_fen = 0
    RETURNING 1
), f AS (
    INSERT INTO refunds (campaign_id, redemption_id, refund_id, request_sha256, amount_fen, subsidy_clawback_fen,
                         reason, ledger_tx_id, voucher_restored, created_at)
    VALUES ($1, $2, $5, $6, $3, $4, $7, $8, $9, $10)
    RETURNING 1
), v AS (
    UPDATE vouchers SET status = $12, balance_fen = $13, version = version + 1, updated_at = $10
    WHERE campaign_id = $1 AND id = $14 AND $11 AND version = $19
    RETURNING 1
), d AS (
    UPDATE daily_spend SET spent_fen = spent_fen - $4 WHERE campaign_id = $1 AND day = $16 AND $15
    RETURNING 1
)"""
REFUND_WRITE_RESULT = (
    "(SELECT count(*) FROM r) AS redemptions, (SELECT count(*) FROM f) AS refunds, "
    "(SELECT count(*) FROM v) AS vouchers, (SELECT count(*) FROM d) AS days"
)
# Read by the ledger's account locks: the refund's rows are written before its campaign's escrow is locked.
REFUND_WRITE_FIRST = "(SELECT count(*) FROM r) + (SELECT count(*) FROM f) + (SELECT count(*) FROM v)"
REFUND_WRITE = f"WITH {REFUND_WRITE_CTES} SELECT {REFUND_WRITE_RESULT}"
# The refund's rows and its posting in one statement (as WRITE_AND_POST): `ledger_post_batch` (migration 0020) after
# the refund's items, its arguments the ledger's `PreparedPosting.args` ($20..$34).
_POSTING_ARGS = ", ".join(f"${n}" for n in range(20, 35))
REFUND_WRITE_AND_POST = f"""WITH {REFUND_WRITE_CTES}
SELECT {REFUND_WRITE_RESULT}, l.moved, l.inserted, l.batch, l.totals
FROM ledger_post_batch({_POSTING_ARGS}, {REFUND_WRITE_FIRST}) AS l"""


def _alone_items(first: int, event_sql: str) -> str:
    """The unlocked way's own WITH items, their arguments (RefundAlone's) numbered from `first`: the nonce spent
    (for a live key only), the campaign's row held in share mode at the status it was decided on (a close that
    committed meanwhile makes it not match; one in progress is waited for, as LOCK_CAMPAIGN makes it), the event."""
    key, nonce, seen_at, status = (f"${first + i}" for i in range(4))
    return f""", n AS (
    INSERT INTO request_nonces (key_id, nonce, seen_at)
    SELECT {key}, {nonce}, {seen_at}
    WHERE EXISTS (SELECT 1 FROM merchant_keys WHERE key_id = {key} AND revoked_at IS NULL)
    ON CONFLICT DO NOTHING
    RETURNING 1
), c AS (
    SELECT 1 FROM campaigns WHERE id = $1 AND status = {status} FOR SHARE
), e AS (
    {event_sql}
)"""


# The campaign first, then the nonce, then the refund's rows, then (in the posting) the escrow: the order the
# locked way and a close take them in, so that neither can wait on the other in a cycle.
_ALONE_FIRST = f"(SELECT count(*) FROM c) + (SELECT count(*) FROM n) + {REFUND_WRITE_FIRST} + (SELECT count(*) FROM e)"
# Every row named landed, each at what it was decided on; else serialization_failure, and nothing is written.
_ALONE_WHOLE = """batch_written_whole((SELECT count(*) FROM c) = 1 AND (SELECT count(*) FROM n) = 1
       AND (SELECT count(*) FROM r) = 1 AND (SELECT count(*) FROM f) = 1 AND (SELECT count(*) FROM e) = 1
       AND (SELECT count(*) FROM v) = $11::int{ledger}, 'refund rows')"""


def refund_alone(event_sql: Callable[[int], str], *, post: bool) -> str:
    """The unlocked way's one statement, its own transaction: REFUND_WRITE's items, RefundAlone's, and (`post`) the
    ledger's posting, all or nothing."""
    if not post:
        # The campaign's count comes first in the select list, so that its row is locked before the refund's rows
        # (_ALONE_FIRST's order, which the posting's argument gives the other form).
        items = _alone_items(20, event_sql(24))
        return (
            f"WITH {REFUND_WRITE_CTES}{items}\nSELECT (SELECT count(*) FROM c) AS campaigns, "
            f"{REFUND_WRITE_RESULT}, {_ALONE_WHOLE.format(ledger='')} AS whole"
        )
    items = _alone_items(35, event_sql(39))
    return f"""WITH {REFUND_WRITE_CTES}{items}
SELECT {REFUND_WRITE_RESULT}, l.moved, l.inserted, l.batch, l.totals, {_ALONE_WHOLE.format(ledger=" AND l.whole")} AS whole
FROM ledger_post_batch({_POSTING_ARGS}, {_ALONE_FIRST}) AS l"""


class RefundWrite(NamedTuple):
    """What a refund writes (REFUND_WRITE_CTES's arguments, in their order)."""

    campaign_id: str
    redemption_id: str
    amount_fen: int
    clawback_fen: int
    refund_id: str
    request_sha256: str
    reason: str
    ledger_tx_id: str | None
    voucher_restored: bool
    at: datetime
    voucher_changes: bool
    voucher_status: str
    voucher_balance_fen: int
    voucher_id: str
    daily_changes: bool
    spend_day: date | None
    # What it was decided on: the redemption's refunded amounts and the voucher's version.
    refunded_fen: int
    subsidy_refunded_fen: int
    voucher_version: int


class RefundAlone(NamedTuple):
    """The unlocked way's own arguments (_alone_items's, in their order), before the event's."""

    key_id: str
    nonce: str
    seen_at: datetime
    campaign_status: str


async def open_refund(
    conn: asyncpg.Connection, key_id: str, nonce: str, seen_at: datetime, campaign_id: str
) -> asyncpg.Record:
    """OPEN_REFUND's row: merchant_id (None: the key is unknown or revoked), fresh (the nonce was unspent), and the
    campaign's status and contract (None when there is no such campaign), its row held in share mode."""
    return await conn.fetchrow(OPEN_REFUND, key_id, nonce, seen_at, campaign_id)


async def spend_nonce(conn: asyncpg.Connection, key_id: str, nonce: str, seen_at: datetime) -> None:
    await conn.execute(SPEND_NONCE, key_id, nonce, seen_at)


async def lock_redemption_and_voucher(
    conn: asyncpg.Connection, campaign_id: str, redemption_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_REDEMPTION_AND_VOUCHER, campaign_id, redemption_id)


async def write_refund(conn: asyncpg.Connection, write: RefundWrite) -> asyncpg.Record:
    """REFUND_WRITE alone (a refund that moves no money)."""
    return await conn.fetchrow(REFUND_WRITE, *write)


async def write_refund_and_post(
    conn: asyncpg.Connection, write: RefundWrite, posting: PreparedPosting
) -> tuple[asyncpg.Record, PostingResult]:
    """REFUND_WRITE_AND_POST: the refund's rows and its ledger posting in one round trip. The caller wraps it in
    `ledger.refusals(posting)` and hands the `PostingResult` to `ledger.landed`."""
    row = await conn.fetchrow(REFUND_WRITE_AND_POST, *write, *posting.args)
    return row, PostingResult(row["moved"], row["inserted"], row["batch"], row["totals"])


async def peek_refund(
    conn: asyncpg.Connection, campaign_id: str, redemption_id: str, key_id: str, nonce: str, refund_id: str
) -> asyncpg.Record:
    """PEEK_REFUND's one row (its redemption's columns None when there is no such redemption)."""
    return await conn.fetchrow(PEEK_REFUND, campaign_id, redemption_id, key_id, nonce, refund_id)


async def write_refund_alone(
    conn: asyncpg.Connection,
    statement: str,
    write: RefundWrite,
    alone: RefundAlone,
    event_args: tuple,
    posting: PreparedPosting | None,
) -> tuple[asyncpg.Record, PostingResult | None]:
    """`refund_alone(…)`'s statement, outside any transaction: everything, or asyncpg.SerializationError (or the
    error of a constraint) and nothing."""
    if posting is None:
        return await conn.fetchrow(statement, *write, *alone, *event_args), None
    row = await conn.fetchrow(statement, *write, *posting.args, *alone, *event_args)
    return row, PostingResult(row["moved"], row["inserted"], row["batch"], row["totals"])


def check_refund_written(row: asyncpg.Record, write: RefundWrite) -> None:
    # The pair of the decision made in Python: every row it named was written.
    invariant(row["redemptions"] == 1, "the refunded redemption was updated", row["redemptions"])
    invariant(row["refunds"] == 1, "the refund row was written", row["refunds"])
    invariant(row["vouchers"] == int(write.voucher_changes), "the voucher given back was written", row["vouchers"])
    invariant(row["days"] <= int(write.daily_changes), "at most the refund's day was given back", row["days"])
