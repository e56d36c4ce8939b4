"""The verifier: recompute everything from the raw rows and trust nothing the server says about them.

It checks, in seq order: seq starts at 1 with no gap; each transaction exists, is well formed and balanced and has
its kind's shape; its canonical bytes hash, with the previous hash, to its stored hash, and its stored prev_hash is
the previous stored hash; its leaf hash; no escrow balance ever goes negative. When the count reaches a checkpoint's
tree size it compares the recomputed root with the signed one and checks the signature against the pinned key (a
checkpoint beyond the end of the ledger means rows were removed). At the end it recomputes every account balance
and every campaign total from the postings and compares them with the tables, finds transactions that are neither
sequenced nor queued, and compares the stored complete subtrees with the recomputed ones.

The same `ChainVerifier` runs over the database (`verify_database`) and over an exported CSV with a checkpoint file
(`verify_csv`), so an auditor can run it offline. Problems are reported in seq order; the first is the answer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from voucher_engine.ledger import canonical, checkpoints, merkle, model

MAX_DISCREPANCIES = 100
CSV_COLUMNS = ("seq", "id", "kind", "at", "postings", "refs", "hash", "prev_hash")


@dataclass(frozen=True, slots=True)
class Discrepancy:
    seq: int | None
    check: str
    detail: str

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "ledger"
        return f"{where}: {self.check}: {self.detail}"


@dataclass
class Report:
    transactions: int = 0
    checkpoints_verified: int = 0
    accounts_checked: int = 0
    root_hash: str | None = None
    discrepancies: list[Discrepancy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    @property
    def first(self) -> Discrepancy | None:
        ordered = sorted(self.discrepancies, key=lambda d: (d.seq is None, d.seq or 0))
        return ordered[0] if ordered else None

    def document(self) -> dict[str, Any]:
        first = self.first
        return {"ok": self.ok, "transactions": self.transactions, "checkpoints_verified": self.checkpoints_verified,
                "accounts_checked": self.accounts_checked, "root_hash": self.root_hash,
                "first_discrepancy": None if first is None else {"seq": first.seq, "check": first.check,
                                                                   "detail": first.detail},
                "discrepancies": [{"seq": d.seq, "check": d.check, "detail": d.detail} for d in self.discrepancies],
                "notes": self.notes}


class ChainVerifier:
    """Feed it transactions in seq order; `finish()` answers the report."""

    def __init__(self, public_key: bytes | None, checkpoint_documents: Iterable[dict[str, Any]] = (), *,
                 keep_nodes: bool = False, partial: bool = False):
        self.report = Report()
        self.public_key = public_key
        self.partial = partial  # a filtered export: links between rows and the tree cannot be checked
        self.prev_hash = canonical.ZERO_HASH
        self.expected_seq = 1
        self.tree = merkle.CompactTree()
        self.balances: dict[str, int] = {}
        self.totals: dict[tuple[str, str, str], list[int]] = {}
        self._shapes: dict[tuple[Any, ...], str] = {}
        self.keep_nodes = keep_nodes
        self.nodes: dict[int, bytearray] = {}
        self.checkpoints: list[tuple[int, bytes, dict[str, Any]]] = []
        for document in checkpoint_documents:
            self._add_checkpoint(document)
        self.checkpoints.sort(key=lambda item: item[0])
        self._next_checkpoint = 0
        self._next_cp_size = self.checkpoints[0][0] if self.checkpoints else 1 << 63

    # -- recording -------------------------------------------------------------------------------------------------

    def problem(self, seq: int | None, check: str, detail: str) -> None:
        if len(self.report.discrepancies) < MAX_DISCREPANCIES:
            self.report.discrepancies.append(Discrepancy(seq, check, detail))

    def _add_checkpoint(self, document: dict[str, Any]) -> None:
        try:
            if self.public_key is None:
                raise checkpoints.CheckpointError("no public key was pinned to check it against")
            size, root = checkpoints.verify_document(document, self.public_key)
        except checkpoints.CheckpointError as exc:
            size = document.get("tree_size") if isinstance(document.get("tree_size"), int) else None
            self.problem(size, "checkpoint", str(exc))
            return
        self.checkpoints.append((size, root, document))

    # -- the row loop ----------------------------------------------------------------------------------------------

    def feed(self, seq: int, tx_id: str | None, kind: str | None, at: str | None, accounts: list[str] | None,
             amounts: list[int] | None, refs: dict[str, Any] | None, hash_: bytes | None, prev_hash: bytes | None,
             leaf: bytes | None = None) -> None:
        """One transaction as stored; `tx_id` None means its row is missing."""
        self.feed_rows(((seq, tx_id, kind, at, accounts, amounts, refs, hash_, prev_hash, leaf),))

    def feed_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Many transactions, as (seq, id, kind, at, accounts, amounts, refs, hash, prev_hash, leaf-or-None).

        The loop is written for speed (verify reads millions of rows): locals only, and each distinct shape of
        postings (kind, campaign, accounts, sides) is checked once and remembered; amounts are checked every time.
        """
        report = self.report
        partial = self.partial
        dumps, sort, sha256 = orjson.dumps, orjson.OPT_SORT_KEYS, hashlib.sha256
        shapes = self._shapes
        balances = self.balances
        totals = self.totals
        append_leaf = self._append_leaf
        problem = self.problem
        expected = self.expected_seq
        chained = self.prev_hash
        count = 0
        for seq, tx_id, kind, at, accounts, amounts, refs, hash_, prev_hash, leaf in rows:
            count += 1
            if seq != expected and not partial:
                problem(expected, "sequence", f"expected seq {expected}, found {seq}")
            expected = seq + 1
            if tx_id is None or accounts is None or amounts is None or refs is None or kind is None or at is None:
                problem(seq, "missing", "the sequenced transaction's row is missing")
                chained = hash_ if hash_ is not None else canonical.ZERO_HASH
                append_leaf(canonical.ZERO_HASH)
                continue
            body = dumps({"id": tx_id, "seq": seq, "kind": kind, "at": at,
                          "postings": [{"account": account, "debit_fen": amount} if amount > 0
                                       else {"account": account, "credit_fen": -amount}
                                       for account, amount in zip(accounts, amounts)],
                          "refs": refs}, option=sort)
            if partial:
                chained = prev_hash if prev_hash is not None else chained
            elif prev_hash != chained:
                problem(seq, "chain", "prev_hash is not the previous transaction's hash")
            if sha256(chained + body).digest() != hash_:
                problem(seq, "hash", "the stored hash does not match the transaction's content")
            leaf_digest = sha256(b"\x00" + body).digest()
            if leaf is not None and leaf != leaf_digest:
                problem(seq, "leaf", "the stored Merkle leaf hash does not match the transaction's content")
            # Chain on the stored hash: one altered row is reported once, at its own seq, not at every later one.
            chained = hash_ if hash_ is not None else chained
            append_leaf(leaf_digest)

            campaign_id = refs.get("campaign_id")
            shape = (kind, campaign_id, *accounts, *[amount > 0 for amount in amounts])
            known = shapes.get(shape)
            if known is None:
                known = (model.check_postings(kind, campaign_id, accounts, amounts)
                         if isinstance(campaign_id, str) else "no campaign_id in refs")
                if known is None:
                    if len(shapes) > 1_000_000:
                        shapes.clear()
                    shapes[shape] = known = ""
            elif sum(amounts) != 0 or 0 in amounts:
                known = "debits and credits differ, or a posting is zero"
            if known:
                problem(seq, "postings", f"transaction {tx_id}: {known}")
                continue
            moved = 0
            for account, amount in zip(accounts, amounts):
                balances[account] = balances.get(account, 0) + amount
                if amount > 0:
                    moved += amount
                if kind in ("fund", "return") and account.startswith("fiscal:"):
                    part = totals.setdefault((campaign_id, kind, account[7:]), [0, 0])
                    part[0] += abs(amount)
                    part[1] += 1
                elif amount < 0 and balances[account] < 0 and account.startswith("escrow:"):
                    problem(seq, "escrow", f"{account} goes negative ({balances[account]} fen)")
            whole = totals.get((campaign_id, kind, ""))
            if whole is None:
                whole = totals[(campaign_id, kind, "")] = [0, 0]
            whole[0] += moved
            whole[1] += 1
        report.transactions += count
        self.expected_seq = expected
        self.prev_hash = chained

    def _append_leaf(self, leaf_digest: bytes) -> None:
        if self.partial:
            return
        if self.keep_nodes:
            completed: list[tuple[int, int, bytes]] = []
            self.tree.append(leaf_digest, completed)
            for level, _, digest in completed:
                nodes = self.nodes.get(level)
                if nodes is None:
                    nodes = self.nodes[level] = bytearray()
                nodes += digest
        else:
            self.tree.append(leaf_digest)
        if self.tree.size >= self._next_cp_size:
            self._check_checkpoints()

    def _check_checkpoints(self) -> None:
        size = self.tree.size
        while self._next_checkpoint < len(self.checkpoints) and self.checkpoints[self._next_checkpoint][0] <= size:
            cp_size, cp_root, _ = self.checkpoints[self._next_checkpoint]
            self._next_checkpoint += 1
            if cp_size == size:
                if self.tree.root() == cp_root:
                    self.report.checkpoints_verified += 1
                else:
                    self.problem(size, "checkpoint", f"the signed root at tree size {size} is not the root of the "
                                                     "transactions up to this seq")
        self._next_cp_size = (self.checkpoints[self._next_checkpoint][0]
                              if self._next_checkpoint < len(self.checkpoints) else 1 << 63)

    # -- the end -----------------------------------------------------------------------------------------------------

    def finish(self, rows_expected: int | None = None) -> Report:
        report = self.report
        size = self.tree.size
        if not self.partial:
            report.root_hash = self.tree.root().hex()
            for cp_size, _, _ in self.checkpoints[self._next_checkpoint:]:
                # A signed tree larger than the ledger: transactions were removed from its end.
                self.problem(size + 1, "checkpoint", f"a checkpoint signs {cp_size} transactions but only {size} "
                                                     "are in the ledger")
        return report

    def compare_balances(self, stored: dict[str, int], *, pending: dict[str, int] | None = None) -> None:
        """Recomputed balances (plus not-yet-sequenced postings) against the stored balance rows."""
        expected = dict(self.balances)
        for account, amount in (pending or {}).items():
            expected[account] = expected.get(account, 0) + amount
        self.report.accounts_checked = len(stored)
        for account in sorted(set(expected) | set(stored)):
            want, have = expected.get(account, 0), stored.get(account)
            if have is None:
                self.problem(None, "balance", f"{account} has postings but no account row")
            elif want != have:
                self.problem(None, "balance", f"{account} holds {have} fen but its postings add up to {want}")

    def compare_totals(self, stored: dict[tuple[str, str, str], tuple[int, int]],
                       pending: dict[tuple[str, str, str], list[int]] | None = None) -> None:
        expected = {key: list(value) for key, value in self.totals.items()}
        for key, (amount, count) in (pending or {}).items():
            slot = expected.setdefault(key, [0, 0])
            slot[0] += amount
            slot[1] += count
        for key in sorted(set(expected) | set(stored)):
            want = tuple(expected.get(key, (0, 0)))
            have = tuple(stored.get(key, (0, 0)))
            if want != have:
                self.problem(None, "totals", f"campaign totals {key} are {have} but the postings say {want}")


