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

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine.invariants import invariant
from voucher_engine.ledger import canonical, merkle, repository

log = logging.getLogger("voucher_engine.ledger")

MAX_BATCHES_PER_ROUND = 200  # of at most ledger.model.MAX_BATCH transactions each
# Rounds are cheap but not free (six round trips); every fifth of a second keeps the lag short while sharing
# each round's fixed cost among a few hundred transactions under load.
POLL_INTERVAL_S = float(os.environ.get("VE_LEDGER_SEQUENCE_INTERVAL_S", "0.2"))


# This process's copy, per database, of the head and the tree's right edge after its last round: the next round,
# if nobody else sequenced in between (the head it reads is the one remembered), need not read the edge's nodes
# back. A round that is not committed leaves a head that no longer matches, and the copy is then unused.
_edges: dict[str, tuple[int, bytes, merkle.CompactTree]] = {}
MAX_REMEMBERED_DATABASES = 64


async def _head(raw, database: str) -> tuple[int, bytes, merkle.CompactTree]:
    head = await repository.sequence_head(raw)
    if head is None:
        return 0, canonical.ZERO_HASH, merkle.CompactTree()
    size, digest = head
    remembered = _edges.get(database)
    if remembered is not None and remembered[:2] == (size, digest):
        return size, digest, merkle.CompactTree(size, remembered[2].stack)  # a copy: the round appends to it
    nodes = merkle.decompose(0, size)
    found = await repository.fetch_nodes(raw, set(nodes))
    return size, digest, merkle.CompactTree(size, [found[node] for node in nodes])


async def sequence_round(conn: AsyncConnection, *, wait: bool) -> int:
    """One round in `conn`'s transaction; answers how many transactions got a seq (0 if another sequencer runs).

    The caller commits. With `wait`, block until the sequencer lock is free instead of giving up.
    """
    return (await _round(conn, wait=wait))[0]


async def _round(conn: AsyncConnection, *, wait: bool) -> tuple[int, bool]:
    """(transactions sequenced, whether the queue may hold more committed batches than this round took)."""
    raw = await repository.driver(conn)
    if not await repository.take_sequencer_lock(raw, wait=wait):
        return 0, False
    rows = await repository.take_pending(raw, MAX_BATCHES_PER_ROUND)
    if not rows:
        return 0, False
    missing = [row["queued_id"] for row in rows if row["id"] is None][:5]
    if missing:
        raise RuntimeError(f"queued transactions are missing from ledger_transactions: {missing}")
    database = str(conn.engine.url)
    seq, prev, tree = await _head(raw, database)
    columns: tuple[list, ...] = tuple([] for _ in range(8))
    seqs, tx_ids, campaigns, merchants, vouchers, hashes, prevs, leaves = columns
    entry_accounts: list[str] = []
    entry_seqs: list[int] = []
    completed: list[tuple[int, int, bytes]] = []
    format_at, tx_object, dumps, chain, leaf = (
        canonical.format_at,
        canonical.tx_object,
        canonical.canonical,
        canonical.chain_hash,
        canonical.leaf_hash,
    )
    for row in rows:
        seq += 1
        refs = orjson.loads(row["refs"])
        accounts = row["accounts"]
        body = dumps(
            tx_object(
                id=row["id"],
                seq=seq,
                kind=row["kind"],
                at=format_at(row["at"]),
                accounts=accounts,
                amounts_fen=row["amounts_fen"],
                refs=refs,
            )
        )
        digest = chain(prev, body)
        leaf_digest = leaf(body)
        tree.append(leaf_digest, completed)
        merchant_id, voucher_id = refs.get("merchant_id"), refs.get("voucher_id")
        seqs.append(seq)
        tx_ids.append(row["id"])
        campaigns.append(row["campaign_id"])
        merchants.append(merchant_id if isinstance(merchant_id, str) else None)
        vouchers.append(voucher_id if isinstance(voucher_id, str) else None)
        hashes.append(digest)
        prevs.append(prev)
        leaves.append(leaf_digest)
        for account in dict.fromkeys(accounts):
            entry_accounts.append(account)
            entry_seqs.append(seq)
        prev = digest
    written = await repository.append_sequenced(raw, columns, entry_accounts, entry_seqs, completed)
    invariant(
        written.sequenced == len(rows), "every transaction of the round was sequenced", written.sequenced, len(rows)
    )
    invariant(
        written.entries == len(entry_seqs),
        "every account entry of the round was written",
        written.entries,
        len(entry_seqs),
    )
    invariant(written.nodes == len(completed), "every completed Merkle node was stored", written.nodes, len(completed))
    if database not in _edges and len(_edges) >= MAX_REMEMBERED_DATABASES:
        _edges.pop(next(iter(_edges)))
    _edges[database] = (seq, prev, tree)
    # A round that took fewer batches than it may have emptied the queue as far as it could see.
    return len(rows), len({row["batch"] for row in rows}) >= MAX_BATCHES_PER_ROUND


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
            done, more = await _round(conn, wait=wait)
        total += done
        if not more:
            return total


async def run_forever(engine: AsyncEngine, on_idle=None, *, interval_s: float | None = None) -> None:
    """The background loop: drain the queue every `interval_s` (POLL_INTERVAL_S); `on_idle()` runs between rounds."""
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
        await asyncio.sleep(POLL_INTERVAL_S if interval_s is None else interval_s)
