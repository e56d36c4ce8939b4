"""Risk rules (反欺诈规则) as data: the signals the engine knows, the platform's default rules, and the pure judging
of the signals that are decided inside a redemption batch.

This is part of the contract language because a contract may tighten or loosen the rules in its own `risk { … }`
section (checker.py checks it against `SIGNALS`; `explain` quotes its lines), and because the redemption path, a
room below risk control, judges its per-redemption signals with nothing but this module. Pure: no I/O.

A rule is `signal [param value]... : outcome`, in the contract as in `DEFAULT_RULES`:

    odd_hour from 01:00 to 05:00: hold
    refund_reredeem after 3: refuse
    threshold_hugging within 2%: flag
    merchant_velocity: off

A signal may have several rules (tiers); where more than one is met, the most severe outcome wins (refuse > hold >
flag). A contract that names a signal replaces every default rule of that signal; `: off` turns it off. Outcomes:
`flag` (it settles; a flag is opened for review), `hold` (also puts the merchant on payout hold) and `refuse`
(nothing moves: RISK_REFUSED with `explain`). docs/risk.md is the reference for people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

OUTCOMES = ("flag", "hold", "refuse")
SEVERITY = {"flag": 1, "hold": 2, "refuse": 3}
OFF = "off"

# Where a signal is judged: in the redemption batch, from what the batch reads anyway ("redemption"), or by the
# window detector over the redemptions as they arrive ("window").
REDEMPTION, WINDOW = "redemption", "window"

# Parameter kinds, and how a value is written in a contract: count (3, 1,000), percent (2% -> basis points),
# time (01:00 -> seconds since midnight), money (¥100 -> fen), minutes (a count of minutes).
KINDS = ("count", "percent", "time", "money", "minutes")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str
    minimum: int
    maximum: int
    meaning: str


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    where: str
    params: tuple[Param, ...]
    meaning: str

    def param(self, name: str) -> Union[Param, None]:
        for param in self.params:
            if param.name == name:
                return param
        return None


def _count(name: str, meaning: str, maximum: int = 1_000_000, minimum: int = 1) -> Param:
    return Param(name, "count", minimum, maximum, meaning)


def _percent(name: str, meaning: str) -> Param:
    return Param(name, "percent", 0, 10_000, meaning)


def _time(name: str, meaning: str) -> Param:
    return Param(name, "time", 0, 86_399, meaning)


def _minutes(name: str, meaning: str, maximum: int = 7 * 24 * 60) -> Param:
    return Param(name, "minutes", 1, maximum, meaning)


# Every signal the engine knows. The window signals are judged by the detector (risk/), which reads its thresholds
# from the same rules; a contract may name any of them.
SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal(
            "threshold_hugging",
            REDEMPTION,
            (_percent("within", "how far above the voucher's minimum spend an order may be and still hug it"),),
            "an order at the voucher's minimum spend or within a few per cent above it (满减 threshold games)",
        ),
        Signal(
            "odd_hour",
            REDEMPTION,
            (
                _time("from", "start of the odd hours (local time of the campaign)"),
                _time("to", "end of the odd hours, exclusive; before `from` means past midnight"),
            ),
            "a redemption in hours the merchant's category does not trade (ODD_HOURS by category by default)",
        ),
        Signal(
            "refund_reredeem",
            REDEMPTION,
            (_count("after", "refunds of this voucher at this merchant before this redemption", 1000),),
            "the same voucher refunded at this merchant and now redeemed there again (recycling)",
        ),
        Signal(
            "merchant_velocity",
            WINDOW,
            (
                _count("per_minute", "redemptions at the merchant in one minute"),
                _count("per_hour", "redemptions at the merchant in one hour"),
                Param(
                    "over_history",
                    "percent",
                    100,
                    1_000_000,
                    "the hour's count against the merchant's own busiest hour of its history (300% = 3x)",
                ),
            ),
            "a merchant redeeming far faster than itself",
        ),
        Signal(
            "threshold_share",
            WINDOW,
            (
                _percent("within", "how far above the minimum spend an order still hugs it"),
                _percent("share", "share of the merchant's orders that hug"),
                _count("at_least", "orders seen before the share counts"),
            ),
            "a merchant whose orders hug the threshold too often, or repeat one exact amount",
        ),
        Signal(
            "exact_repeat",
            WINDOW,
            (
                _count("times", "the same order amount repeated at one merchant"),
                _minutes("minutes", "within this many minutes"),
            ),
            "one exact order amount repeated at one merchant",
        ),
        Signal(
            "pair_recurrence",
            WINDOW,
            (
                _count("vouchers", "vouchers of one holder redeemed at one merchant"),
                _count("campaigns", "campaigns in which the pair recurs", 1000),
                _percent("hugging", "share of the pair's orders within threshold_share's band above the minimum spend"),
            ),
            "a holder-merchant pair that keeps recurring across vouchers and campaigns, its sales rung at the threshold",
        ),
        Signal(
            "new_merchant_volume",
            WINDOW,
            (
                _count("days", "a merchant is new for this many days after registration", 365),
                _count("per_hour", "redemptions in one hour"),
            ),
            "a newly registered merchant's sudden volume",
        ),
        Signal(
            "holder_spread",
            WINDOW,
            (
                _count("merchants", "distinct merchants one holder (id_hash) redeems at", 1000),
                _minutes("minutes", "within this many minutes"),
            ),
            "one holder redeeming across many merchants in minutes",
        ),
        Signal(
            "claims_burst",
            WINDOW,
            (_count("per_minute", "claims of a first-come campaign from one source in one minute"),),
            "a burst of claims on a first-come campaign (bots)",
        ),
    )
}

# Odd hours by merchant category (MCC), local time of the campaign, [from, to) in seconds since midnight; `to`
# before `from` runs past midnight. None: the category trades round the clock (no odd hours). "*": any other.
ODD_HOURS: dict[str, Union[tuple[int, int], None]] = {
    "5812": (3 * 3600, 6 * 3600),  # restaurants: late-night snacks (宵夜) run to about 03:00
    "5813": (6 * 3600, 10 * 3600),  # bars: open late, closed in the morning
    "5814": (4 * 3600, 6 * 3600),  # fast food: many open round the clock, but not busy before dawn
    "5411": None,  # grocery and convenience stores: round the clock
    "5499": None,
    "5541": None,  # fuel
    "5200": (22 * 3600, 7 * 3600),  # home supply
    "1520": (22 * 3600, 7 * 3600),  # contractors (home adaptation)
    "5722": (22 * 3600, 7 * 3600),  # household appliances
    "5732": (22 * 3600, 7 * 3600),  # electronics
    "5311": (23 * 3600, 8 * 3600),  # department stores
    "7832": (3 * 3600, 8 * 3600),  # cinemas
    "7922": (1 * 3600, 8 * 3600),  # theatres
    "7941": (1 * 3600, 5 * 3600),  # sports clubs
    "*": (1 * 3600, 5 * 3600),
}


@dataclass(frozen=True, slots=True)
class RiskRule:
    """One rule: when `signal` meets `limits`, the outcome (None: the signal is off). `text`, `line` and `column`
    are where it was written (a contract's line; None for a platform default), for `explain`."""

    signal: str
    outcome: Union[str, None]
    limits: tuple[tuple[str, int], ...] = ()
    text: str = ""
    line: Union[int, None] = None
    column: Union[int, None] = None

    def limit(self, name: str, default: Union[int, None] = None) -> Union[int, None]:
        for key, value in self.limits:
            if key == name:
                return value
        return default

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "outcome": self.outcome or OFF,
            "limits": dict(self.limits),
            "rule": self.text,
            "source": "platform default" if self.line is None else "contract",
            "line": self.line,
            "column": self.column,
        }


