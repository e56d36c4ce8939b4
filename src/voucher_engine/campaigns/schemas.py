"""Request and response shapes of the campaign API (pydantic), and the fast holder validation of big lists.

Holder lists can hold a million entries: they are validated by `parse_holders` (plain Python over the decoded
JSON, about a microsecond a holder) rather than by a pydantic model per holder, which would cost seconds and
hundreds of megabytes. `IssuanceRequest` still describes them for the OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from voucher_engine.errors import EngineError

# Limits on everything a caller sends (TigerBeetle style): the lists, each holder, each attribute.
MAX_CONTRACT_CHARS = 64 * 1024
MAX_TARGETED_HOLDERS = 1_000_000
MAX_LOTTERY_APPLICANTS = 2_000_000
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY_CHARS = 64
MAX_ATTRIBUTE_VALUE_CHARS = 256
# Numbers in attributes: strictly within ±2^63, what a 64-bit signed integer holds. Past it a number cannot be stored
# or written back as JSON by most clients (nor by the JSON writer here), so it is refused at the door, never a 500.
ATTRIBUTE_NUMBER_BOUND = 2**63
MAX_ID_HASH_CHARS = 128
MAX_ATTESTATION_CHARS = 8192
MAX_SEED_HEX_CHARS = 128
MIN_SEED_HEX_CHARS = 32
# Issuances this large run as a background job answered with 202 and polled at GET /v1/issuances/{id}.
JOB_THRESHOLD = 100_000
# Rejections listed in an answer; the count of all of them is always given.
MAX_REJECTED_LISTED = 1_000

WALLET_PATTERN = r"^[0-9]{16}$"
ID_HASH_PATTERN = r"^[A-Za-z0-9+/=_:.-]{1,128}$"
_WALLET = re.compile(WALLET_PATTERN)
_ID_HASH = re.compile(ID_HASH_PATTERN)
_SEED = re.compile(r"^[0-9a-fA-F]{%d,%d}$" % (MIN_SEED_HEX_CHARS, MAX_SEED_HEX_CHARS))

CampaignStatus = Literal["draft", "funded", "active", "paused", "closed"]
VoucherStatus = Literal["issued", "redeemed", "expired", "revoked"]


class SourceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=MAX_CONTRACT_CHARS, description="The contract's text.")


# Text with a NUL (U+0000) is refused at the edge, as everywhere in the service: PostgreSQL cannot store it, and an
# attribute that reached the database with one would fail the claims batched with it.
NO_NUL_PATTERN = r"^[^\x00]*$"
AttributeValue = Annotated[
    Union[
        StrictBool,
        Annotated[StrictInt, Field(gt=-ATTRIBUTE_NUMBER_BOUND, lt=ATTRIBUTE_NUMBER_BOUND)],
        Annotated[
            float, Field(gt=-float(ATTRIBUTE_NUMBER_BOUND), lt=float(ATTRIBUTE_NUMBER_BOUND), allow_inf_nan=False)
        ],
        Annotated[str, Field(max_length=MAX_ATTRIBUTE_VALUE_CHARS, pattern=NO_NUL_PATTERN)],
        None,
    ],
    "a scalar",
]


class Holder(BaseModel):
    """A holder as a government's list names one (lists are checked by `parse_holders`, claims by this model)."""

    wallet_id: str = Field(pattern=WALLET_PATTERN)
    id_hash: str | None = Field(
        default=None,
        pattern=ID_HASH_PATTERN,
        description="Salted hash of the real-name identity: limits count across wallets.",
    )
    attributes: dict[
        Annotated[str, Field(max_length=MAX_ATTRIBUTE_KEY_CHARS, pattern=NO_NUL_PATTERN)], AttributeValue
    ] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="Raw holder attributes, evaluated against the contract's holder conditions and never stored. "
        "Refused (ATTESTATION_INVALID) where the contract says `holder attested by`.",
    )
    attestation: str | None = Field(
        default=None,
        max_length=MAX_ATTESTATION_CHARS,
        description="Instead of attributes: a compact JWS (EdDSA) signed by a registered attester, for this "
        "campaign (aud) and this wallet (sub); see docs/attestations.md.",
    )


