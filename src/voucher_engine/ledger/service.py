"""The ledger's interface to the rest of the engine: accounts, posting, balances, totals, checkpoints and proofs.

    from voucher_engine.ledger import service as ledger
    from voucher_engine.ledger.model import NewTransaction, Posting

    await ledger.open_account(conn, "escrow:cmp_1")             # idempotent
    posted = await ledger.post(conn, NewTransaction(kind="redeem", campaign_id="cmp_1", at=clock.now(),
                 postings=(Posting("escrow:cmp_1", credit_fen=500), Posting("merchant:m1", debit_fen=500)),
                 refs={"voucher_id": "vch_1", "redemption_id": "rdm_1", "merchant_id": "m1"}))
    posted.id                                                     # the ledger_tx_id of the redemption
    await ledger.post_many(conn, [tx, tx, ...])                   # a micro-batch: one statement in all
    ids = ledger.new_tx_ids(2)                                    # ids first: write rows that name them, then
    await ledger.post_many(conn, [tx, tx], ids=ids, savepoint=False)  # post last, in one round trip

Sign convention: a debit is money in, a credit is money out; `balance_fen` = debits - credits (see model.py).

Posting happens in the caller's database transaction and commits or rolls back with it. It never hashes and never
takes a lock shared by all campaigns: each batch locks only the balance rows it moves, in name order. The seq, hash
chain and Merkle tree are added shortly after commit by the sequencer (sequencer.py); `sequence_now` waits for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.errors import EngineError
from voucher_engine.invariants import InvariantViolation, invariant
from voucher_engine.ledger import canonical, checkpoints, merkle, model, repository, sequencer
from voucher_engine.ledger.model import NewTransaction, PostedTransaction, Posting, PostingResult, PreparedPosting

__all__ = [
    "open_account",
    "post",
    "post_many",
    "new_tx_ids",
    "prepare",
    "refusals",
    "landed",
    "balance",
    "campaign_totals",
    "sequence_now",
    "drain",
    "make_checkpoint",
    "checkpoint_now",
    "NewTransaction",
    "Posting",
    "PostedTransaction",
    "PreparedPosting",
    "PostingResult",
]

ESCROW_CHECK = "ck_ledger_accounts_escrow_not_negative"

sequence_now = sequencer.sequence_now
drain = sequencer.drain


def new_tx_ids(count: int) -> list[str]:
    """Ids that start with the time in milliseconds (B-tree appends, not scatter), then 48 random bits."""
    stamp = f"ltx_{time.time_ns() // 1_000_000:011x}"
    noise = os.urandom(6 * count).hex()
    return [stamp + noise[12 * i : 12 * i + 12] for i in range(count)]


async def open_account(conn: AsyncConnection, name: str) -> None:
    """Open `fiscal:<issuer>`, `escrow:<campaign>` or `merchant:<merchant>` with a zero balance; idempotent."""
    kind = model.account_kind(name)
    raw = await repository.driver(conn)
    await repository.open_account(raw, name, kind, clock.now())


async def balance(conn: AsyncConnection, account: str) -> int:
    """Money in minus money out, including every transaction committed or written in this transaction so far."""
    model.account_kind(account)
    raw = await repository.driver(conn)
    value = await repository.balance(raw, account)
    if value is None:
        raise EngineError("NOT_FOUND", f"no ledger account {account!r}")
    return value


async def post(conn: AsyncConnection, tx: NewTransaction) -> PostedTransaction:
    """Post one balanced transaction in the caller's transaction; see `post_many` for the guarantees."""
    return (await post_many(conn, [tx]))[0]


TX_ID_PATTERN = re.compile(r"^ltx_[0-9a-f]{23}$")
UNIQUE_TX_ID = "pk_ledger_transactions"


