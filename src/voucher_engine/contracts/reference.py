"""A reference interpreter: evaluates a checked contract by walking its typed condition trees.

Slow and plain on purpose. It shares nothing with compiler.py but the checked model and the way values are shown
(explain.py); the property tests require the compiled functions to give exactly its answers (outcome, subsidy,
payable amount and every failure) on generated contracts, holders and payments. Semantics, stated once:

* A condition over holder or item attributes is three-valued: a missing (absent or null) or wrongly typed value
  makes a comparison unknown; `not` keeps unknown; `and` is false if any part is false, else unknown if any part
  is; `or` is true if any part is true, else unknown if any part is. A rule passes only when true.
* Payment fields are always known. Times, weekdays and dates are read in the contract's time zone.
* Subsidy: fixed min(amount, order); threshold the amount once order >= spend; percent floor(order x rate) capped;
  per item: each item that meets every item condition earns floor(amount x first applicable rate) capped, the
  voucher pays the largest one; balance min(balance, order). Never more than the order, never below 0.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any, Union

from . import limits
from .explain import actual_value, jsonable
from .model import ContractModel, TAnd, TCompare, TCondition, TNot, TOr
from .runtime import Evaluation, Failure, Item, Payment

_ABSENT = object()


def region_within(code: str, area: str) -> bool:
    """GB/T 2260 containment written out level by level."""
    if area == "000000" or code == area:
        return True
    if area.endswith("0000"):
        return code[:2] + "0000" == area
    if area.endswith("00"):
        return code[:4] + "00" == area
    return False


def glob_match(pattern: str, text: str) -> bool:
    """`*` matches any run of characters (dynamic programming, no regular expressions)."""
    # reachable[j]: the first i characters of the pattern can match the first j characters of the text
    reachable = [True] + [False] * len(text)
    for ch in pattern:
        if ch == "*":
            for j in range(1, len(text) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j] and text[j] == ch for j in range(len(text))]
    return reachable[len(text)]


_TYPE_CHECKS = {
    "int": lambda v: type(v) is int,
    "money": lambda v: type(v) is int,
    "text": lambda v: type(v) is str,
    "mcc": lambda v: type(v) is str,
    "region": lambda v: type(v) is str and len(v) == 6 and v.isascii() and v.isdigit(),
    "tags": lambda v: isinstance(v, (set, frozenset)),
    "weekday": lambda v: type(v) is int,
    "time": lambda v: type(v) is int,
    "date": lambda v: isinstance(v, dt.date),
}


def compare(c: TCompare, value: Any) -> Union[bool, None]:
    """Three-valued comparison of an observed value (or _ABSENT) with the condition's constant."""
    if c.op == "present":
        return value is not _ABSENT and value is not None
    if c.op == "missing":
        return value is _ABSENT or value is None
    if c.ftype == "date" and type(value) is str:
        try:
            value = dt.date.fromisoformat(value) if len(value) == 10 else None
        except ValueError:
            value = None
    if value is _ABSENT or value is None or not _TYPE_CHECKS[c.ftype](value):
        return None
    k = c.value
    op = c.op
    if op == "=":
        return value == k
    if op == "!=":
        return value != k
    if op == "<":
        return value < k
    if op == "<=":
        return value <= k
    if op == ">":
        return value > k
    if op == ">=":
        return value >= k
    if op == "in":
        return value in k
    if op == "not_in":
        return value not in k
    if op == "within":
        return any(region_within(value, area) for area in k)
    if op == "not_within":
        return not any(region_within(value, area) for area in k)
    if op == "like":
        return glob_match(k, value)
    if op == "has":
        return k in value
    if op == "has_any":
        return any(tag in value for tag in k)
    if op == "has_all":
        return all(tag in value for tag in k)
    raise AssertionError(op)


def truth(c: TCondition, lookup: Any) -> Union[bool, None]:
    if isinstance(c, TCompare):
        return compare(c, lookup(c.path))
    if isinstance(c, TNot):
        inner = truth(c.part, lookup)
        return None if inner is None else not inner
    values = [truth(p, lookup) for p in c.parts]
    if isinstance(c, TAnd):
        return False if False in values else (None if None in values else True)
    assert isinstance(c, TOr)
    return True if True in values else (None if None in values else False)


def _leaves(c: TCondition) -> list[TCompare]:
    if isinstance(c, TCompare):
        return [c]
    if isinstance(c, TNot):
        return _leaves(c.part)
    return [leaf for p in c.parts for leaf in _leaves(p)]


def _failure(rule: Any, lookup: Any, item: Union[str, None] = None, expected: Any = None) -> Failure:
    leaves = _leaves(rule.condition)

    def shown(leaf: TCompare) -> Any:
        value = lookup(leaf.path)
        return actual_value(leaf.ftype, None if value is _ABSENT else value)

    if isinstance(rule.condition, TCompare):
        actual = shown(rule.condition)
        expected = rule.condition.expected if expected is None else expected
    else:
        actual = {}
        for leaf in leaves:
            actual.setdefault(leaf.path, shown(leaf))
        expected = rule.text if expected is None else expected
    return Failure(rule.text, rule.span.line, rule.span.column, actual, expected, item)


def check_holder(model: ContractModel, attributes: Any) -> list[Failure]:
    attrs = attributes if type(attributes) is dict else {}
    lookup = lambda path: attrs.get(path, _ABSENT)  # noqa: E731
    return [_failure(rule, lookup) for rule in model.holder_rules if truth(rule.condition, lookup) is not True]


