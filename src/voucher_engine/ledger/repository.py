"""The ledger's SQL. Hot statements run on the asyncpg connection underneath SQLAlchemy (prepared once per connection).

Every function takes a connection already inside a transaction (the caller's, or the sequencer's own).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.campaigns import campaigns as campaigns_table
from voucher_engine.db.schema.campaigns import vouchers as vouchers_table
from voucher_engine.invariants import invariant
from voucher_engine.ledger.model import PostingResult, PreparedPosting

# One sequencer at a time across every worker and replica; also taken (blocking) by `sequence_now`.
SEQUENCER_LOCK_KEY = 7_412_930_004


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, with SQLAlchemy's transaction really begun on it.

    SQLAlchemy opens the database transaction lazily, on its first statement; a statement sent straight to asyncpg
    before that would run outside the caller's transaction (autocommit), so make sure one has been sent.
    """
    raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        await conn.execute(sa.text("SELECT 1"))  # SQLAlchemy autobegins (or joins) the transaction
    invariant(raw.is_in_transaction(), "the ledger is written inside the caller's transaction")
    return raw


# -- accounts ----------------------------------------------------------------------------------------------------

OPEN_ACCOUNT = """
INSERT INTO ledger_accounts (account, kind, balance_fen, opened_at) VALUES ($1, $2, 0, $3)
ON CONFLICT (account) DO NOTHING
"""

BALANCE = "SELECT balance_fen FROM ledger_accounts WHERE account = $1"

BALANCES = "SELECT account, balance_fen FROM ledger_accounts WHERE account = ANY($1::text[])"


async def open_account(raw: asyncpg.Connection, account: str, kind: str, at: datetime) -> None:
    await raw.execute(OPEN_ACCOUNT, account, kind, at)


async def balance(raw: asyncpg.Connection, account: str) -> int | None:
    """The account's balance (None: no such account)."""
    value = await raw.fetchval(BALANCE, account)
    return int(value) if value is not None else None


async def balances(raw: asyncpg.Connection, accounts: list[str]) -> dict[str, int]:
    """{account: balance} of those of `accounts` that are open."""
    return {row["account"]: int(row["balance_fen"]) for row in await raw.fetch(BALANCES, accounts)}


async def open_accounts(raw: asyncpg.Connection, accounts: list[str]) -> set[str]:
    """Which of `accounts` are open."""
    return {row["account"] for row in await raw.fetch(OPEN_ACCOUNTS, accounts)}


# The hot path, in one statement (one round trip): a micro-batch's balances, transactions, queue entry and totals,
# by the database function `ledger_post_batch` (migration 0020, which says how it orders its locks and why). A
# caller that posts in its own statement calls the same function there with `PreparedPosting.args`.
POST_BATCH = """
SELECT moved, inserted, batch, totals
FROM ledger_post_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
"""


async def post_batch(raw: asyncpg.Connection, posting: PreparedPosting) -> PostingResult:
    """Post a prepared batch by itself; the caller turns the database's refusals into errors."""
    row = await raw.fetchrow(POST_BATCH, *posting.args)
    return PostingResult(row["moved"], row["inserted"], row["batch"], row["totals"])


OPEN_ACCOUNTS = "SELECT account FROM ledger_accounts WHERE account = ANY($1::text[])"

CAMPAIGN_TOTALS = """
SELECT kind, funder, amount_fen, tx_count FROM ledger_campaign_totals WHERE campaign_id = $1
"""


class CampaignTotal(NamedTuple):
    """One running total of a campaign: a kind's whole (`funder` "") or one funder's part of a fund or return."""

    kind: str
    funder: str
    amount_fen: int
    tx_count: int


async def campaign_totals(raw: asyncpg.Connection, campaign_id: str) -> list[CampaignTotal]:
    return [
        CampaignTotal(row["kind"], row["funder"], int(row["amount_fen"]), int(row["tx_count"]))
        for row in await raw.fetch(CAMPAIGN_TOTALS, campaign_id)
    ]


