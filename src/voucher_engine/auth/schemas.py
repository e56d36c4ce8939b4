"""Request and response bodies of the token endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Unknown fields and loose coercions ("12" or 12.0 for 12) are refused: a typo must not pass silently.

    JSON has no date type, so datetime fields must opt out with `Field(strict=False)` to accept RFC 3339 text."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TokenCreate(StrictModel):
    role: Literal["admin", "gov", "auditor"]
    issuer_id: str | None = Field(default=None, max_length=64)


class TokenCreated(BaseModel):
    token: str = Field(description="Shown once; only its SHA-256 is kept.")
    id: str
    role: str
    issuer_id: str | None = None


class TokenInfo(BaseModel):
    """A token as listed: never its secret (only its SHA-256 is kept, and not shown)."""

    id: str
    role: str
    issuer_id: str | None = None
    created_at: datetime
    last_used_at: datetime | None = Field(default=None, description="Real time, to the minute.")
    revoked_at: datetime | None = None