def rule(signal: str, outcome: Union[str, None], **limits: int) -> RiskRule:
    """A platform default rule, written the way a contract would write it."""
    written = "".join(f" {name} {_written(signal, name, value)}" for name, value in limits.items())
    return RiskRule(signal, outcome, tuple(limits.items()), f"{signal}{written}: {outcome or OFF}")


def _written(signal: str, name: str, value: int) -> str:
    param = SIGNALS[signal].param(name)
    kind = param.kind if param is not None else "count"
    if kind == "percent":
        whole, rest = divmod(value, 100)
        return f"{whole}%" if rest == 0 else f"{value / 100:g}%"
    if kind == "time":
        return f"{value // 3600:02d}:{value % 3600 // 60:02d}"
    if kind == "money":
        return f"¥{value // 100}" + (f".{value % 100:02d}" if value % 100 else "")
    return str(value)


# The platform's default rules (docs/risk.md gives the reasons). threshold_hugging is off per redemption by
# default: an honest order at exactly ¥100 is common; the pattern is a merchant's *share* of such orders
# (threshold_share, judged over a window). A contract may turn it on, e.g. `threshold_hugging within 2%: flag`.
DEFAULT_RULES: tuple[RiskRule, ...] = (
    rule("odd_hour", "flag"),
    # Not after 1: an honest till refunds a wrong order and rings it up again (the scenario's honest shops, where
    # 0.2 % of redemptions are so corrected, had 9 of 158 flagged at `after 1`); recycling does it again.
    rule("refund_reredeem", "flag", after=2),
    rule("refund_reredeem", "refuse", after=3),
    # The window rules' figures were tuned on the scenario generator's default run (docs/risk.md, "Window signals").
    rule("merchant_velocity", "flag", per_minute=20, per_hour=120, over_history=30_000),
    rule("threshold_share", "hold", within=300, share=6000, at_least=12),
    rule("exact_repeat", "flag", times=8, minutes=60),
    rule("pair_recurrence", "flag", vouchers=6, campaigns=2, hugging=6000),
    rule("new_merchant_volume", "flag", days=7, per_hour=15),
    # No merchant to hold: the holder redeems at honest shops.
    rule("holder_spread", "flag", merchants=4, minutes=30),
    rule("claims_burst", "flag", per_minute=10),
)


