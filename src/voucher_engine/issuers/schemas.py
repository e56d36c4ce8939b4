"""Bodies of the issuer endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from voucher_engine.auth.schemas import StrictModel

REGION_CODE = r"^[0-9]{6}$"
# The largest appropriation accepted: ¥100 trillion, far beyond any one budget and far inside a bigint.
MAX_APPROPRIATION_FEN = 10**16


class IssuerCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    region_code: str = Field(pattern=REGION_CODE, description="GB/T 2260 code; `000000` is the central government.")


class IssuerPatch(StrictModel):
    """`{"appropriation_fen": N | null}`: the key is required; `null` lifts the limit."""

    appropriation_fen: int | None = Field(
        ge=0,
        le=MAX_APPROPRIATION_FEN,
        description="The most this issuer may have committed at once, in fen; null = no limit.",
        examples=[500_000_000],
    )


class Issuer(BaseModel):
    id: str
    name: str
    region_code: str
    fiscal_account: str
    created_at: datetime
    appropriation_fen: int | None = Field(
        default=None, description="The ceiling on what this issuer may have committed at once; null = no limit."
    )
    committed_fen: int = Field(
        default=0,
        description="What this issuer has committed now: its share of every funded campaign, less what came back "
        "(the negative of its fiscal account's balance).",
    )