# -- the sequencer -----------------------------------------------------------------------------------------------

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
LOCK = "SELECT pg_advisory_xact_lock($1)"

HEAD = "SELECT seq, hash FROM ledger_sequence ORDER BY seq DESC LIMIT 1"

# Only committed batches are visible here (READ COMMITTED), so a batch still in flight waits for the next round.
# One round trip takes the batches off the queue and reads their transactions, in batch order and each batch's
# own order; `id` is null where a queued transaction is missing (never expected: the caller refuses the round).
TAKE_PENDING_TXS = """
WITH taken AS (
    DELETE FROM ledger_pending WHERE batch IN (SELECT batch FROM ledger_pending ORDER BY batch LIMIT $1)
    RETURNING batch, tx_ids
)
SELECT taken.batch, u.queued_id, t.id, t.campaign_id, t.kind, t.at, t.refs::text AS refs, t.accounts, t.amounts_fen
FROM taken
CROSS JOIN LATERAL unnest(taken.tx_ids) WITH ORDINALITY AS u(queued_id, ord)
LEFT JOIN LATERAL (SELECT * FROM ledger_transactions t WHERE t.id = u.queued_id LIMIT 1) AS t ON true
ORDER BY taken.batch, u.ord
"""

ANY_PENDING = "SELECT EXISTS (SELECT 1 FROM ledger_pending)"

# One round trip appends what a round computed: sequence rows, account history, completed subtrees.
APPEND_SEQUENCED = """
WITH s AS (
    INSERT INTO ledger_sequence (seq, tx_id, campaign_id, merchant_id, voucher_id, hash, prev_hash, leaf_hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[],
                         $8::bytea[])
    RETURNING 1
), e AS (
    INSERT INTO ledger_entries (account, seq) SELECT * FROM unnest($9::text[], $10::bigint[])
    RETURNING 1
), n AS (
    INSERT INTO ledger_tree (level, idx, hash) SELECT * FROM unnest($11::smallint[], $12::bigint[], $13::bytea[])
    RETURNING 1
)
SELECT (SELECT count(*) FROM s) AS sequenced, (SELECT count(*) FROM e) AS entries, (SELECT count(*) FROM n) AS nodes
"""


class Appended(NamedTuple):
    """What APPEND_SEQUENCED wrote: sequence rows, account entries, completed subtrees."""

    sequenced: int
    entries: int
    nodes: int


async def take_sequencer_lock(raw: asyncpg.Connection, *, wait: bool) -> bool:
    """The sequencer's lock for this transaction: waited for (`wait`), or tried (False: another sequencer runs)."""
    if wait:
        await raw.execute(LOCK, SEQUENCER_LOCK_KEY)
        return True
    return bool(await raw.fetchval(TRY_LOCK, SEQUENCER_LOCK_KEY))


async def take_pending(raw: asyncpg.Connection, max_batches: int) -> list[asyncpg.Record]:
    """TAKE_PENDING_TXS: the oldest committed batches taken off the queue, their transactions in order."""
    return list(await raw.fetch(TAKE_PENDING_TXS, max_batches))


async def sequence_head(raw: asyncpg.Connection) -> tuple[int, bytes] | None:
    """(seq, hash) of the last sequenced transaction; None while nothing is sequenced."""
    row = await raw.fetchrow(HEAD)
    return (row["seq"], bytes(row["hash"])) if row is not None else None


async def append_sequenced(
    raw: asyncpg.Connection,
    columns: tuple[list, ...],
    entry_accounts: list[str],
    entry_seqs: list[int],
    nodes: list[tuple[int, int, bytes]],
) -> Appended:
    """APPEND_SEQUENCED: `columns` are the sequence rows' eight arrays (seq, tx_id, campaign_id, merchant_id,
    voucher_id, hash, prev_hash, leaf_hash); `nodes` the completed subtrees as (level, index, hash)."""
    row = await raw.fetchrow(
        APPEND_SEQUENCED,
        *columns,
        entry_accounts,
        entry_seqs,
        [level for level, _, _ in nodes],
        [idx for _, idx, _ in nodes],
        [digest for _, _, digest in nodes],
    )
    return Appended(row["sequenced"], row["entries"], row["nodes"])


