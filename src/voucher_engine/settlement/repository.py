"""SQL of merchant settlement. Set-based where a run touches many merchants; every function runs in the caller's
transaction on the asyncpg connection underneath it (`voucher_engine.db.raw.driver`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

# One payout run at a time, across every worker and replica (held to the end of the run's transaction).
RUN_LOCK_KEY = 7_412_930_113

LOCK_RUNS = "SELECT pg_advisory_xact_lock($1)"

# A run's working set lives in two temporary tables dropped at commit, so that a run over 100,000 merchants holds
# one chunk of them in memory at a time, never the whole list.
RUN_TABLES = """
CREATE TEMP TABLE payout_run_accounts (account text PRIMARY KEY) ON COMMIT DROP;
CREATE TEMP TABLE payout_run_payable (merchant_id text PRIMARY KEY, settlement_wallet text NOT NULL,
                                      amount_fen bigint NOT NULL) ON COMMIT DROP
"""

# The merchant accounts a run may pay, locked in name order (the order every ledger batch locks accounts in, so a
# run and a redemption batch never wait on each other in a cycle). A held merchant is left out. After the locks
# no redemption can move these balances until the run commits, so the next statement reads them still.
LOCK_PAYABLE_ACCOUNTS = """
INSERT INTO payout_run_accounts
SELECT a.account FROM ledger_accounts a
JOIN merchants m ON a.account = 'merchant:' || m.id
WHERE a.kind = 'merchant' AND a.balance_fen > 0 AND m.payout_hold_since IS NULL
ORDER BY a.account
FOR UPDATE OF a
"""

# What each locked account holds of money credited before the cutoff: its balance less what redemptions credited
# it at or after the cutoff (a failed payout's reversal is old money: it stays payable). Outflows after the cutoff
# (refunds, clawbacks) have already lowered the balance, so they are netted, never paid. A statement of its own,
# after the locks: its snapshot then holds every commit that moved these accounts. `at >= cutoff` reads the BRIN
# index on the transactions' time.
PAYABLE_AMOUNTS = """
INSERT INTO payout_run_payable
WITH since AS (
    SELECT p.account, sum(p.amount_fen)::bigint AS credited_fen
    FROM ledger_transactions t
    CROSS JOIN LATERAL unnest(t.accounts, t.amounts_fen) AS p(account, amount_fen)
    WHERE t.kind = 'redeem' AND t.at >= $1 AND p.amount_fen > 0
      AND p.account IN (SELECT account FROM payout_run_accounts)
    GROUP BY p.account
)
SELECT m.id, m.settlement_wallet, (a.balance_fen - coalesce(s.credited_fen, 0))::bigint
FROM payout_run_accounts r
JOIN ledger_accounts a ON a.account = r.account
JOIN merchants m ON a.account = 'merchant:' || m.id
LEFT JOIN since s ON s.account = a.account
WHERE a.balance_fen - coalesce(s.credited_fen, 0) > 0
"""
PAYABLE_PAGE = """
SELECT merchant_id, settlement_wallet, amount_fen FROM payout_run_payable
WHERE ($1::text IS NULL OR merchant_id > $1) ORDER BY merchant_id LIMIT $2
"""
PAYABLE_COUNT = "SELECT count(*) FROM payout_run_payable"

# Registration opens them (merchants.service); this is for a merchant registered before settlement existed. The
# anti-join first: an ON CONFLICT insert checks each row's CHECKs before it finds the conflict.
OPEN_ACCOUNTS = """
INSERT INTO ledger_accounts (account, kind, balance_fen, opened_at)
SELECT n.account, split_part(n.account, ':', 1), 0, $2 FROM unnest($1::text[]) AS n(account)
WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.account = n.account)
ON CONFLICT (account) DO NOTHING
"""

INSERT_RUN = """
INSERT INTO payout_runs (id, cutoff, total_fen, item_count, created_by, created_at) VALUES ($1, $2, 0, 0, $3, $4)
"""
FINISH_RUN = "UPDATE payout_runs SET total_fen = $2, item_count = $3 WHERE id = $1 RETURNING *"

INSERT_ITEMS = """
INSERT INTO payout_items (run_id, id, merchant_id, settlement_wallet, amount_fen, status, reference, ledger_tx_id)
SELECT $1, id, merchant_id, wallet, amount_fen, 'sent', id, tx_id
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS i(id, merchant_id, wallet, amount_fen, tx_id)
"""

GET_RUN = "SELECT * FROM payout_runs WHERE id = $1"
LIST_RUNS = "SELECT * FROM payout_runs WHERE ($1::text IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
ITEMS_PAGE = """
SELECT * FROM payout_items WHERE run_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3
"""
LOCK_ITEMS = "SELECT * FROM payout_items WHERE run_id = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE"
CONFIRM_ITEM = """
UPDATE payout_items SET status = $3, confirm_tx_id = $4, bank_reference = $5, confirmed_at = $6
WHERE run_id = $1 AND id = $2 AND status = 'sent' RETURNING *
"""

# The bank file, streamed in pages by item id.
FILE_PAGE = """
SELECT id, merchant_id, settlement_wallet, amount_fen, reference FROM payout_items
WHERE run_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3
"""

# -- holds -----------------------------------------------------------------------------------------------------------

SET_HOLD = """
UPDATE merchants SET payout_hold_reason = $2, payout_hold_since = coalesce(payout_hold_since, $3)
WHERE id = $1 RETURNING id
"""
CLEAR_HOLD = "UPDATE merchants SET payout_hold_reason = NULL, payout_hold_since = NULL WHERE id = $1 RETURNING id"
HOLD_EVENT = "INSERT INTO payout_hold_events (merchant_id, action, reason, actor, at) VALUES ($1, $2, $3, $4, $5)"
# A hold put on by a cause (risk control): answers whether the merchant was off hold before (the cause put it on).
SET_HOLD_NEWLY = """
WITH old AS (SELECT id, payout_hold_since FROM merchants WHERE id = $1 FOR UPDATE)
UPDATE merchants m SET payout_hold_reason = $2, payout_hold_since = coalesce(m.payout_hold_since, $3)
FROM old WHERE m.id = old.id RETURNING old.payout_hold_since IS NULL AS newly
"""
# The actors of the holds since the merchant's last release (who the current hold stands for).
HOLDERS_SINCE_RELEASE = """
SELECT coalesce(array_agg(DISTINCT e.actor), '{}') FROM payout_hold_events e
WHERE e.merchant_id = $1 AND e.action = 'hold'
  AND e.id > coalesce((SELECT max(r.id) FROM payout_hold_events r
                       WHERE r.merchant_id = $1 AND r.action = 'release'), 0)