# -- the database --------------------------------------------------------------------------------------------------

STREAM = """
SELECT s.seq, s.hash, s.prev_hash, s.leaf_hash, t.id, t.kind, t.at, t.refs::text AS refs, t.accounts, t.amounts_fen
FROM ledger_sequence s LEFT JOIN ledger_transactions t ON t.id = s.tx_id
ORDER BY s.seq
"""
STREAM_CHUNK = 20_000


def _pending_postings(rows) -> tuple[dict[str, int], dict[tuple[str, str, str], list[int]]]:
    balances: dict[str, int] = {}
    totals: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        moved = 0
        for account, amount in zip(row["accounts"], row["amounts_fen"]):
            balances[account] = balances.get(account, 0) + amount
            moved += max(amount, 0)
            if account.startswith("fiscal:"):
                part = totals.setdefault((row["campaign_id"], row["kind"], account[7:]), [0, 0])
                part[0] += abs(amount)
                part[1] += 1
        whole = totals.setdefault((row["campaign_id"], row["kind"], ""), [0, 0])
        whole[0] += moved
        whole[1] += 1
    return balances, totals


async def verify_database(engine, public_key: bytes | None, *, sequence_first: bool = True,
                          check_nodes: bool = True) -> Report:
    """Verify the whole ledger in one consistent snapshot (REPEATABLE READ, read only)."""
    from voucher_engine.ledger import sequencer, service

    if sequence_first:
        await sequencer.drain(engine, wait=True)
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.transaction(isolation="repeatable_read", readonly=True):
            cps = [service._checkpoint_from_row(row).document()
                   for row in await raw.fetch("SELECT * FROM ledger_checkpoints ORDER BY tree_size")]
            verifier = ChainVerifier(public_key, cps, keep_nodes=check_nodes)
            format_at, loads = canonical.format_at, orjson.loads
            cursor = await raw.cursor(STREAM)
            while True:
                # Whole chunks per round trip: no per-row await on the way in.
                chunk = await cursor.fetch(STREAM_CHUNK)
                if not chunk:
                    break
                verifier.feed_rows(
                    (seq, tx_id, kind, format_at(at), accounts, amounts, loads(refs), hash_, prev, leaf)
                    if tx_id is not None else (seq, None, None, None, None, None, None, hash_, prev, None)
                    for seq, hash_, prev, leaf, tx_id, kind, at, refs, accounts, amounts in chunk)
            verifier.finish()
            pending = await raw.fetch(
                "SELECT t.campaign_id, t.kind, t.accounts, t.amounts_fen FROM ledger_transactions t "
                "WHERE t.id IN (SELECT unnest(tx_ids) FROM ledger_pending)")
            pending_balances, pending_totals = _pending_postings(pending)
            if pending:
                verifier.report.notes.append(f"{len(pending)} transactions were still waiting for the sequencer")
            stored = {row["account"]: row["balance_fen"]
                      for row in await raw.fetch("SELECT account, balance_fen FROM ledger_accounts")}
            verifier.compare_balances(stored, pending=pending_balances)
            stored_totals = {(row["campaign_id"], row["kind"], row["funder"]): (row["amount_fen"], row["tx_count"])
                             for row in await raw.fetch("SELECT * FROM ledger_campaign_totals")}
            verifier.compare_totals(stored_totals, pending_totals)
            orphans = await raw.fetch(
                "SELECT t.id FROM ledger_transactions t WHERE NOT EXISTS "
                "(SELECT 1 FROM ledger_sequence s WHERE s.tx_id = t.id) AND t.id NOT IN "
                "(SELECT unnest(tx_ids) FROM ledger_pending) LIMIT 10")
            for row in orphans:
                verifier.problem(None, "orphan", f"transaction {row['id']} is neither sequenced nor queued: "
                                                 "written behind the engine's back")
            if check_nodes:
                await _compare_nodes(raw, verifier)
    return verifier.report


