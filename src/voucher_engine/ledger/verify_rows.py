"""The verifier's row loop, and the database side of one contiguous range of seqs.

`RowVerifier` takes transactions in seq order and recomputes everything about them from their content: the
canonical bytes, the chain hash (checked against the stored hash and the next row's prev_hash), the leaf hash, the
Merkle tree (an O(log n) stack; the complete subtrees it closes are handed out for comparison with the stored ones,
a window at a time), every posting's shape and balance, and the campaign totals. It is written for speed, because
`ledger verify` reads millions of rows: one `orjson.dumps` per row (see canonical.canonical_parts), each distinct
shape of postings checked once and remembered, the hot state in local variables.

A verifier may start in the middle of the ledger, at a seq `lo` that is a multiple of 2^t (`block_level` t), so that
two processes can each take one part of the ledger (verify.py joins them):
- the chain starts from the stored hash of row `lo`, which the coordinator read in the same snapshot;
- the tree is kept as complete subtrees of 2^t leaves ("blocks", which are nodes of the real tree since `lo` is
  aligned) plus the stack of the block in progress; the coordinator folds them onto the left part's frontier;
- start balances are unknown, so for each escrow the lowest balance relative to the start is kept; the coordinator
  adds the true start and, if an escrow would have gone negative, runs the part again with known start balances.

`verify_range` streams a range from PostgreSQL with `COPY (SELECT ...) TO STDOUT`, one window of rows at a time, and
compares the recomputed subtrees of each window with `ledger_tree` as it passes them. `worker_main` is what the
second process runs (`python -c`), importing nothing heavier than asyncpg and orjson.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import pickle
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from voucher_engine.ledger import canonical, merkle, model, repository

MAX_DISCREPANCIES = 100
ZERO_HASH = bytes(32)
UNBOUNDED = 64  # a block level that is never reached: the verifier that starts at seq 0 keeps the whole tree
BLOCK_ROWS = 256  # seqs per COPY line from seq 1 up (see repository.copy_sequenced_rows)
WINDOW_ROWS = 131_072  # rows per COPY; the stored subtrees of one window are held in memory (32 bytes each)
MAX_AMOUNT_FEN = model.MAX_AMOUNT_FEN


@dataclass(frozen=True, slots=True)
class Discrepancy:
    seq: int | None
    check: str
    detail: str

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "ledger"
        return f"{where}: {self.check}: {self.detail}"


def _order(discrepancy: Discrepancy) -> tuple[bool, int]:
    return discrepancy.seq is None, discrepancy.seq or 0


def keep_first(problems: list[Discrepancy], new: Discrepancy) -> None:
    """Add `new`, keeping at most MAX_DISCREPANCIES: once full, the ones with the lowest seqs (they are not always
    found in seq order: a stored subtree is compared after the rows it covers, a checkpoint after the join)."""
    if len(problems) < MAX_DISCREPANCIES:
        problems.append(new)
        return
    worst = max(range(len(problems)), key=lambda i: _order(problems[i]))
    if _order(new) < _order(problems[worst]):
        problems[worst] = new


@dataclass
class RangeResult:
    """What one part of the ledger leaves for the coordinator (picklable: it crosses a process boundary)."""

    problems: list[Discrepancy]
    rows: int
    expected_seq: int
    prev_hash: bytes
    size: int  # leaves appended, counting from the start of the ledger
    stack: list[bytes]  # the tree's right edge (leaf_base 0) or the block in progress
    blocks: list[bytes]  # complete subtrees of 2^block_level leaves, in order (parts that start after seq 0)
    balances: dict[str, int]
    lows: dict[str, int]  # per escrow, the lowest balance relative to the start (unknown start balances only)
    totals: dict[tuple[str, str, str], list[int]]
    checkpoints_verified: int
    checkpoint_states: list[tuple[int, int, list[bytes]]]  # (tree size, blocks done, stack) at each checkpoint
    missing: int = 0  # sequenced rows whose transaction row was not there
    tree_levels_reported: set[int] = field(default_factory=set)


def _raw(hex_text: Any) -> bytes:
    """The bytes a stored hash spells; something that is not hex chains as itself (and then matches nothing)."""
    try:
        return bytes.fromhex(hex_text)
    except (TypeError, ValueError):
        return str(hex_text).encode()


class RowVerifier:
    """Feed it transactions in seq order with `feed`; `result()` answers what it found."""

    def __init__(
        self,
        *,
        lo: int = 0,
        prev_hash: bytes = ZERO_HASH,
        block_level: int = UNBOUNDED,
        start_balances: dict[str, int] | None = None,
        checkpoint_roots: dict[int, bytes] | None = None,
        partial: bool = False,
    ):
        # lo: the seq before the first row (0 for the whole ledger); leaf positions start there too.
        self.partial = partial  # a filtered export: links between rows and the tree cannot be checked
        self.problems: list[Discrepancy] = []
        self.rows = 0
        self.missing = 0
        self.expected_seq = lo + 1
        self.prev_hash = prev_hash
        self.prev_hash_hex = prev_hash.hex()
        self.size = lo
        self.block_level = block_level
        self.stack: list[bytes] = []
        self.blocks: list[bytes] = []
        # Subtrees closed since the last `take_nodes`, level by level (index = level), and where each level began.
        self.nodes: list[bytearray] = [bytearray() for _ in range(UNBOUNDED + 1)]
        self.nodes_from = lo
        self.known_start = start_balances is not None
        self.balances: dict[str, int] = dict(start_balances or {})
        self.lows: dict[str, int] = {}
        self.totals: dict[tuple[str, str, str], list[int]] = {}
        self._shapes: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        # Checkpoints inside this part: their roots are compared here when the tree starts at 0, else the state at
        # their size is kept for the coordinator.
        self.checkpoint_roots = dict(checkpoint_roots or {})
        self._cp_sizes = sorted(size for size in self.checkpoint_roots if size > lo)
        self._next_cp = self._cp_sizes.pop(0) if self._cp_sizes else -1
        self.checkpoints_verified = 0
        self.checkpoint_states: list[tuple[int, int, list[bytes]]] = []
        self.tree_levels_reported: set[int] = set()

    # -- recording -------------------------------------------------------------------------------------------------

    def problem(self, seq: int | None, check: str, detail: str) -> None:
        keep_first(self.problems, Discrepancy(seq, check, detail))

    def _shape(
        self, key: tuple[Any, ...], kind: Any, campaign_id: Any, accounts: list[Any], amounts: list[Any]
    ) -> tuple[Any, ...]:
        """Check a new shape of postings once; answer (why not valid or "", postings template, per-posting plan)."""
        debits = [amount > 0 for amount in amounts]
        template = canonical.postings_template(accounts, debits)
        merchant_kind = kind in model.MERCHANT_KINDS
        if not merchant_kind and not isinstance(campaign_id, str):
            why = "no campaign_id in refs"
        else:
            why = model.check_postings(kind, campaign_id, accounts, amounts) or ""
        plan: list[tuple[str, bool, list[int] | None]] = []
        whole = None
        if not why:
            # A payout kind is in no campaign's totals: its count goes to a list that nothing reads.
            whole = [0, 0] if merchant_kind else self.totals.setdefault((campaign_id, kind, ""), [0, 0])
            for account, debit in zip(accounts, debits):
                self.balances.setdefault(account, 0)
                escrow_credit = not debit and account.startswith("escrow:")
                if escrow_credit and not self.known_start:
                    self.lows.setdefault(account, 0)
                funder = None
                if kind in ("fund", "return") and account.startswith("fiscal:"):
                    funder = self.totals.setdefault((campaign_id, kind, account[7:]), [0, 0])
                plan.append((account, escrow_credit, funder))
        if len(self._shapes) > 1_000_000:
            self._shapes.clear()
        entry = (why, template, whole, plan)
        self._shapes[key] = entry
        return entry

    # -- the row loop ----------------------------------------------------------------------------------------------

    def feed(self, rows: list[Any]) -> None:
        """Transactions as (seq, hash, prev_hash, leaf-or-None, id, kind, at, accounts, amounts, refs), the three
        hashes in lowercase hex.

        `id` None means the sequenced transaction's row is missing. Written for speed: locals only.
        """
        problem = self.problem
        partial = self.partial
        known = self.known_start
        shapes = self._shapes
        new_shape = self._shape
        balances = self.balances
        lows = self.lows
        nodes = self.nodes
        stack = self.stack
        push, pop = stack.append, stack.pop
        blocks = self.blocks
        block_level = self.block_level
        dumps, sort_keys, fragment = orjson.dumps, orjson.OPT_SORT_KEYS, orjson.Fragment
        sha256 = hashlib.sha256
        zero = ZERO_HASH
        max_fen = MAX_AMOUNT_FEN
        expected = self.expected_seq
        chained = self.prev_hash
        chained_hex = self.prev_hash_hex
        size = self.size
        next_cp = self._next_cp
        count = 0
        for seq, hash_hex, prev_hex, leaf_hex, tx_id, kind, at, accounts, amounts, refs in rows:
            count += 1
            if seq != expected and not partial:
                problem(expected, "sequence", f"expected seq {expected}, found {seq}")
            expected = seq + 1
            entry = None
            leaf_digest = zero
            if tx_id is None:
                self.missing += 1
                problem(seq, "missing", "the sequenced transaction's row is missing")
            else:
                try:
                    if len(accounts) == 2:
                        a0, a1 = amounts
                        key = (kind, refs.get("campaign_id"), accounts[0], accounts[1], a0 > 0, a1 > 0)
                        entry = shapes.get(key)
                        if entry is None:
                            entry = new_shape(key, kind, refs.get("campaign_id"), accounts, amounts)
                        postings = entry[1] % (a0 if a0 > 0 else -a0, a1 if a1 > 0 else -a1)
                    else:
                        key = (kind, refs.get("campaign_id"), *accounts, *[amount > 0 for amount in amounts])
                        entry = shapes.get(key)
                        if entry is None:
                            entry = new_shape(key, kind, refs.get("campaign_id"), accounts, amounts)
                        postings = entry[1] % tuple(amount if amount > 0 else -amount for amount in amounts)
                    # canonical.canonical_parts, inlined: the keys in JCS order, the postings already canonical.
                    body = dumps(
                        {"at": at, "id": tx_id, "kind": kind, "postings": fragment(postings), "refs": refs, "seq": seq},
                        option=sort_keys,
                    )
                except (TypeError, ValueError, AttributeError, orjson.JSONEncodeError) as exc:
                    entry = None
                    problem(seq, "postings", f"transaction {tx_id}: an ill-formed row ({exc})")
                else:
                    if partial:
                        if prev_hex is not None:
                            chained, chained_hex = _raw(prev_hex), prev_hex
                    elif prev_hex != chained_hex:
                        problem(seq, "chain", "prev_hash is not the previous transaction's hash")
                    digest = sha256(chained + body).digest()
                    digest_hex = digest.hex()
                    if digest_hex != hash_hex:
                        problem(seq, "hash", "the stored hash does not match the transaction's content")
                    else:
                        chained, chained_hex = digest, digest_hex
                    leaf_digest = sha256(b"\x00" + body).digest()
                    if leaf_hex is not None and leaf_digest.hex() != leaf_hex:
                        problem(seq, "leaf", "the stored Merkle leaf hash does not match the transaction's content")
            # Chain on the stored hash: one altered row is reported once, at its own seq, not at every later one.
            if hash_hex is not None and hash_hex != chained_hex:
                chained, chained_hex = _raw(hash_hex), hash_hex

            if not partial:
                push(leaf_digest)
                closing = size
                size += 1
                level = 0
                # Each trailing one bit of the old size is a complete subtree that now merges with its right sibling.
                while closing & 1 and level < block_level:
                    right = pop()
                    merged = sha256(b"\x01" + stack[-1] + right).digest()
                    stack[-1] = merged
                    closing >>= 1
                    level += 1
                    nodes[level].extend(merged)
                if level == block_level:
                    blocks.append(pop())
                if size == next_cp:
                    self.size = size
                    next_cp = self._at_checkpoint(size)

            if entry is None:
                continue
            why, _, whole, plan = entry
            if why:
                problem(seq, "postings", f"transaction {tx_id}: {why}")
                continue
            if len(plan) == 2:
                if a0 + a1 or a0 > max_fen or a0 < -max_fen:
                    problem(seq, "postings", f"transaction {tx_id}: debits and credits differ, or a posting is zero")
                    continue
                (account, escrow_credit, funder), (account1, escrow_credit1, funder1) = plan
                value = balances[account] + a0
                balances[account] = value
                if escrow_credit:
                    if known:
                        if value < 0:
                            problem(seq, "escrow", f"{account} goes negative ({value} fen)")
                    elif value < lows[account]:
                        lows[account] = value
                value = balances[account1] + a1
                balances[account1] = value
                if escrow_credit1:
                    if known:
                        if value < 0:
                            problem(seq, "escrow", f"{account1} goes negative ({value} fen)")
                    elif value < lows[account1]:
                        lows[account1] = value
                moved = a0 if a0 > 0 else a1
                whole[0] += moved
                whole[1] += 1
                if funder is not None:
                    funder[0] += -a0 if a0 < 0 else a0
                    funder[1] += 1
                if funder1 is not None:
                    funder1[0] += -a1 if a1 < 0 else a1
                    funder1[1] += 1
                continue
            if sum(amounts) != 0 or 0 in amounts or any(not -max_fen <= amount <= max_fen for amount in amounts):
                problem(seq, "postings", f"transaction {tx_id}: debits and credits differ, or a posting is zero")
                continue
            moved = 0
            for (account, escrow_credit, funder), amount in zip(plan, amounts):
                value = balances[account] + amount
                balances[account] = value
                if amount > 0:
                    moved += amount
                if escrow_credit:
                    if known:
                        if value < 0:
                            problem(seq, "escrow", f"{account} goes negative ({value} fen)")
                    elif value < lows[account]:
                        lows[account] = value
                if funder is not None:
                    funder[0] += abs(amount)
                    funder[1] += 1
            whole[0] += moved
            whole[1] += 1
        self.rows += count
        self.expected_seq = expected
        self.prev_hash = chained
        self.prev_hash_hex = chained_hex
        self.size = size
        self._next_cp = next_cp

    def _at_checkpoint(self, size: int) -> int:
        """The tree has `size` leaves and a checkpoint signs that size: check it (or keep the state for later)."""
        if self.block_level == UNBOUNDED:
            if merkle.fold(self.stack) == self.checkpoint_roots[size]:
                self.checkpoints_verified += 1
            else:
                self.problem(
                    size,
                    "checkpoint",
                    f"the signed root at tree size {size} is not the root of the transactions up to this seq",
                )
        else:
            self.checkpoint_states.append((size, len(self.blocks), list(self.stack)))
        return self._cp_sizes.pop(0) if self._cp_sizes else -1

    def take_nodes(self) -> tuple[int, int, list[bytes]]:
        """(first leaf position, last + 1, the subtrees closed in between by level) since the previous call."""
        taken = [bytes(level) for level in self.nodes]
        for level in self.nodes:
            del level[:]
        start, self.nodes_from = self.nodes_from, self.size
        return start, self.size, taken

    def result(self) -> RangeResult:
        return RangeResult(
            problems=self.problems,
            rows=self.rows,
            expected_seq=self.expected_seq,
            prev_hash=self.prev_hash,
            size=self.size,
            stack=list(self.stack),
            blocks=list(self.blocks),
            balances=self.balances,
            lows=self.lows,
            totals=self.totals,
            checkpoints_verified=self.checkpoints_verified,
            checkpoint_states=self.checkpoint_states,
            missing=self.missing,
            tree_levels_reported=self.tree_levels_reported,
        )


# -- rows from PostgreSQL --------------------------------------------------------------------------------------------
# The statements are in repository.py (the verifier's section): `copy_sequenced_rows` streams JSON arrays of
# `repository.VERIFIED_ROW` fields as COPY text, which ChunkParser reads.

_AT = repository.VERIFIED_ROW.index("at")

_JSON_AT = re.compile(r"(\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00:00")


def json_at(text: str) -> str:
    """PostgreSQL's JSON spelling of a UTC timestamptz (trailing zeros of the fraction dropped), as
    canonical.format_at spells it: always six fractional digits."""
    match = _JSON_AT.fullmatch(text)
    if match is None:
        return text  # not a time the engine writes (a year BC, say): it then hashes to something else, as it should
    return f"{match.group(1)}.{(match.group(2) or '').ljust(6, '0')}+00:00"


class ChunkParser:
    """COPY text chunks of the verifier's rows (`repository.copy_sequenced_rows`) into the rows `RowVerifier.feed` takes."""

    def __init__(self, verifier: RowVerifier):
        self.verifier = verifier
        self._at_text = ""
        self._at = ""

    def parse(self, chunk: bytes) -> list[Any]:
        if b"\\" in chunk:
            # COPY text doubles every backslash; JSON text has no raw control characters, so nothing else is escaped.
            chunk = chunk.replace(b"\\\\", b"\\")
        try:
            # A line is one row or a block of rows joined by commas (see `repository.copy_sequenced_rows`): either way, joining the
            # lines with commas gives the rows of the chunk.
            rows = orjson.loads(b"[" + chunk.rstrip(b"\n").replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError:
            rows = [row for line in chunk.split(b"\n") if line for row in self._line(line)]
        for row in rows:
            at = row[_AT]
            # Six fractional digits are 32 characters; a time whose fraction ends in zeros is written shorter.
            if at is not None and len(at) != 32:
                if at != self._at_text:
                    self._at_text, self._at = at, json_at(at) if isinstance(at, str) else at
                row[_AT] = self._at
        return rows

    def _line(self, line: bytes) -> list[list[Any]]:
        """The rows of one line that orjson refused as a whole (a row nested deeper than it reads, say): each row on
        its own, so that a row that cannot be read is reported at its own seq (and chained on its hash) and the
        others of its block are still verified."""
        out = []
        for text in _split_rows(line):
            try:
                row = json.loads(text)
            except (ValueError, RecursionError) as exc:
                out.append(self._unreadable(text, exc))
                continue
            out.append(
                row if isinstance(row, list) and len(row) == 10 else self._unreadable(text, "not a row of ten fields")
            )
        return out

    def _unreadable(self, text: bytes, why: Any) -> list[Any]:
        match = re.match(rb'\[(-?\d+), ?("[0-9a-f]*"|null)', text)
        seq = int(match.group(1)) if match else self.verifier.expected_seq
        hash_hex = match.group(2).strip(b'"').decode() if match and match.group(2) != b"null" else None
        self.verifier.problem(seq, "row", f"the row cannot be read: {why}")
        return [seq, hash_hex, None, None, None, None, None, None, None, None]


def _split_rows(line: bytes) -> list[bytes]:
    """The top-level JSON values of a comma-separated line, cut by bracket depth outside strings (the rare path only:
    a line orjson could not read)."""
    rows, depth, start, in_string, escaped = [], 0, 0, False, False
    for i, byte in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
            if depth == 0:
                rows.append(line[start : i + 1].lstrip(b", "))
                start = i + 1
    if line[start:].strip(b", "):
        rows.append(line[start:].lstrip(b", "))  # an unterminated last value: reported as unreadable
    return rows


def node_ranges(start: int, end: int, max_level: int) -> list[tuple[int, int, int]]:
    """(level, first idx, last idx + 1) of the subtrees (level >= 1) closed by appending leaves [start, end)."""
    out = []
    level = 1
    while level <= max_level and (end >> level) > 0:
        lo, hi = start >> level, end >> level
        if hi > lo:
            out.append((level, lo, hi))
        level += 1
    return out


async def _stored_nodes(raw, ranges: list[tuple[int, int, int]]) -> dict[int, tuple[int, bytes]]:
    return await repository.stored_subtrees(raw, ranges) if ranges else {}


async def _compare_nodes(
    raw, verifier: RowVerifier, expected_start: int, expected_end: int, stored: dict[int, tuple[int, bytes]]
) -> None:
    """The subtrees recomputed in one window against the stored ones; the first wrong one per level is reported."""
    start, end, taken = verifier.take_nodes()
    for level, lo, hi in node_ranges(expected_start, expected_end, verifier.block_level):
        mine = taken[level]
        count, theirs = stored.get(level, (0, b""))
        if start == expected_start and end == expected_end and count == hi - lo and mine == theirs:
            continue
        if level in verifier.tree_levels_reported:
            continue
        # Something differs: find the first node that does, one by one.
        mine_lo = start >> level
        found = await repository.nodes_of_level(raw, level, min(lo, mine_lo), max(hi, mine_lo + len(mine) // 32))
        for k in range(len(mine) // 32):
            idx = mine_lo + k
            have = found.get(idx)
            if have != mine[32 * k : 32 * k + 32]:
                what = "missing" if have is None else "not the hash of the transactions it covers"
                verifier.problem((idx + 1) << level, "tree", f"stored node (level {level}, index {idx}) is {what}")
                verifier.tree_levels_reported.add(level)
                break


async def verify_range(
    raw,
    verifier: RowVerifier,
    lo: int,
    hi: int,
    *,
    check_nodes: bool = True,
    window: int = WINDOW_ROWS,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Stream seqs (lo, hi] through `verifier`, a window at a time; `raw` is in the verifier's snapshot already.

    `lo` may be below 0 for the first part (rows with a seq below 1 are then read and reported too). `progress`,
    if given, is told the last seq checked after each chunk of rows (for a progress bar).
    """
    parser = ChunkParser(verifier)

    async def sink(chunk: bytes) -> None:
        verifier.feed(parser.parse(chunk))
        if progress is not None:
            progress(verifier.expected_seq - 1)

    # The rows make no reference cycles; without the cyclic collector walking the young ones every few hundred
    # allocations, a row costs some 5% less.
    collecting = gc.isenabled()
    gc.disable()
    try:
        await _windows(raw, verifier, lo, hi, sink, check_nodes=check_nodes, window=window)
    finally:
        if collecting:
            gc.enable()
    if verifier.expected_seq <= hi:
        verifier.problem(
            verifier.expected_seq, "sequence", f"expected seq {verifier.expected_seq}, found none up to seq {hi}"
        )


async def _windows(raw, verifier: RowVerifier, lo: int, hi: int, sink, *, check_nodes: bool, window: int) -> None:
    start = lo
    while True:
        end = min(hi, max(start, 0) + window)
        expected_start, expected_end = max(start, 0), end
        stored = (
            await _stored_nodes(raw, node_ranges(expected_start, expected_end, verifier.block_level))
            if check_nodes
            else {}
        )
        verifier.take_nodes()
        if start < 0:
            # Seqs below 1 exist only if someone wrote them: read them one per line, then the rest in blocks.
            await repository.copy_sequenced_rows(raw, start, min(end, 0), sink)
        if end > 0:
            await repository.copy_sequenced_blocks(raw, max(start, 0), end, BLOCK_ROWS, sink)
        if check_nodes:
            await _compare_nodes(raw, verifier, expected_start, expected_end, stored)
        if end >= hi:
            break
        start = end


# -- the second process -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeJob:
    """One part of the ledger for a worker process: seqs (lo, hi] in the coordinator's exported snapshot."""

    url: str
    snapshot: str
    lo: int
    hi: int
    prev_hash: bytes
    block_level: int
    checkpoint_sizes: tuple[int, ...]
    check_nodes: bool


async def run_job(job: RangeJob) -> RangeResult:
    import asyncpg

    conn = await asyncpg.connect(job.url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await repository.begin_verifier_session(conn, snapshot=job.snapshot)
            verifier = RowVerifier(
                lo=job.lo,
                prev_hash=job.prev_hash,
                block_level=job.block_level,
                start_balances=None,
                checkpoint_roots=dict.fromkeys(job.checkpoint_sizes, b""),
            )
            await verify_range(conn, verifier, job.lo, job.hi, check_nodes=job.check_nodes)
            return verifier.result()
    finally:
        await conn.close()


def worker_main() -> None:
    """`python -c 'from voucher_engine.ledger.verify_rows import worker_main; worker_main()'`: a RangeJob in on stdin
    (pickled by the coordinator, our own parent), a RangeResult out on stdout."""
    job = pickle.load(sys.stdin.buffer)
    result = asyncio.run(run_job(job))
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