NODES = """
SELECT 0 AS level, seq - 1 AS idx, leaf_hash AS hash FROM ledger_sequence WHERE seq = ANY($1::bigint[])
UNION ALL
SELECT t.level, t.idx, t.hash FROM ledger_tree t
JOIN unnest($2::smallint[], $3::bigint[]) AS n(level, idx) ON t.level = n.level AND t.idx = n.idx
"""


async def fetch_nodes(raw: asyncpg.Connection, nodes: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    leaves = [idx + 1 for level, idx in nodes if level == 0]
    inner = [(level, idx) for level, idx in nodes if level > 0]
    rows = await raw.fetch(NODES, leaves, [level for level, _ in inner], [idx for _, idx in inner])
    found = {(row["level"], row["idx"]): bytes(row["hash"]) for row in rows}
    missing = nodes - found.keys()
    if missing:
        raise LookupError(f"the tree is missing nodes {sorted(missing)[:4]}")
    return found


# -- checkpoints -------------------------------------------------------------------------------------------------

NOTHING_WRITTEN = "SELECT pg_current_xact_id_if_assigned() IS NULL"
TREE_SIZE = "SELECT coalesce(max(seq), 0) FROM ledger_sequence"
CHECKPOINT_COLUMNS = "tree_size, origin, root_hash, signature, public_key, signed_at"
CHECKPOINT_AT = f"SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE tree_size = $1"
LATEST_CHECKPOINT = f"SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
INSERT_CHECKPOINT = f"""
INSERT INTO ledger_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tree_size) DO NOTHING
"""
LIST_CHECKPOINTS = f"""
SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE tree_size < $1 ORDER BY tree_size DESC LIMIT $2
"""


async def tree_size(raw: asyncpg.Connection) -> int:
    """How many transactions are sequenced."""
    return int(await raw.fetchval(TREE_SIZE))


async def checkpoint_row(raw: asyncpg.Connection, size: int | None) -> asyncpg.Record | None:
    """The stored checkpoint (CHECKPOINT_COLUMNS) at tree size `size`, or the latest one when `size` is None."""
    return await (raw.fetchrow(LATEST_CHECKPOINT) if size is None else raw.fetchrow(CHECKPOINT_AT, size))


async def nothing_written(raw: asyncpg.Connection) -> bool:
    """Whether this transaction has written nothing yet (so what it reads was committed by others)."""
    return bool(await raw.fetchval(NOTHING_WRITTEN))


async def insert_checkpoint(
    raw: asyncpg.Connection,
    *,
    tree_size: int,
    origin: str,
    root_hash: bytes,
    signature: bytes,
    public_key: bytes,
    signed_at: datetime,
) -> None:
    """Store a signed checkpoint (a second one at the same size is ignored)."""
    await raw.execute(INSERT_CHECKPOINT, tree_size, origin, root_hash, signature, public_key, signed_at)


# -- reading transactions ----------------------------------------------------------------------------------------

TX_COLUMNS = """s.seq, s.hash, s.prev_hash, t.id, t.kind, t.at, t.refs::text AS refs, t.accounts, t.amounts_fen,
t.campaign_id"""

TX_BY_ID = f"""
SELECT {TX_COLUMNS}, s.leaf_hash FROM ledger_transactions t LEFT JOIN ledger_sequence s ON s.tx_id = t.id
WHERE t.id = $1
"""


def _filtered(
    *,
    campaign_id: str | None,
    merchant_id: str | None,
    voucher_id: str | None,
    account: str | None,
    at_from: Any,
    at_to: Any,
    after_seq: int,
) -> tuple[str, str, str, list[Any]]:
    """(FROM, WHERE, ORDER BY, params) of the sequenced transactions matching the filters, each on an index that
    leads with it."""
    params: list[Any] = [after_seq]
    where = ["s.seq > $1"]
    source = "ledger_sequence s"
    if account is not None:
        params.append(account)
        source = "ledger_entries e JOIN ledger_sequence s ON s.seq = e.seq"
        where = [f"e.account = ${len(params)}", "e.seq > $1"]
    for column, value in (("campaign_id", campaign_id), ("merchant_id", merchant_id), ("voucher_id", voucher_id)):
        if value is not None:
            params.append(value)
            where.append(f"s.{column} = ${len(params)}")
    if at_from is not None:
        params.append(at_from)
        where.append(f"t.at >= ${len(params)}")
    if at_to is not None:
        params.append(at_to)
        where.append(f"t.at < ${len(params)}")
    order = "e.seq" if account is not None else "s.seq"
    return f"{source} JOIN ledger_transactions t ON t.id = s.tx_id", " AND ".join(where), order, params


def list_query(
    *,
    campaign_id: str | None,
    merchant_id: str | None,
    voucher_id: str | None,
    account: str | None,
    at_from: Any,
    at_to: Any,
    after_seq: int,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """Sequenced transactions in seq order, filtered; each filter pages on an index that leads with it."""
    source, where, order, params = _filtered(
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        voucher_id=voucher_id,
        account=account,
        at_from=at_from,
        at_to=at_to,
        after_seq=after_seq,
    )
    sql = f"SELECT {TX_COLUMNS} FROM {source} WHERE {where} ORDER BY {order}"
    if limit is not None:
        params.append(limit)
        sql += f" LIMIT ${len(params)}"
    return sql, params


async def copy_export(
    raw: asyncpg.Connection,
    sink: Callable[[bytes], Awaitable[None]],
    *,
    campaign_id: str | None,
    merchant_id: str | None,
    voucher_id: str | None,
    at_from: Any,
    at_to: Any,
) -> None:
    """The export (`export_query`) to `sink` as CSV with its header, by COPY, in the caller's snapshot."""
    sql, params = export_query(
        campaign_id=campaign_id, merchant_id=merchant_id, voucher_id=voucher_id, at_from=at_from, at_to=at_to
    )
    await raw.copy_from_query(sql, *params, output=sink, format="csv", header=True)


async def sequenced_transactions(
    conn: AsyncConnection,
    *,
    campaign_id: str | None = None,
    merchant_id: str | None = None,
    voucher_id: str | None = None,
    account: str | None = None,
    at_from: Any = None,
    at_to: Any = None,
    after_seq: int = 0,
    limit: int | None,
) -> list[asyncpg.Record]:
    """Rows of TX_COLUMNS: the sequenced transactions after `after_seq` matching the filters, in seq order."""
    sql, params = list_query(
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        voucher_id=voucher_id,
        account=account,
        at_from=at_from,
        at_to=at_to,
        after_seq=after_seq,
        limit=limit,
    )
    return list(await (await driver(conn)).fetch(sql, *params))


async def transaction_by_id(conn: AsyncConnection, tx_id: str) -> asyncpg.Record | None:
    """A row of TX_COLUMNS (and `leaf_hash`); `seq` is null while the transaction waits for the sequencer."""
    return await (await driver(conn)).fetchrow(TX_BY_ID, tx_id)


async def voucher_campaigns(conn: AsyncConnection, voucher_id: str) -> list[str]:
    """The campaigns whose sequenced transactions name the voucher."""
    return [row["campaign_id"] for row in await (await driver(conn)).fetch(VOUCHER_CAMPAIGNS, voucher_id)]


async def campaign_fund_and_return(conn: AsyncConnection, campaign_id: str) -> list[asyncpg.Record]:
    """Rows of TX_COLUMNS: the campaign's sequenced fund and return transactions."""
    return list(await (await driver(conn)).fetch(CAMPAIGN_FUND_AND_RETURN, campaign_id))


async def checkpoints_before(conn: AsyncConnection, tree_size: int, limit: int) -> list[asyncpg.Record]:
    """Stored checkpoints below `tree_size`, newest first, at most `limit`."""
    return list(await (await driver(conn)).fetch(LIST_CHECKPOINTS, tree_size, limit))


def _posting_json(i: int) -> str:
    """Posting i (1-based) of `t` as compact JSON, {"account","debit_fen"|"credit_fen"}, the account JSON-escaped."""
    return (
        f"""'{{"account":' || to_json(t.accounts[{i}])::text || CASE WHEN t.amounts_fen[{i}] > 0 """
        f"""THEN ',"debit_fen":' || t.amounts_fen[{i}] ELSE ',"credit_fen":' || -t.amounts_fen[{i}] END || '}}'"""
    )


# The served postings of `t` as a JSON array, written by PostgreSQL: two postings (every redemption and refund)
# without a subquery, any other number with one.
POSTINGS_JSON = f"""CASE WHEN cardinality(t.accounts) = 2 AND cardinality(t.amounts_fen) = 2
THEN '[' || {_posting_json(1)} || ',' || {_posting_json(2)} || ']'
ELSE (SELECT '[' || string_agg('{{"account":' || to_json(p.account)::text || CASE WHEN p.amount > 0
                               THEN ',"debit_fen":' || p.amount ELSE ',"credit_fen":' || -p.amount END || '}}',
                               ',' ORDER BY p.ord) || ']'
      FROM unnest(t.accounts, t.amounts_fen) WITH ORDINALITY AS p(account, amount, ord)) END"""

# The CSV export's columns (verify.CSV_COLUMNS), as the API serves them: `at` in canonical.format_at's spelling,
# postings and refs as JSON, hashes in lowercase hex.
EXPORT_COLUMNS = f"""s.seq, t.id, t.kind, to_char(t.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS at,
{POSTINGS_JSON} AS postings, t.refs::text AS refs, encode(s.hash, 'hex') AS hash, encode(s.prev_hash, 'hex') AS prev_hash"""


def export_query(
    *, campaign_id: str | None, merchant_id: str | None, voucher_id: str | None, at_from: Any, at_to: Any
) -> tuple[str, list[Any]]:
    """The matching transactions as EXPORT_COLUMNS, in seq order (for COPY ... TO STDOUT WITH (FORMAT csv))."""
    source, where, order, params = _filtered(
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        voucher_id=voucher_id,
        account=None,
        at_from=at_from,
        at_to=at_to,
        after_seq=0,
    )
    return f"SELECT {EXPORT_COLUMNS} FROM {source} WHERE {where} ORDER BY {order}", params


VOUCHER_CAMPAIGNS = "SELECT DISTINCT campaign_id FROM ledger_sequence WHERE voucher_id = $1"

# The campaign's funding and return transactions, which carry no voucher but moved every voucher's money.
CAMPAIGN_FUND_AND_RETURN = f"""
SELECT {TX_COLUMNS} FROM ledger_sequence s JOIN ledger_transactions t ON t.id = s.tx_id
WHERE s.campaign_id = $1 AND s.voucher_id IS NULL AND t.kind IN ('fund', 'return') ORDER BY s.seq
"""

# Reconciliation from the postings themselves (not from the running totals), sequenced or still pending.
CAMPAIGN_POSTINGS = """
SELECT t.kind, p.account, sum(p.amount_fen)::bigint AS amount_fen, count(DISTINCT t.id) AS postings
FROM ledger_transactions t
CROSS JOIN LATERAL unnest(t.accounts, t.amounts_fen) AS p(account, amount_fen)
WHERE t.id IN (SELECT tx_id FROM ledger_sequence WHERE campaign_id = $1
               UNION ALL SELECT unnest(tx_ids) FROM ledger_pending)
  AND t.campaign_id = $1
GROUP BY t.kind, p.account
"""


class CampaignPostings(NamedTuple):
    """A campaign's postings to one account by one kind of transaction: their sum and how many transactions."""

    kind: str
    account: str
    amount_fen: int
    postings: int


async def campaign_postings(raw: asyncpg.Connection, campaign_id: str) -> list[CampaignPostings]:
    """CAMPAIGN_POSTINGS: the campaign's postings (sequenced or queued), summed by kind and account."""
    return [
        CampaignPostings(row["kind"], row["account"], int(row["amount_fen"]), int(row["postings"]))
        for row in await raw.fetch(CAMPAIGN_POSTINGS, campaign_id)
    ]


# -- operations' figures (GET /metrics, api/operations.py) ---------------------------------------------------------

SEQUENCER_BACKLOG = """
SELECT coalesce(sum(cardinality(p.tx_ids)), 0) AS unsequenced,
       (SELECT extract(epoch FROM $1 - min(t.at)) FROM ledger_transactions t
         WHERE t.id = (SELECT tx_ids[1] FROM ledger_pending ORDER BY batch LIMIT 1)) AS lag_s
FROM ledger_pending p
"""
# Open escrows of campaigns not closed, newest first; a closed campaign's escrow is empty by construction.
OPEN_ESCROWS = """
SELECT c.id, a.balance_fen FROM campaigns c JOIN ledger_accounts a ON a.account = 'escrow:' || c.id
WHERE c.status <> 'closed' ORDER BY c.created_at DESC LIMIT $1
"""


class SequencerBacklog(NamedTuple):
    """Transactions posted but not yet sequenced, and how long the oldest of them has waited."""

    unsequenced: int
    lag_s: float


async def sequencer_backlog(raw: asyncpg.Connection, now: datetime) -> SequencerBacklog:
    row = await raw.fetchrow(SEQUENCER_BACKLOG, now)
    return SequencerBacklog(int(row["unsequenced"]), float(row["lag_s"] or 0))


async def open_escrows(raw: asyncpg.Connection, limit: int) -> list[tuple[str, int]]:
    """(campaign id, escrow balance) of the newest `limit` campaigns not closed."""
    return [(row["id"], row["balance_fen"]) for row in await raw.fetch(OPEN_ESCROWS, limit)]


# -- who owns what (scoping.py): the campaigns' tables, read through db/schema -------------------------------------


async def campaign_issuer(conn: AsyncConnection, campaign_id: str) -> str | None:
    query = sa.select(campaigns_table.c.issuer_id).where(campaigns_table.c.id == campaign_id)
    return (await conn.execute(query)).scalar()


async def voucher_campaign(conn: AsyncConnection, voucher_id: str) -> str | None:
    query = sa.select(vouchers_table.c.campaign_id).where(vouchers_table.c.id == voucher_id).limit(1)
    return (await conn.execute(query)).scalar()


# -- what the verifier reads besides the streamed rows (verify.py), inside its read-only snapshot ----------------


async def all_checkpoints(raw: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await raw.fetch("SELECT * FROM ledger_checkpoints ORDER BY tree_size"))


async def sequenced_count(raw: asyncpg.Connection) -> int:
    """How many transactions are sequenced (the tree's size)."""
    return int(await raw.fetchval("SELECT coalesce(max(seq), 0) FROM ledger_sequence"))


async def export_snapshot(raw: asyncpg.Connection) -> str:
    """The snapshot's name, for the verifier's second process to read the very same ledger."""
    return str(await raw.fetchval("SELECT pg_export_snapshot()"))


async def hash_at_or_before(raw: asyncpg.Connection, seq: int) -> bytes | None:
    """The chain hash of the last sequenced transaction at or before `seq` (None before the first)."""
    found = await raw.fetchval("SELECT hash FROM ledger_sequence WHERE seq <= $1 ORDER BY seq DESC LIMIT 1", seq)
    return bytes(found) if found is not None else None


async def pending_transactions(raw: asyncpg.Connection) -> list[asyncpg.Record]:
    """(campaign_id, kind, accounts, amounts_fen) of the transactions still waiting for the sequencer."""
    return list(
        await raw.fetch(
            "SELECT t.campaign_id, t.kind, t.accounts, t.amounts_fen FROM ledger_transactions t "
            "WHERE t.id IN (SELECT unnest(tx_ids) FROM ledger_pending)"
        )
    )


async def all_balances(raw: asyncpg.Connection) -> dict[str, int]:
    """Every account's stored balance."""
    return {
        row["account"]: row["balance_fen"]
        for row in await raw.fetch("SELECT account, balance_fen FROM ledger_accounts")
    }


async def all_campaign_totals(raw: asyncpg.Connection) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(campaign_id, kind, funder) -> (amount_fen, tx_count), as stored."""
    return {
        (row["campaign_id"], row["kind"], row["funder"]): (row["amount_fen"], row["tx_count"])
        for row in await raw.fetch("SELECT * FROM ledger_campaign_totals")
    }


async def transaction_count(raw: asyncpg.Connection) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM ledger_transactions"))


async def unaccounted_transactions(raw: asyncpg.Connection, *, limit: int) -> list[str]:
    """Ids of transactions neither sequenced nor queued (written behind the engine's back), at most `limit`."""
    rows = await raw.fetch(
        "SELECT t.id FROM ledger_transactions t WHERE NOT EXISTS "
        "(SELECT 1 FROM ledger_sequence s WHERE s.tx_id = t.id) AND t.id NOT IN "
        "(SELECT unnest(tx_ids) FROM ledger_pending) LIMIT $1",
        limit,
    )
    return [row["id"] for row in rows]


async def tree_node_count(raw: asyncpg.Connection) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM ledger_tree"))


async def tree_nodes(raw: asyncpg.Connection, positions: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored nodes at (level, index) `positions` (those missing are absent from the answer)."""
    rows = await raw.fetch(
        "SELECT t.level, t.idx, t.hash FROM ledger_tree t JOIN unnest($1::int[], $2::bigint[]) "
        "AS n(level, idx) ON t.level = n.level AND t.idx = n.idx",
        [level for level, _ in positions],
        [idx for _, idx in positions],
    )
    return {(row["level"], row["idx"]): bytes(row["hash"]) for row in rows}


# -- the verifier's streamed rows (verify_rows.py), inside its read-only snapshot ---------------------------------

# The fields of one verified row, in the order of the JSON arrays below (RowVerifier.feed reads them by position:
# it is the verifier's inner loop).
VERIFIED_ROW = ("seq", "hash", "prev_hash", "leaf_hash", "id", "kind", "at", "accounts", "amounts_fen", "refs")

# One JSON array per sequenced transaction, in seq order, as COPY text lines: the verifier parses a whole chunk of
# them with one orjson call. The join is forced to a nested loop along the seq index (see SESSION): rows leave as
# soon as they are joined, so PostgreSQL and the verifier work side by side; a sort-based plan would make the
# verifier wait for the whole range first.
ROWS = """
SELECT json_build_array(s.seq, encode(s.hash, 'hex'), encode(s.prev_hash, 'hex'), encode(s.leaf_hash, 'hex'),
                        t.id, t.kind, t.at, t.accounts, t.amounts_fen, t.refs)
FROM ledger_sequence s LEFT JOIN ledger_transactions t ON t.id = s.tx_id
WHERE s.seq > $1 AND s.seq <= $2
ORDER BY s.seq
"""

# The same arrays, a block of $3 seqs to a COPY line (comma-separated, in seq order), for seqs from 0 up: each COPY
# line costs PostgreSQL and asyncpg a protocol message and some bookkeeping, which one transaction per line paid for
# (measured: some 1.5 us of the verifier's and 1 us of the server's CPU per row). Empty blocks give no line. Same join,
# same plan per block (an index range scan of a block's seqs); the aggregate orders its rows by seq itself.
ROWS_IN_BLOCKS = """
SELECT b.rows
FROM generate_series($1::bigint, $2::bigint - 1, $3::bigint) AS g(lo)
CROSS JOIN LATERAL (
    SELECT string_agg(json_build_array(s.seq, encode(s.hash, 'hex'), encode(s.prev_hash, 'hex'),
                                       encode(s.leaf_hash, 'hex'), t.id, t.kind, t.at, t.accounts, t.amounts_fen,
                                       t.refs)::text, ',' ORDER BY s.seq) AS rows
    FROM ledger_sequence s LEFT JOIN ledger_transactions t ON t.id = s.tx_id
    WHERE s.seq > g.lo AND s.seq <= least(g.lo + $3, $2)) b
WHERE b.rows IS NOT NULL
"""

# For the verifier's own read-only transaction only (SET LOCAL): timestamps in UTC; no parallel workers and no hash
# or merge joins for the streaming query (the verifier runs its own second process).
SESSION = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL max_parallel_workers_per_gather = 0",
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
)

# The stored complete subtrees of one window, level by level, concatenated in index order: an index range scan per
# level, aggregated in the order the ordered subquery hands them over (a quarter of the cost of an aggregate that
# sorts). Nothing depends on that order but speed: any difference sends the level to a node-by-node comparison.
STORED_NODES = """
SELECT r.level, q.nodes, q.hashes
FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS r(level, lo, hi)
CROSS JOIN LATERAL (SELECT count(*) AS nodes, string_agg(s.hash, ''::bytea) AS hashes
                    FROM (SELECT t.hash FROM ledger_tree t WHERE t.level = r.level AND t.idx >= r.lo AND t.idx < r.hi
                          ORDER BY t.idx) s) q
"""

NODES_OF_LEVEL = "SELECT idx, hash FROM ledger_tree WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx"

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f-]{1,64}$")


async def begin_verifier_session(raw: asyncpg.Connection, *, snapshot: str | None = None) -> None:
    """Set up the verifier's read-only transaction (already begun on `raw`): the exported `snapshot` of the
    coordinator, if one is given, then SESSION."""
    if snapshot is not None:
        if not _SNAPSHOT_ID.match(snapshot):
            raise ValueError("not a snapshot id")
        await raw.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    for statement in SESSION:
        await raw.execute(statement)


async def end_verifier_streaming(raw: asyncpg.Connection) -> None:
    """Hash and merge joins back on for the reads after the streamed rows (whole-table joins, not streams)."""
    for statement in ("SET LOCAL enable_hashjoin = on", "SET LOCAL enable_mergejoin = on"):
        await raw.execute(statement)


async def copy_sequenced_rows(
    raw: asyncpg.Connection, lo: int, hi: int, sink: Callable[[bytes], Awaitable[None]]
) -> None:
    """Seqs (lo, hi] to `sink` as COPY text, one JSON array of VERIFIED_ROW per line (any seq, even below 1)."""
    await raw.copy_from_query(ROWS, lo, hi, output=sink, format="text")


async def copy_sequenced_blocks(
    raw: asyncpg.Connection, lo: int, hi: int, block_rows: int, sink: Callable[[bytes], Awaitable[None]]
) -> None:
    """Seqs (lo, hi], lo >= 0, to `sink` as COPY text, `block_rows` seqs' JSON arrays to a line, comma-separated."""
    await raw.copy_from_query(ROWS_IN_BLOCKS, lo, hi, block_rows, output=sink, format="text")


async def stored_subtrees(raw: asyncpg.Connection, ranges: list[tuple[int, int, int]]) -> dict[int, tuple[int, bytes]]:
    """For each (level, lo, hi) of `ranges`: {level: (how many nodes are stored, their hashes concatenated)}."""
    rows = await raw.fetch(STORED_NODES, [r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges])
    return {row["level"]: (row["nodes"], bytes(row["hashes"] or b"")) for row in rows}


async def nodes_of_level(raw: asyncpg.Connection, level: int, lo: int, hi: int) -> dict[int, bytes]:
    """The stored nodes of `level` with index in [lo, hi), by index."""
    return {row["idx"]: bytes(row["hash"]) for row in await raw.fetch(NODES_OF_LEVEL, level, lo, hi)}
