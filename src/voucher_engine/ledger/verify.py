"""The verifier: recompute everything from the raw rows and trust nothing the server says about them.

It checks, in seq order: seq starts at 1 with no gap; each transaction exists, is well formed and balanced and has
its kind's shape; its canonical bytes hash, with the previous hash, to its stored hash, and its stored prev_hash is
the previous stored hash; its leaf hash; no escrow balance ever goes negative. When the count reaches a checkpoint's
tree size it compares the recomputed root with the signed one and checks the signature against the pinned key (a
checkpoint beyond the end of the ledger means rows were removed). It compares every stored complete subtree (what
proofs are built from) with the recomputed one as it passes it. At the end it compares every account balance and
every campaign total recomputed from the postings with the tables, and finds transactions that are neither
sequenced nor queued.

The row loop is verify_rows.RowVerifier; it runs over the database (`verify_database`) and over an exported CSV
with a checkpoint file (`verify_csv`), so an auditor can run it offline. Problems are reported in seq order; the
first is the answer.

A large ledger is verified by two processes at once (this one and a `python -c` child), each streaming one part of
the seq range with COPY from one exported snapshot (`pg_export_snapshot()` / `SET TRANSACTION SNAPSHOT`), so both
read exactly the same rows. The parts are cut at a multiple of 2^t so that the second part's complete subtrees of
2^t leaves are nodes of the real tree; this process then joins the parts: the chain (the second part starts from
the stored hash the first part ends on, read in the snapshot), the tree (the second part's subtrees folded onto the
first part's right edge, which gives the roots at its checkpoints and the few nodes above 2^t), the balances and
the totals. If an escrow would have gone negative in the second part once its true start balances are known, that
part is run again here with them, to name the seq exactly.
"""

from __future__ import annotations

import asyncio
import csv
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from voucher_engine.ledger import canonical, checkpoints, merkle, repository
from voucher_engine.ledger.verify_rows import (
    UNBOUNDED,
    ZERO_HASH,
    Discrepancy,
    RangeJob,
    RangeResult,
    RowVerifier,
    keep_first,
    verify_range,
)

__all__ = [
    "Discrepancy",
    "Report",
    "verify_database",
    "verify_csv",
    "verify_proof",
    "verify_consistency_offline",
    "csv_rows",
    "CSV_COLUMNS",
]

CSV_COLUMNS = ("seq", "id", "kind", "at", "postings", "refs", "hash", "prev_hash")
# Below this many rows a second process costs more (its start, about half a second) than it saves.
PARALLEL_MIN_ROWS = 150_000
FIRST_PART_HEAD_START = 32  # the first part's extra share of a large ledger: 1/32 of its rows
FIRST_SEQ = -(1 << 63)  # the first part reads every seq up to its end, so rows numbered below 1 are seen too


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

    def problem(self, seq: int | None, check: str, detail: str) -> None:
        keep_first(self.discrepancies, Discrepancy(seq, check, detail))

    def document(self) -> dict[str, Any]:
        first = self.first
        return {
            "ok": self.ok,
            "transactions": self.transactions,
            "checkpoints_verified": self.checkpoints_verified,
            "accounts_checked": self.accounts_checked,
            "root_hash": self.root_hash,
            "first_discrepancy": None
            if first is None
            else {"seq": first.seq, "check": first.check, "detail": first.detail},
            "discrepancies": [{"seq": d.seq, "check": d.check, "detail": d.detail} for d in self.discrepancies],
            "notes": self.notes,
        }


def _signed_roots(report: Report, public_key: bytes | None, documents: Iterable[dict[str, Any]]) -> dict[int, bytes]:
    """Tree size -> root of every checkpoint whose signature verifies against the pinned key; the others are
    reported at their tree size."""
    roots: dict[int, bytes] = {}
    for document in documents:
        try:
            if public_key is None:
                raise checkpoints.CheckpointError("no public key was pinned to check it against")
            size, root = checkpoints.verify_document(document, public_key)
        except checkpoints.CheckpointError as exc:
            claimed = document.get("tree_size")
            report.problem(claimed if isinstance(claimed, int) else None, "checkpoint", str(exc))
            continue
        roots[size] = root
    return roots