async def post_many(
    conn: AsyncConnection | asyncpg.Connection,
    txs: Sequence[NewTransaction],
    *,
    ids: Sequence[str] | None = None,
    savepoint: bool = True,
) -> list[PostedTransaction]:
    """Post a micro-batch of balanced transactions in the caller's transaction, in one set-based statement.

    `conn`: a SQLAlchemy connection in a transaction, or an asyncpg connection inside its own transaction.

    `ids`: the transactions' ids, made beforehand with `new_tx_ids(len(txs))`, so that the caller can write rows
    that name them before posting and make the ledger its last statement before COMMIT: the batch's escrow and
    totals rows are then locked for that statement and the commit only. Without them, ids are made here.

    Raises EngineError VALIDATION_ERROR (unbalanced or ill-formed, or ids that are not one fresh `new_tx_ids` each:
    nothing written), INSUFFICIENT_FUNDS (an escrow would go negative: the database CHECK refused it), INVALID_STATE
    (an account was never opened: nothing written) or CONFLICT (an id is already in the ledger). The batch is all or
    nothing.

    `savepoint=True` (the default) wraps the statement in a savepoint, so after any of those errors the caller's
    transaction is still usable (three round trips). `savepoint=False` is for callers that roll their whole
    transaction back on any error anyway (one round trip): after INSUFFICIENT_FUNDS or CONFLICT the caller's
    transaction is aborted by PostgreSQL and can only be rolled back; after VALIDATION_ERROR and INVALID_STATE
    nothing was sent or written and it is still usable.

    To post in a statement of one's own instead (the redemption batch writes its rows and the ledger's in one round
    trip): `prepare`, call `ledger_post_batch` with the prepared `args` under `refusals`, then `landed`.
    """
    if not txs:
        return []
    posting = prepare(txs, ids)
    # A hot path may hand its own asyncpg connection, already in its transaction.
    raw = await repository.driver(conn) if isinstance(conn, AsyncConnection) else conn
    if savepoint:
        try:
            async with raw.transaction():  # a savepoint inside the caller's transaction
                result = await repository.post_batch(raw, posting)
        except asyncpg.CheckViolationError as exc:
            if exc.constraint_name != ESCROW_CHECK:
                raise
            # The savepoint is rolled back, so the caller's transaction can still say what each escrow holds.
            raise EngineError("INSUFFICIENT_FUNDS", await _overdraft_detail(raw, posting.deltas)) from None
        except asyncpg.UniqueViolationError as exc:
            conflict = _refusal(exc, posting)
            if conflict is None:
                raise
            raise conflict from None
    else:
        with refusals(posting):
            result = await repository.post_batch(raw, posting)
    return await landed(raw, posting, result)