@dataclass(frozen=True, slots=True)
class RiskHit:
    """A rule met by one redemption: its evidence as the flag keeps it."""

    rule: RiskRule
    actual: Any
    expected: Any
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def signal(self) -> str:
        return self.rule.signal

    @property
    def outcome(self) -> str:
        assert self.rule.outcome is not None
        return self.rule.outcome

    def explain(self) -> dict[str, Any]:
        """The `explain` entry of a RISK_REFUSED answer: the rule as written, the value seen and the limit."""
        return {
            "rule": self.rule.text,
            "line": self.rule.line,
            "column": self.rule.column,
            "signal": self.rule.signal,
            "actual": self.actual,
            "expected": self.expected,
            "source": "platform default" if self.rule.line is None else "contract",
        }


class RiskRules:
    """A campaign's effective rules: the defaults with its contract's `risk { … }` section applied. Built once per
    contract (CompiledContract.risk); `judge_redemption` is what the redemption batch calls per job."""

    __slots__ = ("rules", "by_signal", "minimum_fen", "_odd", "_hug", "_reredeem", "per_redemption")

    def __init__(self, overrides: tuple[RiskRule, ...] = (), *, minimum_fen: int = 0) -> None:
        # The voucher's minimum spend (CompiledContract.minimum_order_fen), what threshold_hugging hugs.
        self.minimum_fen = minimum_fen
        named = {r.signal for r in overrides}
        kept = [r for r in DEFAULT_RULES if r.signal not in named]
        self.rules: tuple[RiskRule, ...] = tuple(kept) + tuple(r for r in overrides if r.outcome is not None)
        by_signal: dict[str, tuple[RiskRule, ...]] = {}
        for r in self.rules:
            by_signal[r.signal] = by_signal.get(r.signal, ()) + (r,)
        # Most severe first, so the first rule met is the hit.
        self.by_signal = {
            s: tuple(sorted(rs, key=lambda r: -SEVERITY[r.outcome or "flag"])) for s, rs in by_signal.items()
        }
        self._odd = self.by_signal.get("odd_hour", ())
        self._hug = self.by_signal.get("threshold_hugging", ())
        self._reredeem = self.by_signal.get("refund_reredeem", ())
        self.per_redemption = bool(self._odd or self._hug or self._reredeem)

    def for_signal(self, signal: str) -> tuple[RiskRule, ...]:
        """The rules of one signal, most severe first (the detector reads its thresholds here)."""
        return self.by_signal.get(signal, ())

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rules]

    def judge_redemption(
        self, *, mcc: str, local_seconds: int, order_amount_fen: int, refunds_here: int
    ) -> tuple[RiskHit, ...]:
        """The per-redemption signals met by one redemption, one hit per signal (its most severe rule met)."""
        if not self.per_redemption:
            return ()
        minimum_fen = self.minimum_fen
        hits: list[RiskHit] = []
        for r in self._odd:
            window = odd_window(r, mcc)
            if window is not None and in_window(local_seconds, window):
                hits.append(
                    RiskHit(
                        r,
                        _clock(local_seconds),
                        f"not {_clock(window[0])}-{_clock(window[1])}",
                        {"local_time": _clock(local_seconds), "mcc": mcc, "odd_hours": [_clock(w) for w in window]},
                    )
                )
                break
        if minimum_fen > 0:
            for r in self._hug:
                within_bp = r.limit("within", 0) or 0
                ceiling = minimum_fen + minimum_fen * within_bp // 10_000
                if minimum_fen <= order_amount_fen <= ceiling:
                    above_bp = (order_amount_fen - minimum_fen) * 10_000 // minimum_fen
                    hits.append(
                        RiskHit(
                            r,
                            order_amount_fen,
                            f"> {ceiling}",
                            {
                                "order_amount_fen": order_amount_fen,
                                "minimum_spend_fen": minimum_fen,
                                "above_minimum_bp": above_bp,
                                "within_bp": within_bp,
                            },
                        )
                    )
                    break
        for r in self._reredeem:
            after = r.limit("after", 1) or 1
            if refunds_here >= after:
                hits.append(
                    RiskHit(r, refunds_here, f"< {after}", {"refunds_at_merchant": refunds_here, "after": after})
                )
                break
        return tuple(hits)


