"""The engine's one error type: a stable code from API.md plus a sentence for people.

Services raise `EngineError`; only `api/` knows how it becomes an HTTP problem+json answer.
"""

from __future__ import annotations

from typing import Any

# The stable codes of API.md, then the few this implementation adds (extensions, never renames).
STABLE_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "BAD_SIGNATURE",
        "STALE_REQUEST",
        "REPLAYED_REQUEST",
        "VALIDATION_ERROR",
        "NOT_FOUND",
        "CONTRACT_INVALID",
        "CAMPAIGN_NOT_ACTIVE",
        "INVALID_STATE",
        "VOUCHER_UNKNOWN",
        "VOUCHER_NOT_HOLDER",
        "VOUCHER_ALREADY_REDEEMED",
        "VOUCHER_EXPIRED",
        "VOUCHER_NOT_YET_VALID",
        "VOUCHER_REVOKED",
        "RULE_NOT_SATISFIED",
        "MERCHANT_SUSPENDED",
        "IDEMPOTENCY_CONFLICT",
        "REFUND_EXCEEDS_ORDER",
        "DAILY_BUDGET_EXHAUSTED",
        "SOLD_OUT",
        "HOLDER_LIMIT",
        "NOT_ELIGIBLE",
        "ATTESTATION_INVALID",
        "INSUFFICIENT_FUNDS",
        "RATE_LIMITED",
        "FUNDING_NOT_APPROVED",
        "RISK_REFUSED",
    }
)
EXTENSION_CODES = frozenset(
    {"PAYLOAD_TOO_LARGE", "HEADERS_TOO_LARGE", "METHOD_NOT_ALLOWED", "UNAVAILABLE", "CONFLICT", "INTERNAL"}
)
ALL_CODES = STABLE_CODES | EXTENSION_CODES


class EngineError(Exception):
    """A refusal with a stable `code`; `extra` members (such as `explain`) are added to the problem document."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        assert code in ALL_CODES, code
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.extra = extra
