"""Bodies and answers of the settlement endpoints (API.md, "Merchant settlement", holds and clawbacks)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from voucher_engine.auth.schemas import StrictModel

MAX_CONFIRMATIONS = 1000
ITEM_ID_PATTERN = r"^pi_[0-9a-f]{20}$"
RUN_ID_PATTERN = r"^pr_[0-9a-f]{16}$"


class HoldRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=500, examples=["documents under review"])


class PayoutRunRequest(StrictModel):
    cutoff: datetime = Field(
        strict=False,
        description="RFC 3339 with an offset; not in the future. Money credited to a merchant before it is paid.",
        examples=["2025-03-01T00:00:00+08:00"],
    )


class PayoutItem(BaseModel):
    id: str
    run_id: str
    merchant_id: str
    settlement_wallet: str
    amount_fen: int
    status: Literal["sent", "paid", "failed"]
    reference: str = Field(description="What the bank file carries for the bank to echo back.")
    ledger_tx_id: str = Field(description="The `payout` transaction (merchant:<m> -> payout:<m>).")
    confirm_tx_id: str | None = Field(description="The `payout_confirm` or `payout_reversal` transaction.")
    bank_reference: str | None
    confirmed_at: datetime | None


class PayoutRun(BaseModel):
    id: str
    cutoff: datetime
    total_fen: int
    item_count: int
    created_at: datetime
    items: list[PayoutItem] = Field(description="In item id order; a page of at most `limit` (default 1000).")
    next_cursor: str | None = Field(default=None, description="More items: `GET /v1/payout-runs/{id}?cursor=`.")


class PayoutRunSummary(BaseModel):
    id: str
    cutoff: datetime
    total_fen: int
    item_count: int
    created_at: datetime


class RunPage(BaseModel):
    items: list[PayoutRunSummary]
    next_cursor: str | None


class Confirmation(StrictModel):
    item_id: str = Field(pattern=ITEM_ID_PATTERN)
    status: Literal["paid", "failed"]
    bank_reference: str = Field(min_length=1, max_length=128)


class ConfirmationsRequest(StrictModel):
    items: list[Confirmation] = Field(min_length=1, max_length=MAX_CONFIRMATIONS)


class ConfirmationsResult(BaseModel):
    run_id: str
    items: list[PayoutItem] = Field(description="The confirmed items as they now stand, in the request's order.")


class StatementLine(BaseModel):
    ledger_tx_id: str
    kind: str
    at: datetime = Field(description="China time (+08:00).")
    amount_fen: int = Field(description="Into the merchant's account when positive, out of it when negative.")
    redemption_id: str | None = None
    campaign_id: str | None = None
    payout_item_id: str | None = None


class Statement(BaseModel):
    merchant_id: str
    date: str = Field(description="The China calendar day, YYYY-MM-DD.")
    account: str
    opening_fen: int
    closing_fen: int = Field(description="opening_fen + the sum of the lines' amount_fen, to the fen.")
    lines: list[StatementLine]


class ClawbackRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=500, examples=["goods never delivered (risk review #42)"])


class Clawback(BaseModel):
    id: str
    redemption_id: str
    campaign_id: str
    merchant_id: str
    amount_fen: int = Field(description="The subsidy still standing (less what refunds took back), taken back.")
    reason: str
    ledger_tx_id: str = Field(description="The `clawback` transaction (merchant:<m> -> escrow:<campaign>).")
    return_tx_id: str | None = Field(description="The `return` on to the funders, when the campaign had closed.")
    created_at: datetime
    redemption: dict = Field(description="The redemption, now `clawed_back`.")