def prepare(txs: Sequence[NewTransaction], ids: Sequence[str] | None = None) -> PreparedPosting:
    """Check the batch and turn it into `ledger_post_batch`'s arguments; nothing is sent. Raises VALIDATION_ERROR
    (unbalanced or ill-formed, more than `model.MAX_BATCH`, or `ids` that are not one fresh `new_tx_ids` each)."""
    if len(txs) > model.MAX_BATCH:
        raise EngineError("VALIDATION_ERROR", f"at most {model.MAX_BATCH} ledger transactions per batch")
    checked = [model.validate(tx) for tx in txs]
    if ids is None:
        ids = new_tx_ids(len(txs))
    else:
        ids = list(ids)
        if len(ids) != len(txs):
            raise EngineError("VALIDATION_ERROR", f"{len(ids)} ids for {len(txs)} ledger transactions")
        if len(set(ids)) != len(ids) or not all(isinstance(tx_id, str) and TX_ID_PATTERN.match(tx_id) for tx_id in ids):
            raise EngineError("VALIDATION_ERROR", "ledger transaction ids must be distinct, each from new_tx_ids()")

    deltas: dict[str, int] = {}
    totals: dict[tuple[str | None, str, str], list[int]] = {}
    flat_ix: list[int] = []
    flat_accounts: list[str] = []
    flat_amounts: list[int] = []
    for ix, (tx, (campaign_id, _, accounts, amounts)) in enumerate(zip(txs, checked), start=1):
        moved_fen = 0
        for account, amount in zip(accounts, amounts):
            deltas[account] = deltas.get(account, 0) + amount
            flat_ix.append(ix)
            flat_accounts.append(account)
            flat_amounts.append(amount)
            if amount > 0:
                moved_fen += amount
            if account.startswith("fiscal:"):
                # A funder's part of a fund (credit) or a return (debit).
                part = totals.setdefault((campaign_id, tx.kind, account[7:]), [0, 0])
                part[0] += abs(amount)
                part[1] += 1
        if campaign_id is None:
            continue  # a payout kind: a merchant's own money, in no campaign's totals
        whole = totals.setdefault((campaign_id, tx.kind, ""), [0, 0])
        whole[0] += moved_fen
        whole[1] += 1
    # Invariant, before writing: the batch as a whole moves no money into or out of existence.
    invariant(sum(deltas.values()) == 0, "the batch moves no money into or out of existence", deltas)
    accounts_sorted = sorted(deltas)
    total_keys = sorted(totals)
    args = (
        accounts_sorted,
        [deltas[account] for account in accounts_sorted],
        ids,
        [campaign_id for campaign_id, _, _, _ in checked],
        [tx.kind for tx in txs],
        [tx.at for tx in txs],
        [orjson.dumps(refs).decode() for _, refs, _, _ in checked],
        flat_ix,
        flat_accounts,
        flat_amounts,
        [key[0] for key in total_keys],
        [key[1] for key in total_keys],
        [key[2] for key in total_keys],
        [totals[key][0] for key in total_keys],
        [totals[key][1] for key in total_keys],
    )
    return PreparedPosting(
        tuple(txs), tuple(ids), tuple(checked), deltas, tuple(accounts_sorted), tuple(total_keys), args
    )


@contextlib.contextmanager
def refusals(posting: PreparedPosting) -> Iterator[None]:
    """Around a statement that calls `ledger_post_batch` with no savepoint: the database's refusals of the posting
    become the engine's errors (INSUFFICIENT_FUNDS, CONFLICT); the caller's transaction is aborted after either."""
    try:
        yield
    except (asyncpg.CheckViolationError, asyncpg.UniqueViolationError) as exc:
        refusal = _refusal(exc, posting)
        if refusal is None:
            raise
        raise refusal from None


def _refusal(exc: asyncpg.PostgresError, posting: PreparedPosting) -> EngineError | None:
    """The engine's error for a refusal of the posting, told by the violated constraint's name; else None."""
    constraint = getattr(exc, "constraint_name", None)
    if isinstance(exc, asyncpg.CheckViolationError) and constraint == ESCROW_CHECK:
        return EngineError("INSUFFICIENT_FUNDS", _overdraft_asked(posting.deltas))
    if isinstance(exc, asyncpg.UniqueViolationError) and constraint == UNIQUE_TX_ID:
        return EngineError("CONFLICT", "a ledger transaction id of this batch is already in the ledger")
    return None


async def landed(raw: asyncpg.Connection, posting: PreparedPosting, result: PostingResult) -> list[PostedTransaction]:
    """The posted transactions, once `ledger_post_batch` answered `result` for `posting`; raises INVALID_STATE when
    an account was never opened (then nothing of the posting was written)."""
    if result.moved != len(posting.accounts):
        # Nothing was written (the statement moves balances only when every account is open).
        opened = await repository.open_accounts(raw, list(posting.accounts))
        missing = [account for account in posting.accounts if account not in opened]
        raise EngineError("INVALID_STATE", f"ledger account(s) not open: {', '.join(missing[:5])}")
    # The pair of the check in `prepare`, after writing: every row landed.
    invariant(result.inserted == len(posting.txs), "every transaction was inserted", result.inserted, len(posting.txs))
    invariant(
        result.totals == len(posting.total_keys),
        "every running total was updated",
        result.totals,
        len(posting.total_keys),
    )
    invariant(result.batch is not None, "the batch was recorded for the sequencer")
    return [
        PostedTransaction(
            id=tx_id, kind=tx.kind, at=tx.at, campaign_id=campaign_id, postings=tuple(tx.postings), refs=refs
        )
        for tx_id, tx, (campaign_id, refs, _, _) in zip(posting.ids, posting.txs, posting.checked)
    ]


