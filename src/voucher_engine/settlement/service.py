"""Payout holds, payout runs and the bank's confirmations: the merchant's money leaving the engine.

A run is one database transaction: it locks the payable merchant accounts (in name order), reads what each holds of
money credited before the cutoff, and writes one item and one `payout` ledger transaction per merchant, in chunks of
the ledger's batch size so that memory stays flat over 100,000 merchants. A confirmation moves each item once:
`paid` on to `settled:<m>`, `failed` back to `merchant:<m>`.

Each cause has its own function (`_send_items`, `_confirm_paid`, `_confirm_failed`, `hold`, `release`) so that the
webhook events `payout.sent`, `payout.paid` and `payout.failed` can be recorded beside each, in the same transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.ledger import service as ledger
from voucher_engine.ledger.model import MAX_BATCH, NewTransaction, Posting
from voucher_engine.merchants import service as merchants
from voucher_engine.merchants.schemas import Merchant
from voucher_engine.settlement import repository
from voucher_engine.settlement.schemas import Confirmation, PayoutItem, PayoutRun, PayoutRunSummary

ITEMS_PAGE_LIMIT = 1000


def actor(subject: Subject) -> str:
    """Who did it, as kept beside the change: the role and the token's id (never the token)."""
    return f"{subject.role}:{subject.token_id}"


def new_run_id() -> str:
    return "pr_" + os.urandom(8).hex()


def new_item_ids(count: int) -> list[str]:
    noise = os.urandom(10 * count).hex()
    return ["pi_" + noise[20 * i : 20 * i + 20] for i in range(count)]


# -- holds -----------------------------------------------------------------------------------------------------------


async def hold(conn: AsyncConnection, subject: Subject, merchant_id: str, reason: str) -> Merchant:
    """Leave the merchant out of payout runs until released; it keeps redeeming. Holding a held merchant again
    keeps its `since` and takes the new reason."""
    raw = await driver(conn)
    if not await repository.set_hold(raw, merchant_id, reason, clock.now()):
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
    await repository.hold_event(raw, merchant_id, "hold", reason, actor(subject), clock.now())
    return await merchants.get(conn, merchant_id)


async def release(conn: AsyncConnection, subject: Subject, merchant_id: str) -> Merchant:
    """Put the merchant back into payout runs (a no-op for one that is not held)."""
    raw = await driver(conn)
    if not await repository.clear_hold(raw, merchant_id):
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
    await repository.hold_event(raw, merchant_id, "release", None, actor(subject), clock.now())
    return await merchants.get(conn, merchant_id)


async def hold_by_cause(raw: asyncpg.Connection, merchant_id: str, reason: str, actor: str, at: datetime) -> bool:
    """Hold the merchant for a cause that is not a caller (risk control names its flag as `actor`), in the caller's
    transaction; answers whether the merchant was off hold before, i.e. whether this cause put it on hold."""
    newly = await repository.set_hold_newly(raw, merchant_id, reason, at)
    if newly is None:
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
    await repository.hold_event(raw, merchant_id, "hold", reason, actor, at)
    return newly


async def release_by_cause(raw: asyncpg.Connection, merchant_id: str, actor: str, at: datetime) -> None:
    """Release the merchant for a cause that is not a caller (the flag that held it was cleared)."""
    if not await repository.clear_hold(raw, merchant_id):
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
    await repository.hold_event(raw, merchant_id, "release", None, actor, at)


async def holders_since_release(raw: asyncpg.Connection, merchant_id: str) -> list[str]:
    """Who put on or renewed the merchant's current hold (actors of its hold events since the last release)."""
    return await repository.holders_since_release(raw, merchant_id)


