"""What the ledger endpoints answer (the shapes of API.md, "Ledger" and "Ledger verification, exactly")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer


class PostingOut(BaseModel):
    """One line: `debit_fen` (money in) or `credit_fen` (money out), never both."""

    model_config = ConfigDict(extra="forbid")
    account: str
    debit_fen: int | None = Field(default=None, gt=0)
    credit_fen: int | None = Field(default=None, gt=0)

    @model_serializer(mode="wrap")
    def _one_side(self, handler):
        # The served form has exactly the side that moves: {"account", "debit_fen"} or {"account", "credit_fen"}.
        return {key: value for key, value in handler(self).items() if value is not None}


class TransactionOut(BaseModel):
    id: str
    seq: int
    kind: str = Field(
        description="fund, redeem, refund, return, clawback (campaign kinds); payout, payout_confirm, payout_reversal"
        " (a merchant's own accounts: refs carry no campaign_id)"
    )
    at: str = Field(description="RFC 3339, UTC, microseconds: the spelling the hashes cover")
    postings: list[PostingOut]
    refs: dict[str, Any]
    hash: str
    prev_hash: str


class TransactionPage(BaseModel):
    items: list[TransactionOut]
    next_cursor: str | None


class AccountOut(BaseModel):
    account: str
    balance_fen: int = Field(description="money in minus money out; a fiscal account is negative by what it funded")
    items: list[TransactionOut]
    next_cursor: str | None


class VoucherTrace(BaseModel):
    voucher_id: str
    campaign_id: str | None
    items: list[TransactionOut]
    next_cursor: str | None


class FunderBooks(BaseModel):
    funder: str
    account: str
    funded_fen: int
    returned_fen: int
    redeemed_fen: int = Field(description="the campaign's redeemed fen attributed pro rata to what each funded")
    refunded_fen: int
    clawed_back_fen: int = 0
    escrow_balance_fen: int = Field(
        description="the remainder: funded - (redeemed - refunded - clawed back) - returned"
    )
    balanced: bool


class Reconciliation(BaseModel):
    campaign_id: str
    funded_fen: int
    escrow_balance_fen: int
    redeemed_fen: int
    refunded_fen: int
    returned_fen: int
    clawed_back_fen: int = 0
    balanced: bool = Field(
        description="funded = escrow balance + (redeemed - refunded - clawed back) + returned, from the postings, "
        "and the escrow account's stored balance and running totals agree"
    )
    transactions: dict[str, int]
    funders: list[FunderBooks]


class CheckpointOut(BaseModel):
    origin: str
    tree_size: int
    root_hash: str
    body: str
    signature: str
    public_key: str
    signed_at: str
    note: str = Field(description="the same checkpoint as a C2SP signed note (extension)")


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next_cursor: str | None


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]
    checkpoint: CheckpointOut


class ConsistencyProof(BaseModel):
    first: int
    second: int
    path: list[str]


class PublicKey(BaseModel):
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 key")
    algorithm: str = "Ed25519"
    pem: str
    origin: str
    note_verifier_key: str = Field(description="the key in C2SP signed-note verifier form")
