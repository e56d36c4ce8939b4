"""Bodies of the merchant endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from voucher_engine.auth.schemas import StrictModel

MAX_TAGS = 32
TAG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MERCHANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class MerchantPut(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    mcc: str = Field(pattern=r"^[0-9]{4}$", description="ISO 18245 merchant category code, as a string.")
    region_code: str = Field(pattern=r"^[0-9]{6}$", description="GB/T 2260 code of where the merchant trades.")
    settlement_wallet: str = Field(pattern=r"^[0-9]{16}$", description="The merchant's e-CNY wallet id.")
    tags: list[Annotated[str, StringConstraints(pattern=TAG_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )


class PayoutHold(BaseModel):
    """Why and since when a merchant is left out of payout runs (it keeps redeeming)."""

    reason: str
    since: datetime


class Merchant(BaseModel):
    id: str
    name: str
    mcc: str
    region_code: str
    settlement_wallet: str
    tags: list[str]
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    payout_hold: PayoutHold | None = Field(default=None, description="Set while the merchant is on payout hold.")


# A registered merchant as the API shows it: the OpenAPI example of every answer that is a merchant (this room's and
# settlement's holds).
MERCHANT_EXAMPLE: dict[str, Any] = {
    "id": "demo-noodle-bar",
    "name": "Xuhui Noodle Bar",
    "mcc": "5812",
    "region_code": "310104",
    "settlement_wallet": "0012345678901234",
    "tags": ["ecny-signed"],
    "status": "active",
    "payout_hold": None,
}


class KeyCreated(BaseModel):
    key_id: str
    secret: str = Field(description="Shown once: hex HMAC-SHA256 key for signing POS requests.")
    merchant_id: str