def _overdraft_asked(deltas: dict[str, int]) -> str:
    """INSUFFICIENT_FUNDS without a query (the transaction is aborted): what the batch asked of each escrow."""
    asked = [
        f"{account}: {-delta} fen asked"
        for account, delta in sorted(deltas.items())
        if account.startswith("escrow:") and delta < 0
    ]
    return "escrow would go negative: " + "; ".join(asked)


async def _overdraft_detail(raw: asyncpg.Connection, deltas: dict[str, int]) -> str:
    escrows = [account for account, delta in deltas.items() if account.startswith("escrow:") and delta < 0]
    held = await repository.balances(raw, escrows)
    short = [
        f"{account} holds {balance_fen} fen, {-deltas[account]} asked"
        for account, balance_fen in held.items()
        if balance_fen + deltas[account] < 0
    ]
    return "escrow would go negative: " + ("; ".join(short) if short else ", ".join(escrows))


async def campaign_totals(conn: AsyncConnection, campaign_id: str) -> dict[str, Any]:
    """A campaign's money as the ledger holds it, exact and in this transaction (no wait for the sequencer).

    Answers {"campaign_id", "funded_fen", "redeemed_fen", "refunded_fen", "returned_fen", "escrow_balance_fen",
    "outstanding_fen" (= escrow balance), "transactions": {kind: count}, "funders": {issuer_id: {"funded_fen",
    "returned_fen"}}}. Read from running totals kept by `post_many`; `verify` recomputes them from the postings.
    """
    raw = await repository.driver(conn)
    rows = await repository.campaign_totals(raw, campaign_id)
    escrow = await repository.balance(raw, model.escrow_account(campaign_id))
    out: dict[str, Any] = {
        "campaign_id": campaign_id,
        "funded_fen": 0,
        "redeemed_fen": 0,
        "refunded_fen": 0,
        "returned_fen": 0,
        "clawed_back_fen": 0,
        "escrow_balance_fen": escrow or 0,
        "transactions": {kind: 0 for kind in model.KINDS if kind not in model.MERCHANT_KINDS},
        "funders": {},
    }
    names = {
        "fund": "funded_fen",
        "redeem": "redeemed_fen",
        "refund": "refunded_fen",
        "return": "returned_fen",
        "clawback": "clawed_back_fen",
    }
    for row in rows:
        if row.funder == "":
            out[names[row.kind]] = row.amount_fen
            out["transactions"][row.kind] = row.tx_count
        else:
            funder = out["funders"].setdefault(row.funder, {"funded_fen": 0, "returned_fen": 0})
            funder[names[row.kind]] = row.amount_fen
    out["outstanding_fen"] = out["escrow_balance_fen"]
    # The books' equation holds at every commit: escrow = funded - redeemed + refunded + clawed back - returned.
    invariant(
        out["escrow_balance_fen"]
        == out["funded_fen"] - out["redeemed_fen"] + out["refunded_fen"] + out["clawed_back_fen"] - out["returned_fen"],
        "escrow = funded - redeemed + refunded + clawed back - returned",
        out,
    )
    return out


# -- checkpoints -------------------------------------------------------------------------------------------------


def _checkpoint_from_row(row) -> checkpoints.Checkpoint:
    return checkpoints.Checkpoint(
        origin=row["origin"],
        tree_size=row["tree_size"],
        root_hash=bytes(row["root_hash"]),
        signature=bytes(row["signature"]),
        public_key=bytes(row["public_key"]),
        signed_at=row["signed_at"],
    )


async def tree_size(conn: AsyncConnection) -> int:
    raw = await repository.driver(conn)
    return await repository.tree_size(raw)


