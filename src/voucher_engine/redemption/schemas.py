"""Bodies of the redemption endpoints (API.md, "Redemption")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictInt, StringConstraints, field_validator

from voucher_engine.auth.schemas import StrictModel

MAX_ITEMS = 100
ATTRIBUTE_NUMBER_BOUND = 2**63  # as campaigns.schemas: numbers strictly within ±2^63 (a 64-bit signed integer)
MAX_ORDER_FEN = 10**12  # ¥10 billion: far above any till's order, far below int64
WalletId = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
PosTxnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Fen = Annotated[StrictInt, Field(ge=0, le=MAX_ORDER_FEN)]
PositiveFen = Annotated[StrictInt, Field(ge=1, le=MAX_ORDER_FEN)]


class OrderItem(StrictModel):
    sku: str = Field(min_length=1, max_length=64)
    category: str = Field(min_length=1, max_length=64)
    amount_fen: Fen
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=32)

    @field_validator("attributes")
    @classmethod
    def _numbers_fit_64_bits(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        # A number past 64 bits cannot be written back as JSON (the batch stores the items) or stored: refused here,
        # as a 422, rather than failing the batch as a 500.
        for key, value in attributes.items():
            if isinstance(value, (int, float)) and not -ATTRIBUTE_NUMBER_BOUND < value < ATTRIBUTE_NUMBER_BOUND:
                raise ValueError(f"attribute {key[:64]!r}: numbers must lie strictly within ±2^63")
            if isinstance(value, (dict, list)):
                raise ValueError(f"attribute {key[:64]!r}: attribute values are scalars")
        return attributes


class QuoteRequest(StrictModel):
    voucher_code: str = Field(min_length=1, max_length=128)
    wallet_id: WalletId
    order_amount_fen: PositiveFen
    items: list[OrderItem] | None = Field(default=None, max_length=MAX_ITEMS)


class RedeemRequest(QuoteRequest):
    pos_txn_id: PosTxnId


class Quote(BaseModel):
    eligible: bool
    subsidy_fen: int
    payable_fen: int
    code: str | None = Field(default=None, description="Why not, when not eligible: a stable error code.")
    detail: str | None = Field(default=None, description="Why not, in a sentence.")
    explain: list[dict[str, Any]] | None = None


class Redemption(BaseModel):
    id: str
    status: str = Field(
        description="`settled`, or `refunded` / `partially_refunded` after refunds, or `clawed_back` after a clawback."
    )
    voucher_id: str
    campaign_id: str
    merchant_id: str
    pos_txn_id: str
    order_amount_fen: int
    subsidy_fen: int
    payable_fen: int
    refunded_fen: int
    subsidy_refunded_fen: int
    ledger_tx_id: str
    settled_at: datetime


class RefundRequest(StrictModel):
    refund_id: PosTxnId
    amount_fen: PositiveFen
    reason: str = Field(min_length=1, max_length=500)


class Refund(BaseModel):
    refund_id: str
    redemption_id: str
    amount_fen: int
    subsidy_clawback_fen: int
    reason: str
    ledger_tx_id: str | None
    voucher_restored: bool
    voucher_status: str
    created_at: datetime
    redemption: Redemption