async def _compare_nodes(raw, verifier: ChainVerifier) -> None:
    """Stored complete subtrees (what proofs are built from) against the recomputed ones, level by level."""
    reported: set[int] = set()
    count = 0
    async for row in raw.cursor("SELECT level, idx, hash FROM ledger_tree ORDER BY level, idx", prefetch=STREAM_CHUNK):
        level, idx = row["level"], row["idx"]
        count += 1
        expected = verifier.nodes.get(level)
        start = idx * 32
        if level in reported:
            continue
        if expected is None or start + 32 > len(expected) or expected[start:start + 32] != row["hash"]:
            reported.add(level)
            verifier.problem((idx + 1) << level, "tree", f"stored node (level {level}, index {idx}) is not the "
                                                         "hash of the transactions it covers")
    recomputed = sum(len(level_bytes) // 32 for level_bytes in verifier.nodes.values())
    if count != recomputed and not reported:
        verifier.problem(None, "tree", f"{count} stored tree nodes, {recomputed} expected")


# -- an exported CSV, offline ----------------------------------------------------------------------------------------


def csv_rows(handle: io.TextIOBase) -> Iterator[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(handle)
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise ValueError(f"the CSV header must be {','.join(CSV_COLUMNS)}")
    yield from reader


def verify_csv(handle: io.TextIOBase, public_key: bytes | None, checkpoint_documents: list[dict[str, Any]], *,
               partial: bool = False, trusted_tree_size: int | None = None) -> Report:
    """Verify an export (`GET /v1/ledger/export` or `voucher-engine ledger export`) against signed checkpoints.

    Without `partial` the CSV must be the whole ledger from seq 1; then the newest checkpoint must cover every row
    (a checkpoint that covers fewer is an old one replayed, and the rows after it are unproven). `partial` (a
    campaign's export) checks each row's own hash only. `trusted_tree_size` is the size of the newest checkpoint the
    auditor has seen before: an older one offered now is refused.
    """
    verifier = ChainVerifier(public_key, checkpoint_documents, partial=partial)
    if trusted_tree_size is not None:
        for size, _, _ in verifier.checkpoints:
            if size < trusted_tree_size:
                verifier.problem(size, "checkpoint", f"tree size {size} is older than the {trusted_tree_size} "
                                                     "already trusted: an old checkpoint replayed")
    for line_no, row in enumerate(csv_rows(handle), start=2):
        try:
            seq = int(row["seq"])
            accounts, amounts = canonical.amounts_from_postings(orjson.loads(row["postings"]))
            refs = orjson.loads(row["refs"])
            if not isinstance(refs, dict):
                raise ValueError("refs is not an object")
            hash_, prev = bytes.fromhex(row["hash"]), bytes.fromhex(row["prev_hash"])
        except (ValueError, orjson.JSONDecodeError) as exc:
            verifier.problem(verifier.expected_seq, "csv", f"line {line_no}: {exc}")
            verifier.expected_seq += 1
            continue
        verifier.feed(seq, row["id"], row["kind"], row["at"], accounts, amounts, refs, hash_, prev)
    report = verifier.finish()
    if not partial:
        covered = max((size for size, _, _ in verifier.checkpoints), default=0)
        if covered < report.transactions:
            verifier.problem(covered + 1, "checkpoint",
                             f"the newest checkpoint covers {covered} of {report.transactions} transactions: the rows "
                             "after it are not proven (an old checkpoint replayed?)")
    else:
        report.notes.append("a partial export: each row's hash was checked; links between rows, the tree and the "
                            "checkpoint cannot be, use inclusion proofs for those rows")
    report.notes.append("recomputed balances: " + ", ".join(f"{account} {amount}" for account, amount in
                                                            sorted(verifier.balances.items())[:20])
                        + (" ..." if len(verifier.balances) > 20 else ""))
    return report


def verify_proof(transaction: dict[str, Any], proof: dict[str, Any], public_key: bytes, *,
                 trusted_tree_size: int | None = None) -> int:
    """Check a served transaction against an inclusion proof and its checkpoint; answers the tree size proven.

    Raises merkle.ProofError or checkpoints.CheckpointError.
    """
    size, root = checkpoints.verify_document(proof["checkpoint"], public_key, not_older_than=trusted_tree_size)
    obj, _, _ = canonical.split_served(transaction)
    leaf = canonical.leaf_hash(canonical.canonical(obj))
    if proof.get("leaf_hash") is not None and proof["leaf_hash"] != leaf.hex():
        raise merkle.ProofError("the proof is for another transaction (leaf hashes differ)")
    if proof.get("tree_size") != size:
        raise merkle.ProofError("the proof's tree size is not its checkpoint's")
    if proof.get("leaf_index") != obj.get("seq", 0) - 1:
        raise merkle.ProofError("the proof's leaf index is not the transaction's seq - 1")
    try:
        path = [bytes.fromhex(item) for item in proof["audit_path"]]
    except (TypeError, ValueError, KeyError):
        raise merkle.ProofError("the audit path is not a list of hex hashes") from None
    merkle.verify_inclusion(proof["leaf_index"], size, leaf, path, root)
    return size