def _payment_lookup(model: ContractModel, p: Payment) -> Any:
    local = p.at.astimezone(zoneinfo.ZoneInfo(model.timezone)) if p.at.tzinfo is not None else None

    def lookup(path: str) -> Any:
        if path in ("payment.weekday", "payment.time", "payment.date"):
            if local is None:
                raise ValueError("naive datetime")
            if path == "payment.weekday":
                return local.weekday()
            if path == "payment.time":
                return local.hour * 3600 + local.minute * 60 + local.second
            return local.date()
        return {
            "merchant.mcc": lambda: p.merchant_mcc,
            "merchant.region": lambda: p.merchant_region,
            "merchant.tags": lambda: p.merchant_tags,
            "order.amount": lambda: p.order_amount_fen,
        }[path]()

    return lookup


def _item_lookup(it: Item) -> Any:
    attrs = it.attributes if type(it.attributes) is dict else {}

    def lookup(path: str) -> Any:
        if path == "item.sku":
            return it.sku
        if path == "item.category":
            return it.category
        if path == "item.amount":
            return it.amount_fen
        return attrs.get(path[len("item.") :], _ABSENT)

    return lookup


class _RatesRule:
    def __init__(self, model: ContractModel) -> None:
        self.text = "; ".join(r.text for r in model.rates)
        self.span = model.rates[0].span
        conditions = tuple(r.condition for r in model.rates if r.condition is not None)
        self.condition = TOr(conditions, self.text, self.span)


def item_subsidy(model: ContractModel, it: Item) -> Union[int, list[Failure]]:
    """What one order item earns under a per-item voucher, or why it earns nothing."""
    lookup = _item_lookup(it)
    sku = it.sku if type(it.sku) is str else jsonable(it.sku)
    failures = [_failure(r, lookup, sku) for r in model.item_rules if truth(r.condition, lookup) is not True]
    rate = None
    for r in model.rates:
        if r.condition is None or truth(r.condition, lookup) is True:
            rate = r.rate
            break
    if rate is None:
        rule = _RatesRule(model)
        if any(r.condition is None for r in model.rates):  # pragma: no cover - otherwise always applies
            failures.append(Failure(rule.text, rule.span.line, rule.span.column, None, rule.text, sku))
        else:
            failures.append(_failure(rule, lookup, sku))
    amount = it.amount_fen
    if type(amount) is not int or amount < 0:
        failures.append(
            Failure(
                model.voucher_text,
                model.voucher_span.line,
                model.voucher_span.column,
                jsonable(amount),
                "an item amount in fen, 0 or more",
                sku,
            )
        )
    if failures:
        return failures
    assert rate is not None
    return min(amount * rate.numerator // rate.denominator, model.cap_fen)


def evaluate(model: ContractModel, p: Payment) -> Evaluation:
    try:
        return _evaluate(model, p)
    except (TypeError, AttributeError, ValueError, OverflowError):
        order = getattr(p, "order_amount_fen", 0)
        failure = Failure(
            "the payment record", 0, 0, jsonable(repr(p)[:80]), "a payment with typed fields and a timezone-aware time"
        )
        return Evaluation(False, 0, order if type(order) is int else 0, (failure,))


def _evaluate(model: ContractModel, p: Payment) -> Evaluation:
    lookup = _payment_lookup(model, p)
    order = p.order_amount_fen
    failures = [_failure(r, lookup) for r in model.payment_rules if truth(r.condition, lookup) is not True]
    if model.spend_fen and not order >= model.spend_fen:
        assert model.spend_span is not None
        failures.append(
            Failure(
                model.spend_text,
                model.spend_span.line,
                model.spend_span.column,
                actual_value("money", order),
                f"an order of at least {_yuan(model.spend_fen)}",
            )
        )
    best = -1
    if model.kind == "item_percent":
        if len(p.items) > limits.MAX_PAYMENT_ITEMS:
            failures.append(
                Failure(
                    model.voucher_text,
                    model.voucher_span.line,
                    model.voucher_span.column,
                    len(p.items),
                    f"at most {limits.MAX_PAYMENT_ITEMS} order items",
                )
            )
            return Evaluation(False, 0, order, tuple(failures))
        item_failures: list[Failure] = []
        for it in p.items:
            earned = item_subsidy(model, it)
            if isinstance(earned, int):
                best = max(best, earned)
            else:
                item_failures.extend(earned)
        if best < 0:
            if not p.items:
                failures.append(
                    Failure(
                        model.voucher_text,
                        model.voucher_span.line,
                        model.voucher_span.column,
                        [],
                        "an order item the voucher covers",
                    )
                )
            failures.extend(item_failures)
    balance = p.balance_fen if p.balance_fen is not None else model.amount_fen
    if model.kind == "balance" and not (type(balance) is int and 0 < balance <= model.amount_fen):
        failures.append(
            Failure(
                model.voucher_text,
                model.voucher_span.line,
                model.voucher_span.column,
                actual_value("money", balance),
                f"a remaining balance above ¥0.00 and at most {_yuan(model.amount_fen)}",
            )
        )
    if failures:
        return Evaluation(False, 0, order, tuple(failures))
    positive = max(order, 0)
    if model.kind in ("fixed", "threshold"):
        subsidy = min(model.amount_fen, positive)
    elif model.kind == "percent":
        subsidy = min(positive * model.rate.numerator // model.rate.denominator, model.cap_fen)
    elif model.kind == "balance":
        subsidy = min(balance, positive)
    else:
        subsidy = min(best, positive)
    return Evaluation(True, subsidy, order - subsidy, ())


def _yuan(fen: int) -> str:
    from .explain import yuan

    return yuan(fen)


__all__ = ["check_holder", "evaluate", "item_subsidy", "region_within", "glob_match", "truth"]