class Lottery(BaseModel):
    applicants: list[Holder] = Field(max_length=MAX_LOTTERY_APPLICANTS)
    seed: str = Field(pattern=r"^[0-9a-fA-F]{32,128}$", description="The published seed, hex (16 to 64 bytes).")


class IssuanceRequest(BaseModel):
    """Exactly one of `holders` (a targeted list) or `lottery`."""

    holders: list[Holder] | None = Field(default=None, max_length=MAX_TARGETED_HOLDERS)
    lottery: Lottery | None = None


class ClaimBody(Holder):
    model_config = ConfigDict(extra="forbid")


Approval = Literal["own", "pending", "approved", "declined"]


class Funding(BaseModel):
    """One funder's share, and whether it has consented (`own` for the campaign's issuer, who needs no consent)."""

    region_code: str
    issuer_id: str
    share_bp: int
    amount_fen: int = Field(description="This funder's part of the budget, to the fen, as funding moves it.")
    approval: Approval
    decided_by: str | None = Field(default=None, description="The token id that gave the standing decision.")
    decided_at: datetime | None = None


class FunderDecision(BaseModel):
    """One approval or decline, kept for good: which funder, what, the token that gave it and when."""

    issuer_id: str
    decision: Literal["approved", "declined"]
    token_id: str
    decided_at: datetime


class Totals(BaseModel):
    """Money from the ledger (always consistent with it), voucher counts from the vouchers themselves."""

    funded_fen: int
    issued_fen: int
    redeemed_fen: int
    refunded_fen: int
    returned_fen: int
    clawed_back_fen: int = Field(default=0, description="Subsidy taken back from merchants by clawbacks (追回).")
    outstanding_fen: int = Field(description="Still in escrow: funded − redeemed + refunded + clawed back − returned.")
    vouchers_issued: int
    vouchers_redeemed: int
    vouchers_expired: int
    vouchers_revoked: int


class Campaign(BaseModel):
    id: str
    name: str
    status: CampaignStatus
    issuer_id: str
    issuer_region: str
    budget_fen: int
    contract_sha256: str
    kind: str
    distribution: str
    quantity: int
    per_holder_limit: int
    face_value_fen: int
    daily_cap_fen: int | None
    funders: list[Funding]
    validity: dict[str, Any]
    terms: dict[str, Any]
    created_at: datetime
    funded_at: datetime | None
    activated_at: datetime | None
    closed_at: datetime | None
    fund_tx_id: str | None
    return_tx_id: str | None
    totals: Totals | None = None


class CampaignDetail(Campaign):
    contract_source: str
    summary: dict[str, Any]
    funder_decisions: list[FunderDecision] = Field(
        default_factory=list, description="Every approval and decline of a co-funder, oldest first (the last 100)."
    )


class Voucher(BaseModel):
    id: str
    code: str
    campaign_id: str
    wallet_id: str
    status: VoucherStatus
    valid_from: datetime
    valid_until: datetime
    face_value_fen: int
    balance_fen: int
    issued_at: datetime
    terms: dict[str, Any]


class Rejection(BaseModel):
    """A holder not issued to; ATTESTATION_INVALID rejections add `check` and `detail` (which check failed)."""

    model_config = ConfigDict(extra="allow")
    wallet_id: str
    code: str


class IssuanceResult(BaseModel):
    issuance_id: str
    campaign_id: str
    kind: Literal["targeted", "lottery"]
    status: Literal["running", "done", "failed"]
    total: int
    processed: int
    issued: int
    rejected_count: int
    rejected: list[Rejection]
    lottery: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None


class CheckAnswer(BaseModel):
    ok: bool
    summary: dict[str, Any]
    warnings: list[dict[str, Any]] = []


