"""The records a compiled contract is evaluated on and answers with.

`Payment` and `Item` are what the redemption path builds for each request (slotted dataclasses: cheap to make).
`Evaluation` is the answer: the subsidy in fen, or the failed conditions. `Failure` is one failed condition in
the shape of the API's `explain` entries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Union


@dataclass(slots=True)
class Item:
    """One order line, as a POS sends it: {"sku", "category", "amount_fen", "attributes"}."""

    sku: str
    category: str
    amount_fen: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Payment:
    """What a voucher is redeemed against. Merchant fields come from the registry, never from the request.

    `at` must be timezone-aware. `balance_fen` is the voucher's remaining balance, for balance vouchers (None means
    untouched: the initial balance).
    """

    merchant_mcc: str
    merchant_region: str
    merchant_tags: frozenset[str]
    at: dt.datetime
    order_amount_fen: int
    items: tuple[Item, ...] = ()
    balance_fen: Union[int, None] = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A condition that did not hold: its source text and position, the value seen and what was needed.

    `item` names the order item (its sku) when the condition is about one item.
    """

    rule: str
    line: int
    column: int
    actual: Any
    expected: Any
    item: Union[str, None] = None

    def to_dict(self) -> dict[str, Any]:
        """The API's explain entry: {"rule", "line", "column", "actual", "expected"} (+ "item" when set)."""
        out = {
            "rule": self.rule,
            "line": self.line,
            "column": self.column,
            "actual": self.actual,
            "expected": self.expected,
        }
        if self.item is not None:
            out["item"] = self.item
        return out


class Evaluation(NamedTuple):
    """The outcome of one payment: ok with `subsidy_fen` (and what the holder still pays), or the failures.

    A tuple underneath, so the compiled hot path builds it in one allocation.
    """

    ok: bool
    subsidy_fen: int
    payable_fen: int
    failures: tuple[Failure, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "eligible": self.ok,
            "subsidy_fen": self.subsidy_fen,
            "payable_fen": self.payable_fen,
            "explain": [f.to_dict() for f in self.failures],
        }
