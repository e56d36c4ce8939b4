"""Bodies of the issuer endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from voucher_engine.auth.schemas import StrictModel

REGION_CODE = r"^[0-9]{6}$"


class IssuerCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    region_code: str = Field(pattern=REGION_CODE, description="GB/T 2260 code; `000000` is the central government.")


class Issuer(BaseModel):
    id: str
    name: str
    region_code: str
    fiscal_account: str
    created_at: datetime