"""

# -- statements ------------------------------------------------------------------------------------------------------

# Every transaction that moved `account` (sequenced, through its history index; or still queued for the sequencer),
# with the account's own amount in it. Each committed transaction is in exactly one of the two.
ACCOUNT_MOVES = """
WITH moves AS (
    SELECT t.id, t.kind, t.at, t.refs, t.accounts, t.amounts_fen, s.seq
    FROM ledger_entries e JOIN ledger_sequence s ON s.seq = e.seq JOIN ledger_transactions t ON t.id = s.tx_id
    WHERE e.account = $1
    UNION ALL
    SELECT t.id, t.kind, t.at, t.refs, t.accounts, t.amounts_fen, NULL
    FROM ledger_transactions t
    WHERE t.id IN (SELECT unnest(tx_ids) FROM ledger_pending) AND $1 = ANY(t.accounts)
)
SELECT m.id, m.kind, m.at, m.seq, m.refs->>'redemption_id' AS redemption_id, m.refs->>'campaign_id' AS campaign_id,
       m.refs->>'payout_item_id' AS payout_item_id,
       (SELECT sum(p.amount_fen) FROM unnest(m.accounts, m.amounts_fen) AS p(account, amount_fen)
        WHERE p.account = $1)::bigint AS amount_fen,
       m.at < $2 AS before, m.at >= $3 AS after