# -- runs ------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RunFigures:
    """What a run did, for its answer and for the benchmark: without holding every item in memory."""

    run_id: str
    total_fen: int = 0
    item_count: int = 0
    merchants_locked: int = 0
    phases_s: dict[str, float] = field(default_factory=dict)

    def lap(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.phases_s[phase] = self.phases_s.get(phase, 0.0) + now - started
        return now


async def create_run(engine: AsyncEngine, subject: Subject, cutoff: datetime) -> RunFigures:
    """Pay every merchant not on hold what its account holds of money credited before `cutoff`, in one database
    transaction. A second run pays only what came since: the first has moved the money out already."""
    now = clock.now()
    if cutoff.tzinfo is None:
        raise EngineError("VALIDATION_ERROR", "cutoff must carry a UTC offset (RFC 3339)")
    if cutoff > now:
        raise EngineError("VALIDATION_ERROR", f"cutoff {cutoff.isoformat()} is in the future (now {now.isoformat()})")
    figures = RunFigures(new_run_id())
    async with engine.begin() as conn:
        raw = await driver(conn)
        await repository.begin_run(raw, figures.run_id, cutoff, actor(subject), now)
        lap = time.perf_counter()
        figures.merchants_locked = await repository.lock_payable_accounts(raw)
        lap = figures.lap("lock", lap)
        payable = await repository.payable_amounts(raw, cutoff)
        lap = figures.lap("amounts", lap)
        after: str | None = None
        while chunk := await repository.payable_page(raw, after, MAX_BATCH):
            await _send_items(raw, figures, chunk, now)
            after = chunk[-1]["merchant_id"]
        lap = figures.lap("items", lap)
        finished = await repository.finish_run(raw, figures.run_id, figures.total_fen, figures.item_count)
        # The pair of what was asked of each chunk: the run's figures are the sum of its items.
        if finished["item_count"] != payable:
            raise EngineError("INTERNAL", "payout run items do not match the payable merchants")
        lap = time.perf_counter()
    figures.lap("commit", lap)
    return figures


async def _send_items(
    raw: asyncpg.Connection, figures: RunFigures, chunk: Sequence[asyncpg.Record], now: datetime
) -> None:
    """One chunk of a run: the items and their `payout` transactions (merchant:<m> -> payout:<m>), together.
    The `payout.sent` events belong here."""
    merchant_ids = [row["merchant_id"] for row in chunk]
    amounts = [int(row["amount_fen"]) for row in chunk]
    item_ids = new_item_ids(len(chunk))
    tx_ids = ledger.new_tx_ids(len(chunk))
    opened = [f"{kind}:{merchant_id}" for merchant_id in merchant_ids for kind in ("payout", "settled")]
    lap = time.perf_counter()
    await repository.open_payout_accounts(raw, opened, now)
    lap = figures.lap("items: accounts opened", lap)
    await repository.insert_items(
        raw, figures.run_id, item_ids, merchant_ids, [row["settlement_wallet"] for row in chunk], amounts, tx_ids
    )
    lap = figures.lap("items: rows", lap)
    txs = [
        NewTransaction(
            kind="payout",
            postings=(Posting(f"merchant:{m}", credit_fen=amount), Posting(f"payout:{m}", debit_fen=amount)),
            refs={"merchant_id": m, "payout_run_id": figures.run_id, "payout_item_id": item_id},
            at=now,
        )
        for m, amount, item_id in zip(merchant_ids, amounts, item_ids)
    ]
    await ledger.post_many(raw, txs, ids=tx_ids, savepoint=False)
    figures.lap("items: ledger", lap)
    figures.total_fen += sum(amounts)
    figures.item_count += len(chunk)


def _item(row: Any) -> PayoutItem:
    return PayoutItem(
        id=row["id"],
        run_id=row["run_id"],
        merchant_id=row["merchant_id"],
        settlement_wallet=row["settlement_wallet"],
        amount_fen=row["amount_fen"],
        status=row["status"],
        reference=row["reference"],
        ledger_tx_id=row["ledger_tx_id"],
        confirm_tx_id=row["confirm_tx_id"],
        bank_reference=row["bank_reference"],
        confirmed_at=row["confirmed_at"],
    )


def _summary(row: Any) -> PayoutRunSummary:
    return PayoutRunSummary(
        id=row["id"],
        cutoff=row["cutoff"],
        total_fen=row["total_fen"],
        item_count=row["item_count"],
        created_at=row["created_at"],
    )


async def get_run(
    conn: AsyncConnection, run_id: str, *, after: str | None = None, limit: int = ITEMS_PAGE_LIMIT
) -> PayoutRun:
    """The run with a page of its items (in item id order)."""
    raw = await driver(conn)
    row = await repository.get_run(raw, run_id)
    if row is None:
        raise EngineError("NOT_FOUND", f"no payout run {run_id!r}")
    items = await repository.items_page(raw, run_id, after, limit + 1)
    more = len(items) > limit
    page = [_item(item) for item in items[:limit]]
    summary = _summary(row)
    return PayoutRun(**summary.model_dump(), items=page, next_cursor=page[-1].id if more else None)


async def list_runs(conn: AsyncConnection, *, before: str | None, limit: int) -> tuple[list[PayoutRunSummary], bool]:
    """Runs, newest id first... ids are random, so the order is stable, not chronological."""
    raw = await driver(conn)
    rows = await repository.list_runs(raw, before, limit + 1)
    return [_summary(row) for row in rows[:limit]], len(rows) > limit


async def file_pages(engine: AsyncEngine, run_id: str, page_size: int = 5000):
    """The bank file's rows, page by page (`item_id,merchant_id,settlement_wallet,amount_fen,reference`)."""
    after: str | None = None
    while True:
        async with engine.connect() as conn:
            raw = await driver(conn)
            if after is None and await repository.get_run(raw, run_id) is None:
                raise EngineError("NOT_FOUND", f"no payout run {run_id!r}")
            rows = await repository.file_page(raw, run_id, after, page_size)
        yield rows
        if len(rows) < page_size:
            return
        after = rows[-1]["id"]


# -- confirmations ---------------------------------------------------------------------------------------------------


async def confirm(
    engine: AsyncEngine, subject: Subject, run_id: str, confirmations: Sequence[Confirmation]
) -> list[PayoutItem]:
    """Apply the bank's answers, all or nothing. An item already confirmed the same way is answered as it stands
    (a retry); one confirmed the other way is INVALID_STATE and nothing of the request is applied."""
    wanted: dict[str, Confirmation] = {}
    for confirmation in confirmations:
        if confirmation.item_id in wanted:
            raise EngineError("VALIDATION_ERROR", f"item {confirmation.item_id} is confirmed twice in one request")
        wanted[confirmation.item_id] = confirmation
    now = clock.now()
    async with engine.begin() as conn:
        raw = await driver(conn)
        if await repository.get_run(raw, run_id) is None:
            raise EngineError("NOT_FOUND", f"no payout run {run_id!r}")
        rows = await repository.lock_items(raw, run_id, list(wanted))
        missing = [item_id for item_id in wanted if item_id not in rows]
        if missing:
            raise EngineError("NOT_FOUND", f"no item {missing[0]} in payout run {run_id}")
        for item_id, confirmation in wanted.items():
            status = rows[item_id]["status"]
            if status != "sent" and status != confirmation.status:
                raise EngineError("INVALID_STATE", f"item {item_id} was already confirmed {status}")
        answered: dict[str, Any] = {}
        for item_id, confirmation in wanted.items():
            row = rows[item_id]
            if row["status"] != "sent":
                answered[item_id] = row  # a retry: as it stands
            elif confirmation.status == "paid":
                answered[item_id] = await _confirm_paid(raw, row, confirmation.bank_reference, now)
            else:
                answered[item_id] = await _confirm_failed(raw, row, confirmation.bank_reference, now)
    return [_item(answered[item_id]) for item_id in wanted]


async def _confirm_paid(raw: asyncpg.Connection, item: Any, bank_reference: str, now: datetime) -> Any:
    """The bank paid the item: payout:<m> -> settled:<m> (`payout_confirm`). The `payout.paid` event belongs here."""
    return await _move_item(raw, item, "paid", "payout_confirm", f"settled:{item['merchant_id']}", bank_reference, now)


async def _confirm_failed(raw: asyncpg.Connection, item: Any, bank_reference: str, now: datetime) -> Any:
    """The bank could not pay: payout:<m> -> merchant:<m> (`payout_reversal`), payable again by the next run.
    The `payout.failed` event belongs here."""
    return await _move_item(
        raw, item, "failed", "payout_reversal", f"merchant:{item['merchant_id']}", bank_reference, now
    )


async def _move_item(
    raw: asyncpg.Connection, item: Any, status: str, kind: str, to_account: str, bank_reference: str, now: datetime
) -> Any:
    merchant_id, amount = item["merchant_id"], int(item["amount_fen"])
    tx_id = ledger.new_tx_ids(1)[0]
    updated = await repository.confirm_item(raw, item["run_id"], item["id"], status, tx_id, bank_reference, now)
    if updated is None:  # the row is locked and was `sent`: never expected
        raise EngineError("INTERNAL", f"payout item {item['id']} could not be confirmed")
    tx = NewTransaction(
        kind=kind,
        postings=(Posting(f"payout:{merchant_id}", credit_fen=amount), Posting(to_account, debit_fen=amount)),
        refs={"merchant_id": merchant_id, "payout_run_id": item["run_id"], "payout_item_id": item["id"]},
        at=now,
    )
    await ledger.post_many(raw, [tx], ids=[tx_id], savepoint=False)
    return updated