# -- the contract's `risk { … }` section (checker.py calls check_section) ------------------------------------------


def check_section(block: Any, error: Callable[[Any, str], None]) -> tuple[RiskRule, ...]:
    """The rules of a `risk { … }` section (syntax.RiskBlock), each checked against SIGNALS; every problem is
    reported through `error(span, message)` at its line and column. A parameter left out takes the value of the
    signal's first default rule, so that every rule carries all its limits."""
    rules: list[RiskRule] = []
    seen: dict[tuple[str, str], int] = {}
    for line in block.lines:
        checked = _check_line(line, error)
        if checked is None:
            continue
        key = (checked.signal, checked.outcome or OFF)
        if key in seen:
            error(line.span, f"`{checked.signal}: {checked.outcome or OFF}` is given twice (first on line {seen[key]})")
            continue
        seen[key] = line.span.line
        rules.append(checked)
    for signal in {r.signal for r in rules if r.outcome is None}:
        if any(r.signal == signal and r.outcome is not None for r in rules):
            first = next(line for line in block.lines if line.signal.raw == signal)
            error(first.span, f"`{signal}` is turned off and given rules too; keep one")
    return tuple(rules)


def _check_line(line: Any, error: Callable[[Any, str], None]) -> Union[RiskRule, None]:
    signal = SIGNALS.get(line.signal.raw)
    if signal is None:
        error(line.signal.span, f"there is no risk signal `{line.signal.raw}`; the signals are {', '.join(SIGNALS)}")
        return None
    outcome = line.outcome.raw
    if outcome not in OUTCOMES and outcome != OFF:
        error(line.outcome.span, f"a risk rule's outcome is flag, hold, refuse or off, not `{outcome}`")
        return None
    if outcome == "refuse" and signal.where == WINDOW:
        error(
            line.outcome.span,
            f"`{signal.name}` is judged over a window, after the redemptions settled: it can flag or hold, not refuse",
        )
        return None
    if outcome == OFF and line.params:
        error(line.params[0][0].span, f"`{signal.name}: off` takes no parameters")
        return None
    limits: dict[str, int] = {}
    for name, value in line.params:
        param = signal.param(name.raw)
        if param is None:
            known = ", ".join(p.name for p in signal.params)
            error(name.span, f"`{signal.name}` has no parameter `{name.raw}`; it has {known}")
            return None
        if param.name in limits:
            error(name.span, f"`{param.name}` is given twice")
            return None
        number = _value_of(param, value, error)
        if number is None:
            return None
        limits[param.name] = number
    if signal.name == "odd_hour" and len(limits) == 1:
        error(line.span, "give odd hours as both `from` and `to` (or neither, for each category's own)")
        return None
    if signal.name == "odd_hour" and limits.get("from") == limits.get("to") and limits:
        error(line.span, "odd hours `from` and `to` are the same time: the window is empty")
        return None
    if outcome != OFF:
        for default in DEFAULT_RULES:
            if default.signal == signal.name:
                for name, number in default.limits:
                    limits.setdefault(name, number)
                break
    return RiskRule(
        signal.name,
        None if outcome == OFF else outcome,
        tuple(limits.items()),
        " ".join(line.text.split()),
        line.span.line,
        line.span.column,
    )