FROM moves m
ORDER BY m.at, m.seq NULLS LAST, m.id
"""
BALANCE = "SELECT balance_fen FROM ledger_accounts WHERE account = $1"


async def fetch(conn: asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    return await conn.fetch(sql, *args)


async def insert_items(
    conn: asyncpg.Connection,
    run_id: str,
    ids: list[str],
    merchant_ids: list[str],
    wallets: list[str],
    amounts_fen: list[int],
    tx_ids: list[str],
) -> None:
    await conn.execute(INSERT_ITEMS, run_id, ids, merchant_ids, wallets, amounts_fen, tx_ids)


async def hold_event(
    conn: asyncpg.Connection, merchant_id: str, action: str, reason: str | None, actor: str, at: datetime
) -> None:
    await conn.execute(HOLD_EVENT, merchant_id, action, reason, actor, at)


# -- holds (service.py) ----------------------------------------------------------------------------------------------


async def set_hold(conn: asyncpg.Connection, merchant_id: str, reason: str, at: datetime) -> bool:
    """Hold the merchant (keeping an earlier hold's `since`); False when there is no such merchant."""
    return await conn.fetchval(SET_HOLD, merchant_id, reason, at) is not None


async def set_hold_newly(conn: asyncpg.Connection, merchant_id: str, reason: str, at: datetime) -> bool | None:
    """Hold the merchant; whether it was off hold before (None: no such merchant)."""
    newly = await conn.fetchval(SET_HOLD_NEWLY, merchant_id, reason, at)
    return None if newly is None else bool(newly)


async def clear_hold(conn: asyncpg.Connection, merchant_id: str) -> bool:
    """Release the merchant; False when there is no such merchant."""
    return await conn.fetchval(CLEAR_HOLD, merchant_id) is not None


async def holders_since_release(conn: asyncpg.Connection, merchant_id: str) -> list[str]:
    return list(await conn.fetchval(HOLDERS_SINCE_RELEASE, merchant_id))


# -- runs (service.py) -----------------------------------------------------------------------------------------------


def _count(status: str) -> int:
    """The row count of an `INSERT 0 N` status."""
    return int(status.rsplit(" ", 1)[1])


async def begin_run(conn: asyncpg.Connection, run_id: str, cutoff: datetime, created_by: str, at: datetime) -> None:
    """Take the one-run-at-a-time lock, record the run and make its working tables (dropped at commit)."""
    await conn.execute(LOCK_RUNS, RUN_LOCK_KEY)
    await conn.execute(INSERT_RUN, run_id, cutoff, created_by, at)
    await conn.execute(RUN_TABLES)


async def lock_payable_accounts(conn: asyncpg.Connection) -> int:
    """LOCK_PAYABLE_ACCOUNTS; answers how many merchant accounts are locked."""
    return _count(await conn.execute(LOCK_PAYABLE_ACCOUNTS))


async def payable_amounts(conn: asyncpg.Connection, cutoff: datetime) -> int:
    """PAYABLE_AMOUNTS; answers how many merchants are payable."""
    return _count(await conn.execute(PAYABLE_AMOUNTS, cutoff))


async def payable_page(conn: asyncpg.Connection, after: str | None, limit: int) -> list[asyncpg.Record]:
    """The next payable merchants (merchant_id, settlement_wallet, amount_fen) after `after`, in id order."""
    return list(await conn.fetch(PAYABLE_PAGE, after, limit))


async def finish_run(conn: asyncpg.Connection, run_id: str, total_fen: int, item_count: int) -> asyncpg.Record:
    row = await conn.fetchrow(FINISH_RUN, run_id, total_fen, item_count)
    if row is None:  # made earlier in this transaction
        raise RuntimeError(f"payout run {run_id} vanished")
    return row


async def open_payout_accounts(conn: asyncpg.Connection, accounts: list[str], at: datetime) -> None:
    await conn.execute(OPEN_ACCOUNTS, accounts, at)


async def get_run(conn: asyncpg.Connection, run_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_RUN, run_id)


async def items_page(conn: asyncpg.Connection, run_id: str, after: str | None, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(ITEMS_PAGE, run_id, after, limit))


async def list_runs(conn: asyncpg.Connection, before: str | None, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST_RUNS, before, limit))


