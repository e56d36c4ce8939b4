"""The campaign's side of the money path: funding into escrow, the return at close, and totals from the ledger.

    fiscal:<funder> --fund--> escrow:<campaign> --return--> fiscal:<funder>

Both moves are one balanced ledger transaction each, written in the caller's database transaction together with
the status change that causes it. Splits follow shares.py: shares round down to the fen, the leftover fen go to
the first funder listed in the contract. This module is the only one in campaigns/ that speaks to the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.campaigns.shares import split_by_shares
from voucher_engine.invariants import invariant
from voucher_engine.ledger.model import NewTransaction, Posting


class _Ledger:
    """`voucher_engine.ledger.service`, imported on first use (it may land after this package)."""

    def __getattr__(self, name: str):
        from voucher_engine.ledger import service

        return getattr(service, name)


ledger = _Ledger()


def escrow_account(campaign_id: str) -> str:
    return f"escrow:{campaign_id}"


def fiscal_account(issuer_id: str) -> str:
    return f"fiscal:{issuer_id}"


@dataclass(frozen=True, slots=True)
class FunderShare:
    issuer_id: str
    share_bp: int


async def open_escrow(conn: AsyncConnection, campaign_id: str) -> None:
    await ledger.open_account(conn, escrow_account(campaign_id))


async def fund(conn: AsyncConnection, campaign_id: str, budget_fen: int, funders: Sequence[FunderShare]) -> str:
    """Move the whole budget from the funders' fiscal accounts into escrow; answers the ledger transaction id."""
    parts = split_by_shares(budget_fen, [funder.share_bp for funder in funders])
    postings = [
        Posting(fiscal_account(funder.issuer_id), credit_fen=part) for funder, part in zip(funders, parts) if part > 0
    ]
    postings.append(Posting(escrow_account(campaign_id), debit_fen=budget_fen))
    tx = await ledger.post(
        conn,
        NewTransaction(
            kind="fund",
            postings=tuple(postings),
            at=clock.now(),
            campaign_id=campaign_id,
            refs={"campaign_id": campaign_id, "shares_bp": {f.issuer_id: f.share_bp for f in funders}},
        ),
    )
    return _tx_id(tx)


async def return_unspent(
    conn: AsyncConnection, campaign_id: str, funders: Sequence[FunderShare]
) -> tuple[str | None, int]:
    """Return everything left in escrow to the funders in their shares; answers (transaction id or None, amount)."""
    amount_fen = await escrow_balance(conn, campaign_id)
    invariant(amount_fen >= 0, "the escrow is not negative before the return", campaign_id, amount_fen)
    if amount_fen == 0:
        return None, 0
    parts = split_by_shares(amount_fen, [funder.share_bp for funder in funders])
    postings = [Posting(escrow_account(campaign_id), credit_fen=amount_fen)]
    postings += [
        Posting(fiscal_account(funder.issuer_id), debit_fen=part) for funder, part in zip(funders, parts) if part > 0
    ]
    tx = await ledger.post(
        conn,
        NewTransaction(
            kind="return",
            postings=tuple(postings),
            at=clock.now(),
            campaign_id=campaign_id,
            refs={"campaign_id": campaign_id, "shares_bp": {f.issuer_id: f.share_bp for f in funders}},
        ),
    )
    # The pair of the assertion above: escrow is empty after the return, to the fen.
    left_fen = await escrow_balance(conn, campaign_id)
    invariant(left_fen == 0, "the escrow is empty after the return", campaign_id, left_fen)
    return _tx_id(tx), amount_fen


async def escrow_balance(conn: AsyncConnection, campaign_id: str) -> int:
    return int(await ledger.balance(conn, escrow_account(campaign_id)))


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    funded_fen: int
    redeemed_fen: int
    refunded_fen: int
    returned_fen: int
    outstanding_fen: int
    clawed_back_fen: int = 0


async def totals(conn: AsyncConnection, campaign_id: str) -> LedgerTotals:
    found = await ledger.campaign_totals(conn, campaign_id)
    get = (lambda name: found[name]) if isinstance(found, dict) else (lambda name: getattr(found, name))
    funded, redeemed = int(get("funded_fen")), int(get("redeemed_fen"))
    refunded, returned = int(get("refunded_fen")), int(get("returned_fen"))
    clawed_back = int(get("clawed_back_fen"))
    outstanding = funded - redeemed + refunded + clawed_back - returned
    return LedgerTotals(funded, redeemed, refunded, returned, outstanding, clawed_back)


def _tx_id(tx) -> str:
    return tx if isinstance(tx, str) else str(tx.id)
