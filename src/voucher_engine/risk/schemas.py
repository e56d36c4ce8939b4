"""Request and response models of risk control."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FLAG_ID_PATTERN = r"^rf_[0-9a-f]{20}$"
STATUSES = ("open", "cleared", "confirmed")


class Decision(BaseModel):
    """A decision on a flag, with who made it and when."""

    decision: Literal["clear", "confirm"]
    note: str | None
    role: str = Field(description="The decider's role: admin or gov.")
    token_id: str = Field(description="The id of the decider's token (never the token).")
    issuer_id: str | None = Field(description="The issuer a gov decider's token is bound to.")
    decided_at: datetime
    clawback_ids: list[str] = Field(description="The clawbacks a `confirm` made, one per redemption still standing.")
    released_hold: bool = Field(description="Whether a `clear` released the payout hold the flag had caused.")


class RiskFlag(BaseModel):
    id: str
    signal: str = Field(description="The signal whose rule was met (docs/risk.md lists them).")
    outcome: Literal["flag", "hold", "refuse"]
    merchant_id: str | None = Field(
        description="Null for a pattern of no one merchant: one holder across many merchants, a claims burst."
    )
    campaign_id: str | None = Field(description="Null for a pattern across campaigns (operator's and auditors').")
    redemption_ids: list[str]
    evidence: dict[str, Any] = Field(description="The figures the rule saw: the value, the limit, the rule's text.")
    status: Literal["open", "cleared", "confirmed"]
    opened_at: datetime
    hold_caused: bool = Field(description="Opening the flag put the merchant on payout hold.")
    decision: Decision | None = None


class RuleOut(BaseModel):
    signal: str
    outcome: str = Field(description="flag | hold | refuse")
    limits: dict[str, int] = Field(
        description="Thresholds by parameter: counts, basis points (2% = 200), seconds since midnight."
    )
    rule: str = Field(description="The rule as written.")
    source: str = Field(description="`platform default` or `contract`.")
    line: int | None
    column: int | None


class RuleSet(BaseModel):
    campaign_id: str | None
    rules: list[RuleOut]


class FlagPage(BaseModel):
    items: list[RiskFlag]
    next_cursor: str | None


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["clear", "confirm"]
    note: str | None = Field(default=None, max_length=2000, examples=["receipts checked with the merchant"])