async def root_at(conn: AsyncConnection, size: int) -> bytes:
    raw = await repository.driver(conn)
    nodes = merkle.decompose(0, size)
    found = await repository.fetch_nodes(raw, set(nodes))
    return merkle.fold([found[node] for node in nodes]) if nodes else merkle.EMPTY_ROOT


async def get_checkpoint(conn: AsyncConnection, size: int | None = None) -> checkpoints.Checkpoint | None:
    """The stored checkpoint at `size`, or the latest one."""
    raw = await repository.driver(conn)
    row = await repository.checkpoint_row(raw, size)
    return _checkpoint_from_row(row) if row is not None else None


async def make_checkpoint(
    conn: AsyncConnection, key: Ed25519PrivateKey, size: int | None = None
) -> checkpoints.Checkpoint | None:
    """Sign (or find) the checkpoint at `size` (default: everything sequenced); None while the ledger is empty.

    Only committed sequence rows are ever signed: `conn`'s transaction must not have written anything yet (so what it
    reads was committed by others and can no longer change); use `checkpoint_now` to sequence and sign in one call.
    """
    raw = await repository.driver(conn)
    if not await repository.nothing_written(raw):
        raise RuntimeError("a checkpoint is signed only in a transaction that has written nothing")
    head = await repository.tree_size(raw)
    size = head if size is None else size
    if size < 1:
        return None
    if size > head:
        raise EngineError("NOT_FOUND", f"the ledger has {head} sequenced transactions, not {size}")
    existing = await get_checkpoint(conn, size)
    if existing is not None:
        return existing
    signed = checkpoints.sign(key, checkpoints.origin(), size, await root_at(conn, size), clock.now())
    await repository.insert_checkpoint(
        raw,
        tree_size=signed.tree_size,
        origin=signed.origin,
        root_hash=signed.root_hash,
        signature=signed.signature,
        public_key=signed.public_key,
        signed_at=signed.signed_at,
    )
    stored = await get_checkpoint(conn, size)
    if stored is None:
        raise InvariantViolation(f"the checkpoint of tree size {size} just stored cannot be read back")
    invariant(stored.body == signed.body, "the stored checkpoint is the one signed", size)
    return stored


async def checkpoint_now(
    engine: AsyncEngine, key: Ed25519PrivateKey, size: int | None = None
) -> checkpoints.Checkpoint | None:
    """Sequence every committed batch, then sign the head (or `size`) in a transaction of its own."""
    await sequencer.drain(engine, wait=True)
    async with engine.begin() as conn:
        return await make_checkpoint(conn, key, size)


# -- proofs --------------------------------------------------------------------------------------------------------


async def inclusion_path(conn: AsyncConnection, index: int, size: int) -> list[bytes]:
    raw = await repository.driver(conn)
    ranges = merkle.inclusion_ranges(index, size)
    found = await repository.fetch_nodes(raw, merkle.nodes_for(ranges))
    return merkle.resolve(ranges, found)


async def consistency_path(conn: AsyncConnection, first: int, second: int) -> list[bytes]:
    if first == 0 or first == second:
        return []
    raw = await repository.driver(conn)
    ranges = merkle.consistency_ranges(first, second)
    found = await repository.fetch_nodes(raw, merkle.nodes_for(ranges))
    return merkle.resolve(ranges, found)


def served_row(row) -> dict[str, Any]:
    """A database row of repository.TX_COLUMNS as the served transaction object."""
    obj = canonical.tx_object(
        id=row["id"],
        seq=row["seq"],
        kind=row["kind"],
        at=canonical.format_at(row["at"]),
        accounts=row["accounts"],
        amounts_fen=row["amounts_fen"],
        refs=orjson.loads(row["refs"]),
    )
    return canonical.served(
        obj,
        bytes(row["hash"]) if row["hash"] is not None else None,
        bytes(row["prev_hash"]) if row["prev_hash"] is not None else None,
    )


# -- reconciliation --------------------------------------------------------------------------------------------------


