"""The sequencer: gives committed transactions their gap-free `seq`, hash chain and Merkle leaves, off the hot path.

Why a sequencer: the money path must not hash in Python nor take a lock shared by every campaign, yet the chain
needs one total order. So posting only queues its batch (`ledger_pending`), and one sequencer at a time (a
PostgreSQL advisory lock, across all workers and replicas) drains the queue in short transactions:

1. read the head (last seq and hash) and the right edge of the Merkle tree;
2. take the committed batches in batch order (READ COMMITTED sees only committed ones; a batch still in flight
   is simply taken next round, so a seq is never given to something that may still roll back);
3. number their transactions from head + 1, compute canonical bytes, chain hash and leaf hash, and the complete
   subtrees that the new leaves close;
4. append `ledger_sequence`, `ledger_entries` and `ledger_tree` rows (COPY) and commit, atomically with the queue
   deletion: a crash leaves the batches queued, never half sequenced.

Nothing here UPDATEs a ledger row. Checkpoints (`service.make_checkpoint`) are signed over committed sequence rows
only. Every worker runs `run_forever`; the lock makes all but one of them idle at any moment.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine.ledger import canonical, merkle, repository

log = logging.getLogger("voucher_engine.ledger")

MAX_BATCHES_PER_ROUND = 200
MAX_TXS_PER_ROUND = 50_000
POLL_INTERVAL_S = float(os.environ.get("VE_LEDGER_SEQUENCE_INTERVAL_S", "0.05"))


async def _head(raw) -> tuple[int, bytes, merkle.CompactTree]:
    row = await raw.fetchrow(repository.HEAD)
    if row is None:
        return 0, canonical.ZERO_HASH, merkle.CompactTree()
    size = row["seq"]
    nodes = merkle.decompose(0, size)
    found = await repository.fetch_nodes(raw, set(nodes))
    return size, bytes(row["hash"]), merkle.CompactTree(size, [found[node] for node in nodes])


async def sequence_round(conn: AsyncConnection, *, wait: bool) -> int:
    """One round in `conn`'s transaction; answers how many transactions got a seq (0 if another sequencer runs).

    The caller commits. With `wait`, block until the sequencer lock is free instead of giving up.
    """
    raw = await repository.driver(conn)
    if wait:
        await raw.execute(repository.LOCK, repository.SEQUENCER_LOCK_KEY)
    elif not await raw.fetchval(repository.TRY_LOCK, repository.SEQUENCER_LOCK_KEY):
        return 0
    batches = await raw.fetch(repository.TAKE_PENDING, MAX_BATCHES_PER_ROUND)
    if not batches:
        return 0
    ids: list[str] = []
    for batch in sorted(batches, key=lambda row: row["batch"]):
        ids.extend(batch["tx_ids"])
    rows = {row["id"]: row for row in await raw.fetch(repository.TXS_BY_ID, ids)}
    if len(rows) != len(ids):
        missing = [tx_id for tx_id in ids if tx_id not in rows][:5]
        raise RuntimeError(f"queued transactions are missing from ledger_transactions: {missing}")
    seq, prev, tree = await _head(raw)
    sequence_rows: list[tuple[Any, ...]] = []
    entries: list[tuple[str, int]] = []
    completed: list[tuple[int, int, bytes]] = []
    format_at, tx_object, dumps, chain, leaf = (canonical.format_at, canonical.tx_object, canonical.canonical,
                                                canonical.chain_hash, canonical.leaf_hash)
    for tx_id in ids:
        row = rows[tx_id]
        seq += 1
        refs = orjson.loads(row["refs"])
        accounts = row["accounts"]
        body = dumps(tx_object(id=tx_id, seq=seq, kind=row["kind"], at=format_at(row["at"]), accounts=accounts,
                               amounts_fen=row["amounts_fen"], refs=refs))
        digest = chain(prev, body)
        leaf_digest = leaf(body)
        tree.append(leaf_digest, completed)
        merchant_id, voucher_id = refs.get("merchant_id"), refs.get("voucher_id")
        sequence_rows.append((seq, tx_id, row["campaign_id"], merchant_id if isinstance(merchant_id, str) else None,
                              voucher_id if isinstance(voucher_id, str) else None, digest, prev, leaf_digest))
        for account in dict.fromkeys(accounts):
            entries.append((account, seq))
        prev = digest
    await raw.copy_records_to_table("ledger_sequence", records=sequence_rows,
                                    columns=list(repository.SEQUENCE_COLUMNS))
    await raw.copy_records_to_table("ledger_entries", records=entries, columns=["account", "seq"])
    if completed:
        await raw.copy_records_to_table("ledger_tree", records=completed, columns=["level", "idx", "hash"])
    return len(ids)


async def sequence_now(conn: AsyncConnection) -> int:
    """Sequence everything this transaction can see now (waiting for a running sequencer first); the caller commits.

    For tests and tools that must see every posted transaction with its seq and hash before they read.
    """
    total = 0
    while True:
        done = await sequence_round(conn, wait=True)
        total += done
        if done == 0:
            return total


async def drain(engine: AsyncEngine, *, wait: bool = True) -> int:
    """Sequence every committed batch, one committed round at a time; answers how many transactions got a seq."""
    total = 0
    while True:
        async with engine.begin() as conn:
            done = await sequence_round(conn, wait=wait)
        total += done
        if done == 0:
            return total


async def run_forever(engine: AsyncEngine, on_idle=None) -> None:
    """The per-worker background loop: drain the queue every POLL_INTERVAL_S; `on_idle()` runs between rounds."""
    while True:
        try:
            await drain(engine, wait=False)
            if on_idle is not None:
                await on_idle()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the loop must outlive a database restart or a bad round
            log.warning("ledger sequencing failed; will retry", exc_info=True)
            await asyncio.sleep(1.0)
        await asyncio.sleep(POLL_INTERVAL_S)
