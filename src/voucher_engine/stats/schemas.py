"""Answers of the stats endpoint (API.md, "Campaigns": `GET /v1/campaigns/{id}/stats`), with a few extensions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Bucket = Literal["hour", "day"]


class StatsBucket(BaseModel):
    start: datetime = Field(description="Start of the hour or calendar day (the campaign's time zone).")
    redemptions: int
    redeemed_fen: int = Field(description="Subsidy paid to merchants by the redemptions settled in the bucket.")
    refunded_fen: int = Field(description="Subsidy given back to escrow by the refunds made in the bucket.")
    order_amount_fen: int = Field(description="Order amounts of the redemptions settled in the bucket.")
    clawed_back_fen: int = Field(0, description="Extension: subsidy taken back by clawbacks made in the bucket.")
    order_refunded_fen: int = Field(0, description="Extension: order amounts refunded in the bucket.")


class RegionStats(BaseModel):
    region_code: str = Field(description="The merchant's GB/T 2260 region, from the registry.")
    redemptions: int
    redeemed_fen: int
    refunded_fen: int = Field(0, description="Extension: subsidy given back by refunds at these merchants.")
    clawed_back_fen: int = Field(0, description="Extension: subsidy taken back by clawbacks at these merchants.")


class MccStats(BaseModel):
    mcc: str = Field(description="The merchant's category code, from the registry.")
    redemptions: int
    redeemed_fen: int
    refunded_fen: int = 0
    clawed_back_fen: int = 0


class Leverage(BaseModel):
    """撬动比: the spending that the subsidy drove, per fen of subsidy that stayed spent."""

    order_amount_fen: int = Field(description="Order amounts of the redemptions, less the order amounts refunded.")
    subsidy_fen: int = Field(description="Subsidy redeemed, less what refunds and clawbacks took back.")
    ratio: str = Field(description="order_amount_fen / subsidy_fen, two decimals rounded down; '0.00' without subsidy.")


class AsOf(BaseModel):
    ledger_seq: int = Field(description="The rollups hold every ledger transaction up to this seq.")
    ledger_head_seq: int = Field(description="The ledger's last sequenced transaction when this answer was made.")
    updated_at: datetime = Field(description="When the rollups last moved.")


class CampaignStats(BaseModel):
    campaign_id: str
    bucket: Bucket
    buckets: list[StatsBucket]
    by_region: list[RegionStats]
    by_mcc: list[MccStats]
    leverage: Leverage
    as_of: AsOf = Field(description="Extension: how far the rollups have got (they trail the ledger by seconds).")
