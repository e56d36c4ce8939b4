"""Request and response shapes of attesters and attestation audits."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AttesterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        min_length=1,
        max_length=100,
        description="The attester's name, as contracts name it in `holder attested by`. Several keys (rotation) "
        "may share one name.",
        examples=["Shanghai public data operator"],
    )
    public_key: str = Field(
        min_length=40,
        max_length=64,
        description="Base64 of the raw 32-byte Ed25519 public key.",
        examples=["11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="],
    )


class Attester(BaseModel):
    id: str = Field(description="The value attestations carry as `iss`.")
    name: str
    public_key: str = Field(description="Base64 of the raw 32-byte Ed25519 public key.")
    status: str = Field(description="`active`, or `retired` (earlier attestations stay verifiable for audit).")
    created_at: datetime
    retired_at: datetime | None


class AuditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attestation: str = Field(min_length=1, max_length=8192, description="The compact JWS to check.")


class AuditUse(BaseModel):
    campaign_id: str
    decision: str
    issuance_id: str | None
    used_at: datetime


class AuditAnswer(BaseModel):
    """An attestation checked for audit: its signature against its attester's key, retired or not."""

    signature_valid: bool
    attester_id: str | None
    attester_name: str | None
    attester_status: str | None
    signed_before_retirement: bool | None = Field(
        description="For a retired key: whether the attestation's iat precedes the retirement."
    )
    sha256: str
    campaign_id: str | None
    wallet_id: str | None
    jti: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    use: AuditUse | None = Field(description="What the engine recorded when it spent this attestation, if it did.")
