"""The checked contract: what the type checker proves and the compiler and reference interpreter consume.

`ContractModel` holds the decoded terms (money in fen, shares in basis points, validity) and the typed condition
trees (`TCompare`, `TAnd`, `TOr`, `TNot`). A typed comparison names its field by canonical path, the field's type,
the operator and the constant already converted to the form evaluation needs (fen, region strings, weekday
numbers, seconds of the day, frozensets), so neither the compiler nor the reference interpreter decodes literals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Union

from .risk import RiskRule
from .syntax import Span


@dataclass(frozen=True, slots=True)
class TCompare:
    """One typed elementary condition. `value` is an int, str, date, frozenset or tuple as the op needs."""

    op: str
    path: str
    ftype: str
    value: Any
    text: str
    span: Span
    # How the expected value reads in an explanation, e.g. "at least ¥100.00" or 'one of "5812", "5813"'.
    expected: str


@dataclass(frozen=True, slots=True)
class TAnd:
    parts: tuple["TCondition", ...]
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class TOr:
    parts: tuple["TCondition", ...]
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class TNot:
    part: "TCondition"
    text: str
    span: Span


TCondition = Union[TCompare, TAnd, TOr, TNot]


@dataclass(frozen=True, slots=True)
class TRule:
    """A top-level condition of a section: the unit that fails and is explained."""

    condition: TCondition
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class TRate:
    """A line of the per-item rate table. `condition` None means `otherwise`."""

    rate: Fraction
    condition: Union[TCondition, None]
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Funder:
    """A funding issuer (by region code) and its share in basis points (1 bp = 0.01%; all shares sum to 10000)."""

    region_code: str
    share_bp: int
    # Where the contract names this funder (its `funders` line, or the issuer's code when it names none), so that
    # a caller who finds the funder unregistered can say where; not part of the funder's identity.
    span: Union[Span, None] = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class FixedWindow:
    """Validity from a fixed start to a fixed end, the same for every voucher of the campaign.

    Half-open: a voucher is valid at `t` when `valid_from <= t < valid_until`. The contract's end is inclusive at
    the precision written, so `to 2025-01-31 23:59` gives `valid_until = 2025-02-01 00:00` (the whole minute 23:59
    is valid) and `to 2025-12-31` gives `valid_until = 2026-01-01 00:00`.
    """

    valid_from: dt.datetime
    valid_until: dt.datetime

    def window_for(self, issued_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The voucher's window: the campaign's, whenever it was issued."""
        return self.valid_from, self.valid_until

    def contains(self, at: dt.datetime, issued_at: Union[dt.datetime, None] = None) -> bool:
        return self.valid_from <= at < self.valid_until

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "fixed",
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "end": "exclusive",
        }


@dataclass(frozen=True, slots=True)
class RelativeValidity:
    """Validity for a period from each voucher's issue: valid at `t` when `issued_at <= t < issued_at + seconds`."""

    seconds: int

    def window_for(self, issued_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        return issued_at, issued_at + dt.timedelta(seconds=self.seconds)

    def contains(self, at: dt.datetime, issued_at: Union[dt.datetime, None] = None) -> bool:
        if issued_at is None:
            raise ValueError("a validity relative to issue needs the voucher's issued_at")
        start, end = self.window_for(issued_at)
        return start <= at < end

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "relative", "seconds": self.seconds, "end": "exclusive"}


Validity = Union[FixedWindow, RelativeValidity]


@dataclass(frozen=True, slots=True)
class ContractModel:
    """Everything the checker established about a valid contract."""

    name: str
    issuer_region: str
    timezone: str
    budget_fen: int
    funders: tuple[Funder, ...]
    kind: str
    face_value_fen: int
    quantity: int
    per_holder_limit: int
    daily_cap_fen: Union[int, None]
    distribution: str
    validity: Validity
    # Voucher terms, by kind: fixed (amount_fen), threshold (spend_fen, amount_fen), percent (rate, cap_fen,
    # spend_fen), item_percent (cap_fen, rates), balance (amount_fen). spend_fen 0 means no minimum.
    amount_fen: int
    spend_fen: int
    rate: Fraction
    cap_fen: int
    rates: tuple[TRate, ...]
    # The text and position of the voucher line and its `spend` clause, for explanations.
    voucher_text: str
    voucher_span: Span
    spend_text: str
    spend_span: Union[Span, None]
    holder_rules: tuple[TRule, ...]
    payment_rules: tuple[TRule, ...]
    item_rules: tuple[TRule, ...]
    worst_case_fen: int
    needs_escrow_check: bool
    # `holder attested by "<name>"`: the registered attester whose attestations holders must carry (None: any
    # holder may come with raw attributes or an attestation). The name is resolved when the campaign is created.
    attester: Union[str, None] = None
    # `risk { … }`: the contract's own risk rules (contracts/risk.py), replacing the defaults of the signals named.
    risk_rules: tuple[RiskRule, ...] = ()
