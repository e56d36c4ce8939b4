"""The spending area (使用范围): where a campaign's money may be spent, given the region of its issuer.

A campaign is spent only inside its issuer's region. Two rules follow, both decided from the typed payment
conditions alone (pure: no I/O, the issuer's region is a parameter):

- **Named regions.** Every region a `payment` condition on `merchant.region` *allows* (`=`, `in`, `within`, and
  the negations of `!=`, `not in`, `not within` under a `not`) must lie within the issuer's region. A contract that
  names a region outside is refused at the condition's line and column. Regions named only to exclude them
  (`merchant.region not within 110000`) may lie anywhere.
- **Unconfined contracts.** When the payment conditions do not confine `merchant.region` to named regions (no
  such condition, or one that an `or` with another field can bypass), the checker adds the rule
  `merchant.region within <issuer>` to them, so the compiled contract refuses a merchant outside at the till,
  explained like any other rule (at the position of the `issuer` code).

The central government (`000000`) may spend anywhere: neither rule applies to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Union

from . import regions
from .explain import expected_text
from .model import TAnd, TCompare, TCondition, TNot, TRule
from .syntax import Span

FIELD = "merchant.region"

# Operators that allow the values they name when they hold, and those that allow them when negated.
_ALLOWING = {"=": "in", "in": "in", "within": "within"}
_ALLOWING_NEGATED = {"!=": "in", "not_in": "in", "not_within": "within"}


def _values(c: TCompare) -> tuple[str, ...]:
    value = c.value
    if isinstance(value, str):
        return (value,)
    return tuple(sorted(value))


def allowing_comparisons(condition: TCondition, positive: bool = True) -> Iterator[TCompare]:
    """Each comparison on `merchant.region` that, in the polarity it holds within `condition`, allows the regions
    it names (as opposed to excluding them)."""
    if isinstance(condition, TCompare):
        if condition.path == FIELD and condition.op in (_ALLOWING if positive else _ALLOWING_NEGATED):
            yield condition
    elif isinstance(condition, TNot):
        yield from allowing_comparisons(condition.part, not positive)
    else:
        for part in condition.parts:
            yield from allowing_comparisons(part, positive)


# An over-approximation of the merchant regions a condition lets through: None for "any region", else a tuple of
# areas (a region lies in the set when it lies within one of them).
Areas = Union[tuple[str, ...], None]


def _intersect(first: Areas, second: Areas) -> Areas:
    if first is None:
        return second
    if second is None:
        return first
    kept = {a for a in first if any(regions.within(a, b) for b in second)}
    kept |= {b for b in second if any(regions.within(b, a) for a in first)}
    return tuple(sorted(kept))


def _union(first: Areas, second: Areas) -> Areas:
    if first is None or second is None:
        return None
    return tuple(sorted(set(first) | set(second)))


def allowed_areas(condition: TCondition, positive: bool = True) -> Areas:
    """The regions `condition` (or its negation, when `positive` is False) can let a payment through in."""
    if isinstance(condition, TCompare):
        ops = _ALLOWING if positive else _ALLOWING_NEGATED
        if condition.path == FIELD and condition.op in ops:
            return _values(condition)
        return None
    if isinstance(condition, TNot):
        return allowed_areas(condition.part, not positive)
    # De Morgan: a negated `and` lets through what any negated part does, a negated `or` what all of them do.
    meet = isinstance(condition, TAnd) == positive
    combine = _intersect if meet else _union
    result: Areas = None if meet else ()
    for index, part in enumerate(condition.parts):
        areas = allowed_areas(part, positive)
        result = areas if index == 0 else combine(result, areas)
    return result


def confined(rules: tuple[TRule, ...]) -> bool:
    """Whether the top-level payment rules (all of which must hold) confine `merchant.region` to named areas."""
    result: Areas = None
    for rule in rules:
        result = _intersect(result, allowed_areas(rule.condition))
    return result is not None


def outside(rules: tuple[TRule, ...], issuer_region: str) -> list[tuple[TCompare, list[str]]]:
    """The comparisons that allow a region outside `issuer_region`, each with the regions it names outside."""
    if issuer_region == regions.COUNTRY:
        return []
    found = []
    for rule in rules:
        for c in allowing_comparisons(rule.condition):
            beyond = [code for code in _values(c) if not regions.within(code, issuer_region)]
            if beyond:
                found.append((c, beyond))
    return found


def confinement(rules: tuple[TRule, ...], issuer_region: str, span: Span) -> tuple[TRule, ...]:
    """The payment rules, with `merchant.region within <issuer_region>` added when they leave the region open."""
    if issuer_region == regions.COUNTRY or confined(rules):
        return rules
    value = (issuer_region,)
    text = f"{FIELD} within {issuer_region}"
    condition = TCompare("within", FIELD, "region", value, text, span, expected_text("within", "region", value))
    return rules + (TRule(condition, text, span),)


def message(c: TCompare, beyond: list[str], issuer_region: str) -> str:
    """The diagnostic for a condition that allows spending outside the issuer's region."""
    named = ", ".join(beyond)
    return (
        f"`{c.text}` allows payments at merchants in {named}, outside the issuer's region {issuer_region}: a "
        f"campaign is spent only inside its issuer's region (write regions within {issuer_region})"
    )
