"""Payments from JSON, for the CLI's `explain --payment` and for tests.

Accepts the shape a POS request and the merchant registry give together:
`{"merchant": {"mcc", "region_code", "tags"}, "at": "<RFC 3339>", "order_amount_fen", "items"?: [...],
"balance_fen"?}` (the flat names `merchant_mcc`, `merchant_region`, `merchant_tags` work too). Raises ValueError
with a readable message for anything malformed; no floats are accepted for money.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import limits
from .runtime import Item, Payment


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise ValueError(f"{what} must be a whole number of fen, not {value!r}")
    return value


def payment_from_json(data: Any) -> Payment:
    """Build a Payment from decoded JSON (a dict)."""
    if not isinstance(data, dict):
        raise ValueError("a payment is a JSON object")
    merchant = data.get("merchant") or {}
    if not isinstance(merchant, dict):
        raise ValueError("`merchant` must be an object")
    mcc = merchant.get("mcc", data.get("merchant_mcc"))
    region = merchant.get("region_code", merchant.get("region", data.get("merchant_region")))
    tags = merchant.get("tags", data.get("merchant_tags", []))
    if not isinstance(mcc, str) or not isinstance(region, str):
        raise ValueError("a payment needs the merchant's `mcc` and `region_code` as strings")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("the merchant's `tags` must be a list of strings")
    at_text = data.get("at")
    if not isinstance(at_text, str):
        raise ValueError('a payment needs `at`, a time with its offset, like "2025-01-15T12:00:00+08:00"')
    try:
        at = dt.datetime.fromisoformat(at_text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"`at` is not a time I can read: {at_text!r}") from None
    if at.tzinfo is None:
        raise ValueError("`at` must carry an offset, like +08:00")
    order = _int(data.get("order_amount_fen"), "`order_amount_fen`")
    raw_items = data.get("items") or []
    if not isinstance(raw_items, list) or len(raw_items) > limits.MAX_PAYMENT_ITEMS:
        raise ValueError(f"`items` must be a list of at most {limits.MAX_PAYMENT_ITEMS} objects")
    items = []
    for raw in raw_items:
        if not isinstance(raw, dict):
            raise ValueError("each item is an object {sku, category, amount_fen, attributes}")
        attributes = raw.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise ValueError("an item's `attributes` must be an object")
        items.append(
            Item(
                str(raw.get("sku", "")),
                str(raw.get("category", "")),
                _int(raw.get("amount_fen"), "an item's `amount_fen`"),
                attributes,
            )
        )
    balance = data.get("balance_fen")
    if balance is not None:
        balance = _int(balance, "`balance_fen`")
    return Payment(mcc, region, frozenset(tags), at, order, tuple(items), balance)