_WRITTEN_AS = {
    "count": ("count", "int"),
    "minutes": ("count", "int"),
    "percent": ("percent",),
    "time": ("time",),
    "money": ("money",),
}
_EXAMPLE = {"count": "3", "minutes": "10", "percent": "2%", "time": "01:00", "money": "¥100"}


def _value_of(param: Param, value: Any, error: Callable[[Any, str], None]) -> Union[int, None]:
    if value.kind not in _WRITTEN_AS[param.kind] or value.value is None:
        if value.value is not None or value.kind not in _WRITTEN_AS[param.kind]:
            error(value.span, f"`{param.name}` is {param.kind}, written like {_EXAMPLE[param.kind]}; not {value.raw}")
        return None
    number = value.value
    if param.kind == "percent":
        basis_points = number * 10_000
        if basis_points.denominator != 1:
            error(value.span, f"{value.raw} is finer than a hundredth of a per cent")
            return None
        number = int(basis_points)
    if not param.minimum <= number <= param.maximum:
        shown = {"percent": lambda n: f"{n / 100:g}%", "time": _clock}.get(param.kind, str)
        error(
            value.span,
            f"`{param.name}` must be from {shown(param.minimum)} to {shown(param.maximum)}; {value.raw} is not",
        )
        return None
    return int(number)


def odd_window(r: RiskRule, mcc: str) -> Union[tuple[int, int], None]:
    """The odd hours a rule means for a category: its own `from`/`to`, else the category's (ODD_HOURS)."""
    start, end = r.limit("from"), r.limit("to")
    if start is not None and end is not None:
        return (start, end)
    return ODD_HOURS.get(mcc, ODD_HOURS["*"])


def in_window(seconds: int, window: tuple[int, int]) -> bool:
    start, end = window
    if start <= end:
        return start <= seconds < end
    return seconds >= start or seconds < end  # past midnight


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


DEFAULTS = RiskRules()