def _pro_rata(total: int, weights: list[int]) -> list[int]:
    """Split `total` in proportion to `weights`, to the fen, largest remainders first, so the parts add up exactly."""
    whole = sum(weights)
    if whole == 0 or total == 0:
        return [0] * len(weights)
    parts = [total * weight // whole for weight in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


async def reconcile(conn: AsyncConnection, campaign_id: str) -> dict[str, Any]:
    """A campaign's books from its postings (sequenced or queued), checked against the stored balance and totals.

    funded = escrow balance + (redeemed - refunded - clawed back) + returned, where the escrow balance is the stored,
    guarded one and the five flows are summed from the postings. Per funder, funded and returned are exact; redeemed,
    refunded and clawed back are attributed pro rata to what each funded, so a funder's escrow share is the remainder;
    a funder line is balanced when that remainder is not negative (beyond a fen per funder of rounding).
    """
    raw = await repository.driver(conn)
    rows = await repository.campaign_postings(raw, campaign_id)
    escrow = model.escrow_account(campaign_id)
    flows = {"fund": 0, "redeem": 0, "refund": 0, "return": 0, "clawback": 0}
    counts = {kind: 0 for kind in model.KINDS if kind not in model.MERCHANT_KINDS}
    funded_by: dict[str, int] = {}
    returned_by: dict[str, int] = {}
    for row in rows:
        kind, account, amount = row.kind, row.account, row.amount_fen
        if account == escrow:
            flows[kind] += abs(amount)
            counts[kind] += row.postings
        elif account.startswith("fiscal:"):
            target = funded_by if kind == "fund" else returned_by
            target[account[7:]] = target.get(account[7:], 0) + abs(amount)
    balance_read = await repository.balance(raw, escrow)
    if balance_read is None and not rows:
        raise EngineError("NOT_FOUND", f"no ledger account {escrow!r}")
    stored_balance = balance_read or 0
    totals = await campaign_totals(conn, campaign_id)
    funded, redeemed, refunded, returned = flows["fund"], flows["redeem"], flows["refund"], flows["return"]
    clawed_back = flows["clawback"]
    stored_flows = ("funded_fen", "redeemed_fen", "refunded_fen", "returned_fen", "clawed_back_fen")
    balanced = (
        funded == stored_balance + (redeemed - refunded - clawed_back) + returned
        and tuple(totals[name] for name in stored_flows) == (funded, redeemed, refunded, returned, clawed_back)
        and sum(funded_by.values()) == funded
        and sum(returned_by.values()) == returned
    )
    funders = sorted(set(funded_by) | set(returned_by))
    weights = [funded_by.get(funder, 0) for funder in funders]
    redeemed_parts = _pro_rata(redeemed, weights)
    refunded_parts = _pro_rata(refunded, weights)
    clawed_back_parts = _pro_rata(clawed_back, weights)
    lines = []
    for i, funder in enumerate(funders):
        spent = redeemed_parts[i] - refunded_parts[i] - clawed_back_parts[i]
        remainder = weights[i] - spent - returned_by.get(funder, 0)
        lines.append(
            {
                "funder": funder,
                "account": f"fiscal:{funder}",
                "funded_fen": weights[i],
                "returned_fen": returned_by.get(funder, 0),
                "redeemed_fen": redeemed_parts[i],
                "refunded_fen": refunded_parts[i],
                "clawed_back_fen": clawed_back_parts[i],
                "escrow_balance_fen": remainder,
                # No funder got back more than it put in and was not spent (a fen per funder of rounding).
                "balanced": remainder >= -len(funders),
            }
        )
    return {
        "campaign_id": campaign_id,
        "funded_fen": funded,
        "escrow_balance_fen": stored_balance,
        "redeemed_fen": redeemed,
        "refunded_fen": refunded,
        "returned_fen": returned,
        "clawed_back_fen": clawed_back,
        "balanced": balanced and all(line["balanced"] for line in lines),
        "transactions": counts,
        "funders": lines,
    }