async def file_page(conn: asyncpg.Connection, run_id: str, after: str | None, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(FILE_PAGE, run_id, after, limit))


async def lock_items(conn: asyncpg.Connection, run_id: str, item_ids: list[str]) -> dict[str, asyncpg.Record]:
    """The run's items among `item_ids`, locked in id order, by id."""
    return {row["id"]: row for row in await conn.fetch(LOCK_ITEMS, run_id, item_ids)}


async def confirm_item(
    conn: asyncpg.Connection, run_id: str, item_id: str, status: str, tx_id: str, bank_reference: str, at: datetime
) -> asyncpg.Record | None:
    """Mark a `sent` item paid or failed; the item as it now is (None: it was not `sent`)."""
    return await conn.fetchrow(CONFIRM_ITEM, run_id, item_id, status, tx_id, bank_reference, at)


# -- clawbacks (clawbacks.py) --------------------------------------------------------------------------------------

# The campaign's row in share mode, as a refund takes it: a close waits for the clawback, and a clawback that starts
# during a close waits for it and then sees the campaign closed.
LOCK_CAMPAIGN_FOR_CLAWBACK = "SELECT status, issuer_id FROM campaigns WHERE id = $1 FOR SHARE"
READ_CLAWBACK = "SELECT * FROM clawbacks WHERE campaign_id = $1 AND redemption_id = $2"
INSERT_CLAWBACK = """
INSERT INTO clawbacks (campaign_id, redemption_id, id, merchant_id, amount_fen, reason, ledger_tx_id, return_tx_id,
                       created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *
"""


async def lock_campaign_for_clawback(conn: asyncpg.Connection, campaign_id: str) -> tuple[str, str] | None:
    """(status, issuer_id) of the campaign, its row held in share mode; None when there is no such campaign."""
    row = await conn.fetchrow(LOCK_CAMPAIGN_FOR_CLAWBACK, campaign_id)
    return (row["status"], row["issuer_id"]) if row is not None else None


async def read_clawback(conn: asyncpg.Connection, campaign_id: str, redemption_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(READ_CLAWBACK, campaign_id, redemption_id)


async def insert_clawback(
    conn: asyncpg.Connection,
    *,
    campaign_id: str,
    redemption_id: str,
    clawback_id: str,
    merchant_id: str,
    amount_fen: int,
    reason: str,
    ledger_tx_id: str,
    return_tx_id: str | None,
    created_by: str,
    created_at: datetime,
) -> asyncpg.Record:
    """The clawback's row as stored."""
    row = await conn.fetchrow(
        INSERT_CLAWBACK,
        campaign_id,
        redemption_id,
        clawback_id,
        merchant_id,
        amount_fen,
        reason,
        ledger_tx_id,
        return_tx_id,
        created_by,
        created_at,
    )
    if row is None:  # an INSERT ... RETURNING answers its row
        raise RuntimeError(f"the clawback of {redemption_id} was not stored")
    return row


# -- statements (statements.py) ------------------------------------------------------------------------------------


async def account_moves(
    raw: asyncpg.Connection, account: str, start: datetime, end: datetime
) -> tuple[list[asyncpg.Record], int | None]:
    """ACCOUNT_MOVES's rows for the account around [start, end), and its balance now (None: no such account), read
    in the caller's snapshot."""
    rows = await raw.fetch(ACCOUNT_MOVES, account, start, end)
    return list(rows), await raw.fetchval(BALANCE, account)