class ExplainBody(BaseModel):
    """A contract and one sample payment (and, optionally, a holder's attributes) to explain."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=MAX_CONTRACT_CHARS, description="The contract's text.")
    payment: dict[str, Any] = Field(
        description='{"merchant": {"mcc", "region_code", "tags"}, "at", "order_amount_fen", "items"?, "balance_fen"?}',
        json_schema_extra={"maxProperties": 16},
    )
    holder: dict[str, AttributeValue] | None = Field(None, max_length=MAX_ATTRIBUTES)
    issued_at: datetime | None = Field(None, description="When the voucher was issued, for validity from issue.")


class ExplainAnswer(BaseModel):
    contract: str
    kind: str
    code: str | None = Field(description="The code a till would get, or null when the payment would settle.")
    eligible: bool
    subsidy_fen: int
    payable_fen: int
    validity: dict[str, Any]
    explain: list[dict[str, Any]] = Field(description="Each failed payment condition, with its line and column.")
    holder_explain: list[dict[str, Any]] | None = None


# ---------------------------------------------------------------------------------------------------------------
# Fast validation of holder lists.

# (wallet_id, id_hash, evidence): the evidence is the holder's raw attributes (a dict) or its attestation (the
# compact JWS, a str); attestations/checks.py's Gate decides either.
HolderTuple = tuple[str, "str | None", "dict | str"]
_HOLDER_KEYS = frozenset({"wallet_id", "id_hash", "attributes", "attestation"})


def parse_holder(item: object, where: str) -> HolderTuple:
    """(wallet_id, id_hash, attributes) of one JSON holder, or VALIDATION_ERROR naming where it is."""
    if not isinstance(item, dict):
        raise _bad(where, "a holder is an object {wallet_id, id_hash?, attributes?}")
    wallet_id = item.get("wallet_id")
    if not isinstance(wallet_id, str) or not _WALLET.match(wallet_id):
        raise _bad(where, "wallet_id must be a string of 16 digits")
    id_hash = item.get("id_hash")
    if id_hash is not None and (not isinstance(id_hash, str) or not _ID_HASH.match(id_hash)):
        raise _bad(where, "id_hash must be 1 to 128 characters of [A-Za-z0-9+/=_:.-]")
    attributes = item.get("attributes")
    if attributes is None:
        attributes = {}
    elif not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
        raise _bad(where, f"attributes must be an object of at most {MAX_ATTRIBUTES} members")
    else:
        for key, value in attributes.items():
            if (
                len(key) > MAX_ATTRIBUTE_KEY_CHARS
                or isinstance(value, (dict, list))
                or (isinstance(value, str) and len(value) > MAX_ATTRIBUTE_VALUE_CHARS)
                or (isinstance(value, (int, float)) and not -ATTRIBUTE_NUMBER_BOUND < value < ATTRIBUTE_NUMBER_BOUND)
            ):
                raise _bad(
                    where,
                    "attribute names are at most 64 characters and values are scalars "
                    f"(text at most {MAX_ATTRIBUTE_VALUE_CHARS} characters, numbers strictly within ±2^63)",
                )
            if "\x00" in key or (isinstance(value, str) and "\x00" in value):
                raise _bad(where, "attribute text must not contain NUL (U+0000) characters")
    if not item.keys() <= _HOLDER_KEYS:
        raise _bad(where, "a holder has only wallet_id, id_hash, and attributes or attestation")
    attestation = item.get("attestation")
    if attestation is not None:
        if not isinstance(attestation, str) or not 0 < len(attestation) <= MAX_ATTESTATION_CHARS:
            raise _bad(where, f"attestation is a compact JWS of at most {MAX_ATTESTATION_CHARS} characters")
        if attributes:
            raise _bad(where, "a holder carries attributes or an attestation, not both")
        return wallet_id, id_hash, attestation
    return wallet_id, id_hash, attributes


def parse_holders(items: object, where: str, limit: int) -> list[HolderTuple]:
    if not isinstance(items, list):
        raise _bad(where, "must be a list of holders")
    if len(items) > limit:
        raise EngineError("VALIDATION_ERROR", f"{where} has {len(items)} entries; at most {limit} are allowed.")
    return [parse_holder(item, f"{where}[{index}]") for index, item in enumerate(items)]


def parse_seed(seed: object) -> bytes:
    if not isinstance(seed, str) or not _SEED.match(seed) or len(seed) % 2:
        raise _bad("lottery.seed", f"the seed is hex, {MIN_SEED_HEX_CHARS // 2} to {MAX_SEED_HEX_CHARS // 2} bytes")
    return bytes.fromhex(seed)


def _bad(where: str, message: str) -> EngineError:
    return EngineError("VALIDATION_ERROR", f"{where}: {message}.", errors=[{"loc": [where], "message": message}])