def _compare_balances(
    report: Report, expected: dict[str, int], stored: dict[str, int], pending: dict[str, int]
) -> None:
    """Recomputed balances (plus not-yet-sequenced postings) against the stored balance rows."""
    expected = dict(expected)
    for account, amount in pending.items():
        expected[account] = expected.get(account, 0) + amount
    report.accounts_checked = len(stored)
    for account in sorted(set(expected) | set(stored)):
        want, have = expected.get(account, 0), stored.get(account)
        if have is None:
            report.problem(None, "balance", f"{account} has postings but no account row")
        elif want != have:
            report.problem(None, "balance", f"{account} holds {have} fen but its postings add up to {want}")


def _compare_totals(
    report: Report,
    recomputed: dict[tuple[str, str, str], list[int]],
    stored: dict[tuple[str, str, str], tuple[int, int]],
    pending: dict[tuple[str, str, str], list[int]],
) -> None:
    expected = {key: list(value) for key, value in recomputed.items()}
    for key, (amount, count) in pending.items():
        slot = expected.setdefault(key, [0, 0])
        slot[0] += amount
        slot[1] += count
    for key in sorted(set(expected) | set(stored)):
        want = tuple(expected.get(key, (0, 0)))
        have = tuple(stored.get(key, (0, 0)))
        if want != have:
            report.problem(None, "totals", f"campaign totals {key} are {have} but the postings say {want}")


# -- the database --------------------------------------------------------------------------------------------------


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
        if row["campaign_id"] is None:
            continue  # a payout kind: in no campaign's totals
        whole = totals.setdefault((row["campaign_id"], row["kind"], ""), [0, 0])
        whole[0] += moved
        whole[1] += 1
    return balances, totals


