"""How values read in explanations and messages: money as ¥1,234.56, times as 09:00, weekdays by name.

Used by the checker (the `expected` text of each condition and its error messages) and by the compiled and
reference evaluators (the `actual` value of a failed condition). An explanation is read by a cashier or a policy
officer, so values are shown the way the contract writes them; every result is JSON-able.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Field types, in words, for messages.
TYPE_WORDS = {
    "int": "a whole number",
    "money": "an amount of money",
    "text": "a text",
    "mcc": "a merchant category code",
    "region": "a region code",
    "tags": "a set of tags",
    "weekday": "a day of the week",
    "time": "a time of day",
    "date": "a date",
}


def yuan(fen: int) -> str:
    """¥1,234.56 for 123456 fen (negative amounts keep their sign)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


def clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" if secs == 0 else f"{hours:02d}:{minutes:02d}:{secs:02d}"


def percent(rate: Any) -> str:
    """20% for Fraction(1, 5); 12.5% for Fraction(1, 8); exact, never a float."""
    scaled = rate * 100
    if scaled.denominator == 1:
        return f"{scaled.numerator}%"
    whole, rest = divmod(scaled.numerator * 10000 // scaled.denominator, 10000)
    return f"{whole}.{rest:04d}".rstrip("0") + "%"


def show(ftype: str, value: Any) -> str:
    """A constant of a field type as the contract would write it."""
    if ftype == "money":
        return yuan(value)
    if ftype in ("text", "mcc"):
        return f'"{value}"'
    if ftype == "weekday":
        return WEEKDAYS[value]
    if ftype == "time":
        return clock(value)
    if ftype == "date":
        return value.isoformat()
    return str(value)


def show_set(ftype: str, values: Any) -> str:
    return "{" + ", ".join(show(ftype, v) for v in sorted(values)) + "}"


def expected_text(op: str, ftype: str, value: Any) -> str:
    """What a condition needs, in words: "at least ¥100.00", 'one of {"5812", "5813"}', "within 310000"."""
    if op in ("in", "not_in", "has_any", "has_all") or (op in ("within", "not_within") and len(value) > 1):
        shown = show_set("text" if ftype == "tags" else ftype, value)
    elif op in ("within", "not_within"):
        shown = show(ftype, value[0])
    elif op in ("present", "missing"):
        shown = ""
    elif op in ("like", "has"):
        shown = f'"{value}"'
    else:
        shown = show(ftype, value)
    ordered = ftype in ("time", "date")
    if op == "within":
        return f"within {shown}" if len(value) == 1 else f"within one of {shown}"
    return {
        "=": shown,
        "!=": f"anything but {shown}",
        "<": f"before {shown}" if ordered else f"less than {shown}",
        "<=": f"{shown} or earlier" if ordered else f"at most {shown}",
        ">": f"after {shown}" if ordered else f"more than {shown}",
        ">=": f"{shown} or later" if ordered else f"at least {shown}",
        "in": f"one of {shown}",
        "not_in": f"none of {shown}",
        "not_within": f"outside {shown}",
        "like": f"matching {shown}",
        "has": f"tagged {shown}",
        "has_any": f"tagged with any of {shown}",
        "has_all": f"tagged with all of {shown}",
        "present": "present",
        "missing": "absent",
    }[op]


def actual_value(ftype: str, value: Any) -> Any:
    """The JSON-able form of an observed value: money, times, weekdays and dates as the contract writes them;
    a value of the wrong type (from a holder's or an item's JSON) is passed through when JSON-able."""
    if value is None:
        return None
    try:
        if ftype == "money" and type(value) is int:
            return yuan(value)
        if ftype == "time" and type(value) is int:
            return clock(value)
        if ftype == "weekday" and type(value) is int:
            return WEEKDAYS[value]
        if ftype == "date" and isinstance(value, dt.date):
            return value.isoformat()
        if ftype == "tags" and isinstance(value, (set, frozenset)):
            return sorted(str(v) for v in value)
    except (IndexError, ValueError, TypeError):
        pass
    return jsonable(value)


def jsonable(value: Any, depth: int = 0) -> Any:
    """Pass JSON values through; turn anything else into its repr, so a Failure can always be serialised."""
    if value is None or type(value) in (bool, int, str):
        return value
    if depth < 3 and isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value[:20]]
    if depth < 3 and isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in list(value.items())[:20]}
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