def plan_parts(size: int, parts: int) -> tuple[int, list[int]]:
    """(t, seqs cut at) for verifying `size` rows in `parts` processes: every cut is a multiple of 2^t and the
    parts after the first hold at most about 64 subtrees of 2^t leaves each, so the join folds only a few nodes."""
    if parts <= 1 or size < 2 * parts:
        return UNBOUNDED, [0, size]
    t = max(0, (size // parts).bit_length() - 6)
    # The first part starts reading at once; the others wait for a new interpreter (about half a second, measured as
    # the second process finishing 0.8 s after the first over a million rows), so a large ledger's first part is
    # given a head start of 1/32 of the rows.
    head = size // FIRST_PART_HEAD_START if size >= PARALLEL_MIN_ROWS else 0
    cuts = [0]
    for i in range(1, parts):
        cut = (head + (size - head) * i // parts) >> t << t
        if cuts[-1] < cut < size:
            cuts.append(cut)
    cuts.append(size)
    return t, cuts


WORKER = "from voucher_engine.ledger.verify_rows import worker_main; worker_main()"


async def _run_worker(job: RangeJob) -> RangeResult:
    """One part in a child process: this interpreter, the same import path, the RangeJob in on stdin (pickle, our own
    child), the result out on stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await proc.communicate(pickle.dumps(job))
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(err.decode(errors="replace").strip().splitlines()[-1] if err else f"exit {proc.returncode}")
    result = pickle.loads(out)
    assert isinstance(result, RangeResult)
    return result


def _url_of(engine) -> str:
    from voucher_engine.db.engine import plain_url

    return plain_url(engine.url.render_as_string(hide_password=False))


async def verify_database(
    engine,
    public_key: bytes | None,
    *,
    sequence_first: bool = True,
    check_nodes: bool = True,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Verify the whole ledger in one consistent snapshot (REPEATABLE READ, read only).

    `workers`: how many processes read the rows (default: 2 when the ledger has PARALLEL_MIN_ROWS rows or more and
    the machine more than one core, else 1). `progress(done, total)`, if given, is told how many of the sequenced
    transactions are checked (this process's part as it goes, the second process's when it is done).
    """
    from voucher_engine.ledger import sequencer, service

    if sequence_first:
        await sequencer.drain(engine, wait=True)
    report = Report()
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.transaction(isolation="repeatable_read", readonly=True):
            await repository.begin_verifier_session(raw)
            documents = [service._checkpoint_from_row(row).document() for row in await repository.all_checkpoints(raw)]
            roots = _signed_roots(report, public_key, documents)
            size = await repository.sequenced_count(raw)
            if workers is None:
                workers = 2 if size >= PARALLEL_MIN_ROWS and (os.cpu_count() or 1) > 1 else 1
            block_level, cuts = plan_parts(size, workers)

            jobs: list[asyncio.Task[RangeResult]] = []
            starts: list[bytes] = [ZERO_HASH]
            if len(cuts) > 2:
                snapshot = await repository.export_snapshot(raw)
                for i in range(1, len(cuts) - 1):
                    # The chain of part i starts from the stored hash the part before it ends on.
                    start = await repository.hash_at_or_before(raw, cuts[i])
                    starts.append(start if start is not None else ZERO_HASH)
                    job = RangeJob(
                        url=_url_of(engine),
                        snapshot=snapshot,
                        lo=cuts[i],
                        hi=cuts[i + 1],
                        prev_hash=starts[i],
                        block_level=block_level,
                        checkpoint_sizes=tuple(s for s in roots if cuts[i] < s <= cuts[i + 1]),
                        check_nodes=check_nodes,
                    )
                    jobs.append(asyncio.create_task(_run_worker(job)))

            first = RowVerifier(
                lo=0, start_balances={}, checkpoint_roots={s: root for s, root in roots.items() if s <= cuts[1]}
            )
            first_part = (lambda seq: progress(max(0, seq), size)) if progress is not None else None
            try:
                await verify_range(raw, first, FIRST_SEQ, cuts[1], check_nodes=check_nodes, progress=first_part)
            except BaseException:
                for job_task in jobs:
                    job_task.cancel()
                raise
            results = [first.result()]
            for i, job_task in enumerate(jobs, start=1):
                try:
                    results.append(await job_task)
                except Exception as exc:  # noqa: BLE001 - the part is verified here instead
                    report.notes.append(f"the second process failed ({exc}); its part was verified in this one")
                    results.append(await _part_here(raw, cuts, i, starts[i], block_level, roots, None, check_nodes))
            if progress is not None:
                progress(size, size)
            balances, totals = await _join_books(raw, report, results, cuts, starts, block_level, roots, check_nodes)
            await _join_tree(raw, report, results, cuts, block_level, roots, check_nodes)

            await repository.end_verifier_streaming(raw)
            pending = await repository.pending_transactions(raw)
            pending_balances, pending_totals = _pending_postings(pending)
            if pending:
                report.notes.append(f"{len(pending)} transactions were still waiting for the sequencer")
            stored = await repository.all_balances(raw)
            _compare_balances(report, balances, stored, pending_balances)
            stored_totals = await repository.all_campaign_totals(raw)
            _compare_totals(report, totals, stored_totals, pending_totals)
            # Every transaction row is sequenced (and was read above) or queued. Counting is enough to know; only
            # when the counts differ is the anti-join over both tables run, to name the strays.
            written = await repository.transaction_count(raw)
            accounted = sum(result.rows - result.missing for result in results) + len(pending)
            if written != accounted:
                orphans = await repository.unaccounted_transactions(raw, limit=10)
                for tx_id in orphans:
                    report.problem(
                        None,
                        "orphan",
                        f"transaction {tx_id} is neither sequenced nor queued: written behind the engine's back",
                    )
                if not orphans:
                    report.problem(
                        None,
                        "orphan",
                        f"{written} transaction rows, but {accounted} sequenced or queued: one is counted twice",
                    )
            if check_nodes:
                leaves = results[-1].size
                expected_nodes = sum(leaves >> level for level in range(1, leaves.bit_length() + 1))
                stored_nodes = await repository.tree_node_count(raw)
                if stored_nodes != expected_nodes and not any(d.check == "tree" for d in report.discrepancies):
                    report.problem(None, "tree", f"{stored_nodes} stored tree nodes, {expected_nodes} expected")
    report.discrepancies.sort(key=lambda d: (d.seq is None, d.seq or 0))
    return report


async def _part_here(
    raw,
    cuts: list[int],
    i: int,
    start: bytes,
    block_level: int,
    roots: dict[int, bytes],
    start_balances: dict[str, int] | None,
    check_nodes: bool,
) -> RangeResult:
    """Part i verified in this process (its worker failed, or its start balances are needed to name a seq)."""
    verifier = RowVerifier(
        lo=cuts[i],
        prev_hash=start,
        block_level=block_level,
        start_balances=start_balances,
        checkpoint_roots={s: b"" for s in roots if cuts[i] < s <= cuts[i + 1]},
    )
    await verify_range(raw, verifier, cuts[i], cuts[i + 1], check_nodes=check_nodes)
    return verifier.result()


async def _join_books(
    raw,
    report: Report,
    results: list[RangeResult],
    cuts: list[int],
    starts: list[bytes],
    block_level: int,
    roots: dict[int, bytes],
    check_nodes: bool,
):
    """Balances and totals over every part; the problems of every part, in seq order."""
    balances = dict(results[0].balances)
    for i in range(1, len(results)):
        result = results[i]
        if any(balances.get(account, 0) + low < 0 for account, low in result.lows.items()):
            # An escrow went negative somewhere in this part: run it again knowing where it started, to say where.
            result = results[i] = await _part_here(
                raw, cuts, i, starts[i], block_level, roots, dict(balances), check_nodes
            )
            balances = dict(result.balances)
        else:
            for account, delta in result.balances.items():
                balances[account] = balances.get(account, 0) + delta
    totals: dict[tuple[str, str, str], list[int]] = {}
    for result in results:
        report.transactions += result.rows
        report.checkpoints_verified += result.checkpoints_verified
        for problem in result.problems:
            report.problem(problem.seq, problem.check, problem.detail)
        for key, (amount, count) in result.totals.items():
            slot = totals.setdefault(key, [0, 0])
            slot[0] += amount
            slot[1] += count
    return balances, totals


async def _join_tree(
    raw,
    report: Report,
    results: list[RangeResult],
    cuts: list[int],
    block_level: int,
    roots: dict[int, bytes],
    check_nodes: bool,
) -> None:
    """Fold the parts' subtrees onto the first part's right edge: the roots at the later parts' checkpoints, the
    nodes above 2^t that no part could close alone, and the root."""
    first = results[0]
    if len(results) == 1:
        final_size, final_stack = first.size, first.stack
    else:
        final_size, final_stack = None, []
        # A part whose rows were not exactly its seqs (rows missing or added: already reported) cannot be joined.
        aligned = (
            first.size == cuts[1]
            and len(first.stack) == bin(first.size).count("1")
            and all(r.size == cuts[i + 1] for i, r in enumerate(results))
        )
        if aligned:
            tree = merkle.CompactTree(first.size, first.stack)
            completed: list[tuple[int, int, bytes]] = []
            for result in results[1:]:
                appended = 0
                for size, blocks_done, stack in result.checkpoint_states:
                    while appended < blocks_done:
                        tree.append_subtree(block_level, result.blocks[appended], completed)
                        appended += 1
                    if merkle.fold(tree.stack + stack) == roots[size]:
                        report.checkpoints_verified += 1
                    else:
                        report.problem(
                            size,
                            "checkpoint",
                            f"the signed root at tree size {size} is not the root of the transactions up to this seq",
                        )
                for block in result.blocks[appended:]:
                    tree.append_subtree(block_level, block, completed)
            final_size, final_stack = results[-1].size, tree.stack + results[-1].stack
            if check_nodes and completed:
                await _compare_joined_nodes(raw, report, completed)
        else:
            report.notes.append(
                "the parts could not be joined (rows are missing or out of place, see above): the "
                "root and the checkpoints after the first part were not checked"
            )
    if final_size is None:
        return
    report.root_hash = (merkle.fold(final_stack) if final_stack else merkle.EMPTY_ROOT).hex()
    for size in sorted(roots):
        if size > final_size:
            # A signed tree larger than the ledger: transactions were removed from its end.
            report.problem(
                final_size + 1,
                "checkpoint",
                f"a checkpoint signs {size} transactions but only {final_size} are in the ledger",
            )


async def _compare_joined_nodes(raw, report: Report, completed: list[tuple[int, int, bytes]]) -> None:
    found = await repository.tree_nodes(raw, [(level, idx) for level, idx, _ in completed])
    for level, idx, digest in completed:
        have = found.get((level, idx))
        if have != digest:
            what = "missing" if have is None else "not the hash of the transactions it covers"
            report.problem((idx + 1) << level, "tree", f"stored node (level {level}, index {idx}) is {what}")


# -- an exported CSV, offline ----------------------------------------------------------------------------------------

CSV_BATCH = 4096


def csv_rows(handle: Iterable[str]) -> Iterator[list[str]]:
    """The rows of an export after its header (which must be CSV_COLUMNS), as lists of the eight fields."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(handle)
    header = next(reader, None)
    if tuple(header or ()) != CSV_COLUMNS:
        raise ValueError(f"the CSV header must be {','.join(CSV_COLUMNS)}")
    yield from reader


def verify_csv(
    handle: Iterable[str],
    public_key: bytes | None,
    checkpoint_documents: list[dict[str, Any]],
    *,
    partial: bool = False,
    trusted_tree_size: int | None = None,
) -> Report:
    """Verify an export (`GET /v1/ledger/export` or `voucher-engine ledger export`) against signed checkpoints.

    Without `partial` the CSV must be the whole ledger from seq 1; then the newest checkpoint must cover every row
    (a checkpoint that covers fewer is an old one replayed, and the rows after it are unproven). `partial` (a
    campaign's export) checks each row's own hash only. `trusted_tree_size` is the size of the newest checkpoint the
    auditor has seen before: an older one offered now is refused.
    """
    report = Report()
    roots = _signed_roots(report, public_key, checkpoint_documents)
    refused = {d.seq: d.detail for d in report.discrepancies if d.check == "checkpoint"}
    if trusted_tree_size is not None:
        for size in sorted(roots):
            if size < trusted_tree_size:
                report.problem(
                    size,
                    "checkpoint",
                    f"tree size {size} is older than the {trusted_tree_size} "
                    "already trusted: an old checkpoint replayed",
                )
    verifier = RowVerifier(lo=0, start_balances={}, checkpoint_roots=roots, partial=partial)
    loads, from_postings = orjson.loads, canonical.amounts_from_postings
    batch: list[tuple[Any, ...]] = []
    for line_no, row in enumerate(csv_rows(handle), start=2):
        try:
            seq_text, tx_id, kind, at, postings, refs_text, hash_text, prev_text = row
            accounts, amounts = from_postings(loads(postings))
            refs = loads(refs_text)
            if not isinstance(refs, dict):
                raise ValueError("refs is not an object")
            batch.append(
                (
                    int(seq_text),
                    bytes.fromhex(hash_text).hex(),
                    bytes.fromhex(prev_text).hex(),
                    None,
                    tx_id,
                    kind,
                    at,
                    accounts,
                    amounts,
                    refs,
                )
            )
        except (ValueError, orjson.JSONDecodeError) as exc:
            verifier.feed(batch)
            batch = []
            verifier.problem(verifier.expected_seq, "csv", f"line {line_no}: {exc}")
            verifier.expected_seq += 1
            continue
        if len(batch) >= CSV_BATCH:
            verifier.feed(batch)
            batch = []
    verifier.feed(batch)
    result = verifier.result()
    report.transactions = result.rows
    report.checkpoints_verified = result.checkpoints_verified
    for problem in result.problems:
        report.problem(problem.seq, problem.check, problem.detail)
    if not partial:
        report.root_hash = (merkle.fold(result.stack) if result.stack else merkle.EMPTY_ROOT).hex()
        for size in sorted(roots):
            if size > result.size:
                report.problem(
                    result.size + 1,
                    "checkpoint",
                    f"a checkpoint signs {size} transactions but only {result.size} are in the ledger",
                )
        covered = max(roots, default=0)
        if covered < report.transactions:
            report.problem(covered + 1, "checkpoint", _unproven(covered, report.transactions, refused, roots))
    else:
        report.notes.append(
            "a partial export: each row's hash was checked; links between rows, the tree and the "
            "checkpoint cannot be, use inclusion proofs for those rows"
        )
    report.notes.append(
        "recomputed balances: "
        + ", ".join(f"{account} {amount}" for account, amount in sorted(result.balances.items())[:20])
        + (" ..." if len(result.balances) > 20 else "")
    )
    report.discrepancies.sort(key=lambda d: (d.seq is None, d.seq or 0))
    return report


def _unproven(covered: int, rows: int, refused: dict[int | None, str], roots: dict[int, bytes]) -> str:
    """Why the rows after `covered` are not proven by a signature, the real cause first: no checkpoint given, a
    checkpoint that does not verify under the pinned key, or (only when every checkpoint given verifies) one that
    is older than the file, which is what an old checkpoint replayed looks like."""
    after = f"transactions {covered + 1} to {rows} are" if covered + 1 < rows else f"transaction {rows} is"
    if not roots and not refused:
        return (
            f"no checkpoint was given (--checkpoint FILE, as served by GET /v1/ledger/checkpoints/latest), so no "
            f"signature proves the {rows} transactions of this file are the ledger's"
        )
    newer = [size for size in refused if size is not None and size > covered]
    if newer or not roots:
        size = max(newer, default=None)
        detail = refused[size] if size is not None else next(iter(refused.values()))
        return f"{detail}. Until a checkpoint verifies, {after} not proven"
    return (
        f"the newest checkpoint given covers {covered} of {rows} transactions, and its signature verifies: "
        f"{after} not proven by any signature. Give a newer checkpoint (GET /v1/ledger/checkpoints/latest); "
        "if the server answered this one as its latest, it is replaying an old checkpoint"
    )


def verify_consistency_offline(
    first_checkpoint: dict[str, Any], second_checkpoint: dict[str, Any], proof: dict[str, Any], public_key: bytes
) -> tuple[int, int]:
    """Check two served checkpoints against the pinned key and a served consistency proof between them
    (`GET /v1/ledger/consistency?from=M&to=N`): the tree of the second extends the tree of the first, per RFC 9162
    §2.1.4.2. Answers (M, N). Raises checkpoints.CheckpointError (a signature, first) or merkle.ProofError."""
    first, first_root = checkpoints.verify_document(first_checkpoint, public_key)
    second, second_root = checkpoints.verify_document(second_checkpoint, public_key)
    if second < first:
        raise merkle.ProofError(
            f"both signatures verify, but the second checkpoint ({second} transactions) is older than the first "
            f"({first}): a log only grows, so the newer one you were given is an old checkpoint replayed"
        )
    if proof.get("first") != first or proof.get("second") != second:
        raise merkle.ProofError(
            f"the proof is between tree sizes {proof.get('first')} and {proof.get('second')}, the checkpoints are "
            f"{first} and {second}: ask for GET /v1/ledger/consistency?from={first}&to={second}"
        )
    try:
        path = [bytes.fromhex(item) for item in proof["path"]]
    except (TypeError, ValueError, KeyError):
        raise merkle.ProofError("the consistency path is not a list of hex hashes") from None
    merkle.verify_consistency(first, second, first_root, second_root, path)
    return first, second


def verify_proof(
    transaction: dict[str, Any], proof: dict[str, Any], public_key: bytes, *, trusted_tree_size: int | None = None
) -> int:
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
