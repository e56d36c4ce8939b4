"""The type checker: from a syntax tree to a ContractModel, or to errors a policy officer can act on.

It proves what can be proved before any money moves: every name is known and used where it makes sense, every
value has the type its field needs, funders' shares add up to exactly 100%, no voucher is worth more than the
order it requires, and quantity x largest subsidy fits the budget where that bound is exact (fixed, threshold,
balance). It warns about conditions that can never be true together. `check(source)` never raises.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import zoneinfo
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Union

from . import area as area_rules
from . import limits, regions
from . import risk as risk_rules
from .diagnostics import Diagnostic
from .explain import TYPE_WORDS, WEEKDAYS, expected_text, percent, yuan
from .model import (
    ContractModel,
    FixedWindow,
    Funder,
    RelativeValidity,
    TAnd,
    TCompare,
    TCondition,
    TNot,
    TOr,
    TRate,
    TRule,
    Validity,
)
from .parser import parse
from .syntax import (
    And,
    Block,
    Campaign,
    Comparison,
    Condition,
    ContractSyntax,
    Count,
    Declare,
    Funders,
    Literal,
    Not,
    Or,
    SetLiteral,
    Span,
    Voucher,
)
from .syntax import Validity as ValiditySyntax

DEFAULT_TIMEZONE = "Asia/Shanghai"

# The built-in vocabulary (POLICIES.md: "Names the contracts and clients share"). Holder attributes are written
# bare (`age`); `holder.age` is accepted too. Types: int money text mcc region tags weekday time date.
HOLDER_FIELDS = {"age": "int", "residence_region": "region", "graduate_year": "int"}
PAYMENT_FIELDS = {
    "merchant.mcc": "mcc",
    "merchant.region": "region",
    "merchant.tags": "tags",
    "order.amount": "money",
    "payment.weekday": "weekday",
    "payment.time": "time",
    "payment.date": "date",
}
ITEM_FIELDS = {
    "item.sku": "text",
    "item.category": "text",
    "item.amount": "money",
    "item.energy_grade": "int",
    "item.trade_in_certificate": "text",
}
ALIASES = {"merchant.region_code": "merchant.region", "payment.day": "payment.weekday"}
# Fields of the Item and Payment records themselves are always there; attributes come from JSON and may not be.
ALWAYS_PRESENT = frozenset(PAYMENT_FIELDS) | {"item.sku", "item.category", "item.amount"}

DECLARABLE_TYPES = {"integer": "int", "money": "money", "text": "text", "region": "region", "date": "date"}

OPS_BY_TYPE = {
    "int": {"=", "!=", "<", "<=", ">", ">=", "in", "not_in"},
    "money": {"=", "!=", "<", "<=", ">", ">="},
    "text": {"=", "!=", "in", "not_in", "like"},
    "mcc": {"=", "!=", "in", "not_in", "like"},
    "region": {"=", "!=", "in", "not_in", "within", "not_within"},
    "tags": {"has", "has_any", "has_all"},
    "weekday": {"=", "!=", "in", "not_in"},
    "time": {"=", "!=", "<", "<=", ">", ">="},
    "date": {"=", "!=", "<", "<=", ">", ">=", "in", "not_in"},
}
OP_WORDS = {
    "=": "`=`",
    "!=": "`!=`",
    "<": "`<`",
    "<=": "`<=`",
    ">": "`>`",
    ">=": "`>=`",
    "in": "`in`",
    "not_in": "`not in`",
    "within": "`within`",
    "not_within": "`not within`",
    "like": "`like`",
    "has": "`has`",
    "has_any": "`has any of`",
    "has_all": "`has all of`",
    "present": "`is present`",
    "missing": "`is missing`",
}
CONTEXT_WORDS = {"holder": "holder attribute", "payment": "payment field", "items": "item field"}

_TZ_KEY = re.compile(r"[A-Za-z_]+(/[A-Za-z0-9_+\-]+){0,2}")


_SECTION_NAMES = {
    "Campaign": "campaign",
    "Budget": "budget",
    "Funders": "funders",
    "Voucher": "voucher",
    "DailyCap": "daily cap",
    "Validity": "valid",
    "TimeZone": "timezone",
    "Distribution": "distribution",
    "Attested": "holder attested by",
    "RiskBlock": "risk",
}


@dataclass
class CheckResult:
    """What `check_contract` found. `summary` is JSON-able and empty when the contract has errors."""

    ok: bool
    errors: list[Diagnostic]
    warnings: list[Diagnostic]
    summary: dict[str, Any] = field(default_factory=dict)
    model: Union[ContractModel, None] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [d.to_dict() for d in self.errors],
            "warnings": [d.to_dict() for d in self.warnings],
            "summary": self.summary,
        }


class _TypeError(Exception):
    """Internal: a literal does not fit its field; carries the span and the message to report."""

    def __init__(self, span: Span, message: str) -> None:
        super().__init__(message)
        self.span = span
        self.message = message


def check(source: str) -> CheckResult:
    """Parse and check one contract. Never raises; errors and warnings are sorted by position."""
    syntax, diagnostics = parse(source)
    model = None
    if syntax is not None:
        over = _over_limits(syntax)
        if over:
            return CheckResult(False, over, [])  # refused before any analysis: its cost is what the limits bound
        checker = _Checker(syntax, diagnostics)
        model = checker.run()
    errors = sorted((d for d in diagnostics if d.severity == "error"), key=lambda d: (d.line, d.column))
    warnings = sorted((d for d in diagnostics if d.severity == "warning"), key=lambda d: (d.line, d.column))
    if len(errors) > limits.MAX_DIAGNOSTICS:
        rest = len(errors) - limits.MAX_DIAGNOSTICS
        errors = errors[: limits.MAX_DIAGNOSTICS]
        errors.append(Diagnostic(errors[-1].line, errors[-1].column, f"... and {rest} more errors"))
    warnings = warnings[: limits.MAX_DIAGNOSTICS]
    if errors:
        return CheckResult(False, errors, warnings)
    assert model is not None
    return CheckResult(True, [], warnings, summarize(model), model)


def _over_limits(syntax: ContractSyntax) -> list[Diagnostic]:
    """Every count limit of the contract, from the syntax tree alone, before any analysis (linear, iterative)."""
    errors: list[Diagnostic] = []
    conditions: list[Condition] = []
    declarations = 0
    for section in syntax.sections:
        if isinstance(section, Block):
            conditions.extend(rule.condition for rule in section.rules)
        elif isinstance(section, Voucher):
            conditions.extend(rate.condition for rate in section.rates if rate.condition is not None)
            if len(section.rates) > limits.MAX_RATES:
                errors.append(
                    Diagnostic(
                        section.span.line,
                        section.span.column,
                        f"there are {len(section.rates)} rates; the limit is {limits.MAX_RATES}",
                    )
                )
        elif isinstance(section, Funders) and len(section.entries) > limits.MAX_FUNDERS:
            errors.append(
                Diagnostic(
                    section.span.line,
                    section.span.column,
                    f"there are {len(section.entries)} funders; the limit is {limits.MAX_FUNDERS}",
                )
            )
        elif isinstance(section, Declare):
            declarations += 1
    if declarations > limits.MAX_DECLARATIONS:
        errors.append(Diagnostic(1, 1, f"at most {limits.MAX_DECLARATIONS} attributes can be declared"))
    comparisons = 0
    while conditions:
        node = conditions.pop()
        if isinstance(node, (And, Or)):
            conditions.extend(node.parts)
        elif isinstance(node, Not):
            conditions.append(node.part)
        else:
            comparisons += 1
    if comparisons > limits.MAX_CONDITIONS:
        errors.append(
            Diagnostic(1, 1, f"the contract has {comparisons} conditions; the limit is {limits.MAX_CONDITIONS}")
        )
    return errors


def summarize(model: ContractModel) -> dict[str, Any]:
    """The JSON-able description the API answers to `POST /v1/contracts/check` and the CLI prints."""
    terms: dict[str, Any] = {"kind": model.kind}
    if model.kind in ("fixed", "threshold", "balance"):
        terms["amount_fen"] = model.amount_fen
    if model.kind == "percent":
        terms["percent"] = percent(model.rate)
    if model.kind in ("percent", "item_percent"):
        terms["cap_fen"] = model.cap_fen
    if model.kind == "item_percent":
        terms["rates"] = [r.text for r in model.rates]
    if model.spend_fen:
        terms["min_spend_fen"] = model.spend_fen
    return {
        "name": model.name,
        "issuer": model.issuer_region,
        "timezone": model.timezone,
        "budget_fen": model.budget_fen,
        "funders": [{"region_code": f.region_code, "share_bp": f.share_bp} for f in model.funders],
        "kind": model.kind,
        "terms": terms,
        "face_value_fen": model.face_value_fen,
        "quantity": model.quantity,
        "per_holder_limit": model.per_holder_limit,
        "daily_cap_fen": model.daily_cap_fen,
        "distribution": model.distribution,
        "validity": model.validity.to_dict(),
        "needs_items": model.kind == "item_percent",
        "worst_case_fen": model.worst_case_fen,
        "needs_escrow_check": model.needs_escrow_check,
        "holder_conditions": [r.text for r in model.holder_rules],
        "payment_conditions": [r.text for r in model.payment_rules],
        "item_conditions": [r.text for r in model.item_rules],
        **({"attested_by": model.attester} if model.attester is not None else {}),
        **({"risk_rules": [r.text for r in model.risk_rules]} if model.risk_rules else {}),
    }


class _Checker:
    def __init__(self, syntax: ContractSyntax, diagnostics: list[Diagnostic]) -> None:
        self.syntax = syntax
        self.diagnostics = diagnostics
        self.seen: dict[str, Any] = {}
        self.declared: dict[str, str] = {}
        self.comparisons = 0

    # ---- reporting --------------------------------------------------------------------------------------

    def error(self, span: Span, message: str) -> None:
        self.diagnostics.append(Diagnostic(span.line, span.column, message))

    def warn(self, span: Span, message: str) -> None:
        self.diagnostics.append(Diagnostic(span.line, span.column, message, "warning"))

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    # ---- the whole contract -----------------------------------------------------------------------------

    def run(self) -> Union[ContractModel, None]:
        blocks: dict[str, Block] = {}
        for section in self.syntax.sections:
            if isinstance(section, Declare):
                self.declare(section)
        for section in self.syntax.sections:
            if isinstance(section, Declare):
                continue
            key = (
                section.context
                if isinstance(section, Block)
                else (section.what if isinstance(section, Count) else _SECTION_NAMES[type(section).__name__])
            )
            if key in self.seen:
                first = self.seen[key].span
                self.error(section.span, f"the contract gives `{key}` twice (first on line {first.line}); keep one")
                continue
            self.seen[key] = section
            if isinstance(section, Block):
                blocks[section.context] = section
        for key, example in (
            ("campaign", 'campaign "Shanghai dining vouchers 2025" issuer 310000'),
            ("budget", "budget ¥1,000,000"),
            ("voucher", "voucher threshold: spend ¥100, get ¥20 off"),
            ("valid", "valid from 2025-01-01 00:00 to 2025-01-31 23:59 China time"),
        ):
            if key not in self.seen:
                self.error(Span(1, 1, 0, 0), f"the contract has no `{key}` section; add a line like `{example}`")
        name, issuer = self.campaign()
        budget_fen = self.money_of(self.seen.get("budget"), "amount", "the budget")
        tz_name = self.timezone()
        funders = self.funders(issuer)
        voucher = self.seen.get("voucher")
        holder_rules = self.block(blocks.get("holder"), "holder")
        payment_rules = self.spending_area(
            self.block(blocks.get("payment"), "payment", self.spend_bound(voucher)), issuer
        )
        item_rules = self.block(blocks.get("items"), "items")
        risk = risk_rules.check_section(self.seen["risk"], self.error) if "risk" in self.seen else ()
        terms = self.voucher(voucher, payment_rules, blocks.get("items")) if voucher is not None else None
        validity = self.validity(tz_name)
        distribution = self.seen["distribution"].kind if "distribution" in self.seen else "targeted"
        per_holder = self.count("limit", 1, limits.MAX_PER_HOLDER, "the limit per holder")
        daily_cap = self.money_of(self.seen.get("daily cap"), "amount", "the daily cap")
        if self.comparisons > limits.MAX_CONDITIONS:
            self.error(
                Span(1, 1, 0, 0),
                f"the contract has {self.comparisons} conditions; the limit is {limits.MAX_CONDITIONS}",
            )
        if terms is None or voucher is None or budget_fen is None:
            return None
        # The budget is proven whatever else is wrong (name, validity, funders): every error is reported at once.
        face = terms["face"]
        quantity = self.count("quantity", None, limits.MAX_QUANTITY, "the quantity")
        quantity_span = self.seen["quantity"].span if "quantity" in self.seen else self.seen["budget"].span
        if "quantity" not in self.seen:
            quantity = budget_fen // face if face > 0 else 0
            if quantity == 0:
                self.error(
                    self.seen["budget"].span,
                    f"the budget of {yuan(budget_fen)} cannot pay for even one voucher worth {yuan(face)}",
                )
            elif quantity > limits.MAX_QUANTITY:
                self.error(
                    quantity_span,
                    f"the budget pays for {quantity:,} vouchers; the limit is "
                    f"{limits.MAX_QUANTITY:,}: give a smaller `quantity`",
                )
        if quantity is None:
            return None
        worst = quantity * face
        exact = terms["kind"] in ("fixed", "threshold", "balance")
        if worst > budget_fen:
            message = (
                f"{quantity:,} vouchers worth up to {yuan(face)} each can cost {yuan(worst)}, "
                f"more than the budget of {yuan(budget_fen)}"
            )
            if exact:
                self.error(quantity_span, message + "; lower the quantity or raise the budget")
            else:
                self.warn(quantity_span, message + "; redemptions will stop when the budget is spent")
        if per_holder is not None and 0 < quantity < per_holder:
            # Without a `limit` line the per-holder limit is the default of one, which no positive quantity is below.
            limit_span = self.seen["limit"].span if "limit" in self.seen else quantity_span
            self.warn(limit_span, f"the limit per holder ({per_holder}) is more than the quantity ({quantity:,})")
        if daily_cap is not None:
            if daily_cap > budget_fen:
                self.warn(self.seen["daily cap"].span, "the daily cap is more than the whole budget")
            elif daily_cap < face:
                self.warn(
                    self.seen["daily cap"].span,
                    f"one voucher can pay {yuan(face)}, more than the whole daily cap of {yuan(daily_cap)}",
                )
        if self.failed or name is None or validity is None or funders is None or per_holder is None:
            return None
        return ContractModel(
            name=name,
            issuer_region=issuer,
            timezone=tz_name,
            budget_fen=budget_fen,
            funders=funders,
            kind=terms["kind"],
            face_value_fen=face,
            quantity=quantity,
            per_holder_limit=per_holder,
            daily_cap_fen=daily_cap,
            distribution=distribution,
            validity=validity,
            amount_fen=terms.get("amount", 0),
            spend_fen=terms.get("spend", 0),
            rate=terms.get("rate", Fraction(0)),
            cap_fen=terms.get("cap", 0),
            rates=terms.get("rates", ()),
            voucher_text=voucher.text,
            voucher_span=voucher.span,
            spend_text=voucher.spend.text if voucher.spend is not None else "",
            spend_span=voucher.spend.span if voucher.spend is not None else None,
            holder_rules=holder_rules,
            payment_rules=payment_rules,
            item_rules=item_rules,
            worst_case_fen=worst,
            needs_escrow_check=worst > budget_fen,
            attester=self.attester(),
            risk_rules=risk,
        )

    # ---- sections ---------------------------------------------------------------------------------------

    def campaign(self) -> tuple[Union[str, None], str]:
        section = self.seen.get("campaign")
        if not isinstance(section, Campaign):
            return None, regions.COUNTRY
        name = section.name.value
        if not isinstance(name, str) or not name.strip():
            self.error(section.name.span, 'the campaign needs a name, like "Shanghai dining vouchers 2025"')
        issuer = self.region_code(section.issuer, "the issuer")
        return (name if isinstance(name, str) else None), (issuer or regions.COUNTRY)

    def spending_area(self, payment_rules: tuple[TRule, ...], issuer: str) -> tuple[TRule, ...]:
        """Refuse regions outside the issuer's; confine an open contract to the issuer's region (area.py)."""
        for c, beyond in area_rules.outside(payment_rules, issuer):
            self.error(c.span, area_rules.message(c, beyond, issuer))
        section = self.seen.get("campaign")
        span = section.issuer.span if isinstance(section, Campaign) else Span(1, 1, 0, 0)
        return area_rules.confinement(payment_rules, issuer, span)

    def region_code(self, lit: Literal, what: str) -> Union[str, None]:
        code = lit.raw.strip('"') if lit.kind in ("int", "string") else None
        if code is None or not regions.is_well_formed(code):
            self.error(
                lit.span,
                f"{what} must be a six-digit region code (GB/T 2260), like 310000 for Shanghai; {lit.raw} is not one",
            )
            return None
        if not regions.is_region_code(code):
            self.error(lit.span, f"{what} must be a region code: {regions.why_not(lit.raw)}")
            return None
        return code

    def money_of(self, section: Any, attr: str, what: str) -> Union[int, None]:
        if section is None:
            return None
        lit = getattr(section, attr)
        if lit.value is None:
            return None
        if lit.value <= 0:
            self.error(lit.span, f"{what} must be more than ¥0")
            return None
        return lit.value

    def count(self, key: str, default: Union[int, None], maximum: int, what: str) -> Union[int, None]:
        section = self.seen.get(key)
        if section is None:
            return default
        value = section.count.value
        if value is None:
            return None
        if value < 1:
            self.error(section.count.span, f"{what} must be at least 1")
            return None
        if value > maximum:
            self.error(section.count.span, f"{what} is {value:,}; the limit is {maximum:,}")
            return None
        return value

    def attester(self) -> Union[str, None]:
        """The attester named by `holder attested by "<name>"`. Only its shape is checked here (the language is
        pure): whether such an attester is registered is decided when the campaign is created."""
        section = self.seen.get("holder attested by")
        if section is None:
            return None
        name = section.name.value
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            self.error(section.name.span, "name the attester as registered, in 1 to 100 characters")
            return None
        return name

    def timezone(self) -> str:
        section = self.seen.get("timezone")
        validity = self.seen.get("valid")
        if section is None:
            return DEFAULT_TIMEZONE
        key = section.name.value
        ok = isinstance(key, str) and _TZ_KEY.fullmatch(key) is not None
        if ok:
            try:
                zoneinfo.ZoneInfo(key)
            except Exception:  # zoneinfo raises several types for bad keys; all mean "unknown"
                ok = False
        if not ok:
            self.error(
                section.name.span, f'{section.name.raw} is not a time zone I know; write it like "Asia/Shanghai"'
            )
            return DEFAULT_TIMEZONE
        if isinstance(validity, ValiditySyntax) and validity.china_time and key != DEFAULT_TIMEZONE:
            self.error(validity.span, f"the validity says China time but the contract's timezone is {key}")
        return key

    def funders(self, issuer: str) -> Union[tuple[Funder, ...], None]:
        section = self.seen.get("funders")
        if section is None:
            campaign = self.seen.get("campaign")
            span = campaign.issuer.span if isinstance(campaign, Campaign) else None
            return (Funder(issuer, 10000, span),)  # POLICIES: a campaign names its funders, else its issuer pays
        assert isinstance(section, Funders)
        if not section.entries:
            self.error(section.span, "the funders section is empty; name at least one funder, like `310000: 100%`")
            return None
        if len(section.entries) > limits.MAX_FUNDERS:
            self.error(section.span, f"there are {len(section.entries)} funders; the limit is {limits.MAX_FUNDERS}")
            return None
        out: list[Funder] = []
        total = Fraction(0)
        seen: dict[str, int] = {}
        bad = unreadable = False
        for entry in section.entries:
            code = self.region_code(entry.region, "a funder")
            share = entry.share.value
            if not isinstance(share, Fraction):
                unreadable = True  # the parser has said why (a percentage too long to read)
                continue
            total += share
            if code is None:
                bad = True
                continue
            if code in seen:
                self.error(entry.span, f"{code} is named twice among the funders (first on line {seen[code]})")
                bad = True
                continue
            seen[code] = entry.span.line
            basis_points = share * 10000
            if share <= 0:
                self.error(entry.share.span, "a funder's share must be more than 0%")
                bad = True
            elif basis_points.denominator != 1:
                self.error(
                    entry.share.span,
                    f"{entry.share.raw} is finer than 0.01%; shares are counted in hundredths of a percent",
                )
                bad = True
            else:
                out.append(Funder(code, int(basis_points), entry.span))
        if unreadable:
            return None
        if total != 1:
            self.error(
                section.span,
                f"the funders' shares add up to {percent(total)}, they must add up to 100%",
            )
            return None
        return None if bad else tuple(out)

    def validity(self, tz_name: str) -> Union[Validity, None]:
        section = self.seen.get("valid")
        if section is None:
            return None
        assert isinstance(section, ValiditySyntax)
        tz = zoneinfo.ZoneInfo(tz_name)
        if section.kind == "relative":
            written = section.amount
            amount = written.whole() if written is not None else None
            if written is None or amount is None:
                return None
            seconds = amount * (86400 if section.unit.startswith("day") else 3600)
            if amount < 1:
                self.error(written.span, "a voucher must be valid for at least 1 hour")
                return None
            if seconds > limits.MAX_VALIDITY_SECONDS:
                self.error(written.span, "a voucher may be valid for at most ten years")
                return None
            return RelativeValidity(seconds)
        if section.kind == "year":
            year = section.year.whole() if section.year is not None else None
            if year is None or not 2000 <= year <= 2200:
                self.error(
                    section.span, f"{section.year.raw if section.year else ''} is not a year I accept (2000 to 2200)"
                )
                return None
            return FixedWindow(dt.datetime(year, 1, 1, tzinfo=tz), dt.datetime(year + 1, 1, 1, tzinfo=tz))
        start = self.moment(section.start, tz, end=False)
        end = self.moment(section.end, tz, end=True)
        if start is None or end is None:
            return None
        if end <= start:
            self.error(section.span, "the validity ends before it starts")
            return None
        if (end - start).total_seconds() > limits.MAX_VALIDITY_SECONDS:
            self.error(section.span, "a voucher may be valid for at most ten years")
            return None
        return FixedWindow(start, end)

    def moment(self, lit: Union[Literal, None], tz: dt.tzinfo, end: bool) -> Union[dt.datetime, None]:
        if lit is None or lit.value is None:
            return None
        if lit.kind == "date":
            assert isinstance(lit.value, dt.date)
            start = dt.datetime.combine(lit.value, dt.time(0, 0))
            step = dt.timedelta(days=1)
        else:
            assert isinstance(lit.value, dt.datetime)
            start = lit.value
            step = dt.timedelta(minutes=1) if lit.precision == "minute" else dt.timedelta(seconds=1)
        if not 2000 <= start.year <= 2200:
            self.error(lit.span, f"{lit.raw} is outside the years I accept (2000 to 2200)")
            return None
        # The end is inclusive at the precision written: `to 23:59` covers the minute, `to 2025-12-31` the day.
        local = start + step if end else start
        return local.replace(tzinfo=tz)

    def voucher(
        self, section: Voucher, payment_rules: tuple[TRule, ...], items: Union[Block, None]
    ) -> Union[dict, None]:
        kind = section.kind
        terms: dict[str, Any] = {"kind": kind}
        spend = None
        if section.spend is not None:
            spend = section.spend.amount.whole()
            if spend is not None and spend <= 0:
                self.error(section.spend.amount.span, "the minimum spend must be more than ¥0")
                return None
        # The smallest order the voucher can be used on: its own `spend` and any `order.amount >= X` condition.
        floor, floor_span, floor_text = (
            spend,
            (section.spend.span if section.spend else None),
            (section.spend.text if section.spend else ""),
        )
        for rule in payment_rules:
            c = rule.condition
            if isinstance(c, TCompare) and c.path == "order.amount" and c.op in (">=", ">", "="):
                bound = c.value + (1 if c.op == ">" else 0)
                if floor is None or bound > floor:
                    floor, floor_span, floor_text = bound, c.span, c.text
        if items is not None and kind != "item_percent":
            self.error(
                items.span,
                "an `items` section only applies to a `voucher per item`; this voucher pays on the whole order",
            )
        if kind in ("fixed", "threshold", "balance"):
            written = section.amount
            amount = written.whole() if written is not None else None
            if written is None or amount is None:
                return None
            if amount <= 0:
                self.error(written.span, "a voucher must be worth more than ¥0")
                return None
            terms["amount"] = amount
            terms["face"] = amount
            if kind != "balance" and floor is not None and amount > floor:
                self.error(
                    written.span,
                    f"the voucher is worth {yuan(amount)} but the order it needs can be as small as {yuan(floor)} "
                    f"(`{floor_text}`): a voucher must not be worth more than the order it needs",
                )
                return None
        elif kind == "percent":
            rate_written, cap_written = section.percent, section.cap
            rate = rate_written.fraction() if rate_written is not None else None
            cap = cap_written.whole() if cap_written is not None else None
            if rate_written is None or rate is None or cap_written is None or cap is None:
                return None
            if not 0 < rate <= 1:
                self.error(rate_written.span, "a percentage off must be more than 0% and at most 100%")
                return None
            if cap <= 0:
                self.error(cap_written.span, "the cap must be more than ¥0")
                return None
            terms.update(rate=rate, cap=cap, face=cap)
        elif kind == "item_percent":
            cap_written = section.cap
            cap = cap_written.whole() if cap_written is not None else None
            if cap_written is None or cap is None:
                return None
            if cap <= 0:
                self.error(cap_written.span, "the cap must be more than ¥0")
                return None
            terms.update(cap=cap, face=cap, rates=self.rates(section))
            if terms["rates"] is None:
                return None
        if spend is not None:
            terms["spend"] = spend
        return terms

    def rates(self, section: Voucher) -> Union[tuple[TRate, ...], None]:
        if not section.rates:
            self.error(
                section.span, "a voucher per item needs at least one rate, like `20% when item.energy_grade = 1`"
            )
            return None
        if len(section.rates) > limits.MAX_RATES:
            self.error(section.span, f"there are {len(section.rates)} rates; the limit is {limits.MAX_RATES}")
            return None
        out: list[TRate] = []
        after_otherwise = False
        for rate in section.rates:
            value = rate.percent.value
            if not isinstance(value, Fraction):
                continue  # the parser has said why (a percentage too long to read)
            if not 0 < value <= 1:
                self.error(rate.percent.span, "a rate must be more than 0% and at most 100%")
            if after_otherwise:
                self.warn(rate.span, "this rate comes after `otherwise` and can never apply")
            condition = self.condition(rate.condition, "items", 0) if rate.condition is not None else None
            if rate.condition is None:
                after_otherwise = True
            out.append(TRate(value, condition, rate.text, rate.span))
        return tuple(out)

    # ---- conditions -------------------------------------------------------------------------------------

    def declare(self, section: Declare) -> None:
        path = section.field.path
        if len(self.declared) >= limits.MAX_DECLARATIONS:
            self.error(section.span, f"at most {limits.MAX_DECLARATIONS} attributes can be declared")
            return
        if path.startswith("holder.") and path.count(".") == 1:
            key = path[len("holder.") :]
            builtin = HOLDER_FIELDS
        elif path.startswith("item.") and path.count(".") == 1:
            key = path
            builtin = ITEM_FIELDS
        else:
            self.error(
                section.field.span,
                f"only holder and item attributes can be declared, like "
                f"`declare holder.{path.split('.')[-1]} as integer`",
            )
            return
        if key in builtin or key in self.declared:
            self.error(section.field.span, f"`{path}` is already known; declare it only once and only if it is new")
            return
        self.declared[key] = DECLARABLE_TYPES[section.type_name]

    def spend_bound(self, voucher: Union[Voucher, None]) -> list[TRule]:
        """The voucher's `spend ¥X` as the condition `order.amount >= ¥X`, so contradictions with it are found."""
        if voucher is None or voucher.spend is None or voucher.spend.amount.value is None:
            return []
        spend = voucher.spend
        condition = TCompare(">=", "order.amount", "money", spend.amount.value, spend.text, spend.span, "")
        return [TRule(condition, spend.text, spend.span)]

    def block(
        self, block: Union[Block, None], context: str, implied: Union[list[TRule], None] = None
    ) -> tuple[TRule, ...]:
        if block is None:
            return ()
        rules = []
        for rule in block.rules:
            typed = self.condition(rule.condition, context, 0)
            if typed is not None:
                rules.append(TRule(typed, rule.text, rule.span))
        self.never_true((implied or []) + rules, context)
        return tuple(rules)

    def condition(self, node: Condition, context: str, depth: int) -> Union[TCondition, None]:
        if depth > limits.MAX_NESTING_DEPTH:
            self.error(
                node.span,
                f"this condition is nested more than {limits.MAX_NESTING_DEPTH} levels deep; "
                "write it as several simpler conditions",
            )
            return None
        if isinstance(node, (And, Or)):
            parts = [self.condition(p, context, depth + 1) for p in node.parts]
            if any(p is None for p in parts):
                return None
            cls = TAnd if isinstance(node, And) else TOr
            return cls(tuple(parts), node.text, node.span)  # type: ignore[arg-type]
        if isinstance(node, Not):
            part = self.condition(node.part, context, depth + 1)
            return None if part is None else TNot(part, node.text, node.span)
        return self.comparison(node, context)

    def field_type(self, path: str, span: Span, context: str) -> Union[tuple[str, str], None]:
        path = ALIASES.get(path, path)
        if path.startswith("holder.") and path.count(".") == 1:
            path = path[len("holder.") :]
        holder = {**HOLDER_FIELDS, **{k: v for k, v in self.declared.items() if "." not in k}}
        items = {**ITEM_FIELDS, **{k: v for k, v in self.declared.items() if k.startswith("item.")}}
        known = {"holder": holder, "payment": PAYMENT_FIELDS, "items": items}[context]
        if path in known:
            return path, known[path]
        if context != "holder" and path in holder:
            self.error(
                span,
                f"`{path}` is a holder attribute: put it in the `holder` section, which is checked "
                "when the voucher is issued",
            )
        elif context != "payment" and path in PAYMENT_FIELDS:
            self.error(span, f"`{path}` describes the payment: put it in the `payment` section")
        elif context != "items" and (path in items or path.startswith("item.")):
            self.error(
                span,
                f"`{path}` describes one order item: use it in the `items` section or in the rates "
                "of a `voucher per item`",
            )
        else:
            close = difflib.get_close_matches(path, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            self.error(
                span,
                f"there is no {CONTEXT_WORDS[context]} called `{path}`{hint} The known ones are: "
                + ", ".join(sorted(known))
                + (" (others can be declared with `declare`)" if context != "payment" else ""),
            )
        return None

    def comparison(self, node: Comparison, context: str) -> Union[TCompare, None]:
        self.comparisons += 1
        resolved = self.field_type(node.field.path, node.field.span, context)
        if resolved is None:
            return None
        path, ftype = resolved
        op = node.op
        if op in ("present", "missing"):
            if path in ALWAYS_PRESENT:
                self.error(node.span, f"`{path}` is always known, so {OP_WORDS[op]} says nothing")
                return None
            return TCompare(op, path, ftype, None, node.text, node.span, expected_text(op, ftype, None))
        if op not in OPS_BY_TYPE[ftype]:
            allowed = ", ".join(OP_WORDS[o] for o in sorted(OPS_BY_TYPE[ftype], key=list(OP_WORDS).index))
            why = {
                "mcc": " (categories have no order)",
                "region": " (use `within` for areas)",
                "text": "",
                "weekday": "",
                "tags": " (a merchant's tags are tested with `has`)",
            }.get(ftype, "")
            self.error(
                node.span, f"`{path}` is {TYPE_WORDS[ftype]}; it cannot be used with {OP_WORDS[op]}{why}. Use {allowed}"
            )
            return None
        try:
            value = self.constant(op, ftype, path, node.value)
        except _TypeError as exc:
            self.error(exc.span, exc.message)
            return None
        if ftype == "region":
            self.exact_area(node, op, value)
        return TCompare(op, path, ftype, value, node.text, node.span, expected_text(op, ftype, value))

    def exact_area(self, node: Comparison, op: str, value: Any) -> None:
        """Warn when `=`, `!=`, `in` or `not in` names a province or prefecture that has counties: it compares codes
        exactly, so `merchant.region = 310000` holds for no merchant registered in one of Shanghai's districts."""
        if op not in ("=", "!=", "in", "not_in"):
            return
        areas = [
            code for code in ((value,) if isinstance(value, str) else sorted(value)) if regions.has_subdivisions(code)
        ]
        if not areas:
            return
        written = node.value
        if written is None:
            return
        target = written.raw if isinstance(written, Literal) else "{" + ", ".join(v.raw for v in written.items) + "}"
        who = "merchant registered" if node.field.path.startswith("merchant.") else "holder whose region is"
        instead = "within" if op in ("=", "in") else "not within"
        missed = f"does not match {areas[0]}" if op in ("=", "in") else "is not excluded"
        self.warn(
            node.span,
            f"{OP_WORDS[op]} compares region codes exactly, and {areas[0]} ({regions.name(areas[0])}) has regions "
            f"within it: a {who} in one of them {missed}; "
            f"did you mean `{node.field.path} {instead} {target}`?",
        )

    def constant(self, op: str, ftype: str, path: str, value: Union[Literal, SetLiteral, None]) -> Any:
        assert value is not None
        if op in ("in", "not_in", "has_any", "has_all", "within", "not_within"):
            items = value.items if isinstance(value, SetLiteral) else (value,)
            if op in ("in", "not_in", "has_any", "has_all") and not isinstance(value, SetLiteral):
                raise _TypeError(value.span, f'{OP_WORDS[op]} needs a set in braces, like {{"5812", "5813"}}')
            element = "text" if ftype == "tags" else ftype
            converted = [self.literal(element, path, lit) for lit in items]
            if op in ("within", "not_within"):
                if not converted:
                    raise _TypeError(value.span, "`within` needs at least one region")
                return tuple(sorted(set(converted)))
            if len(set(converted)) != len(converted):
                self.warn(value.span, "this set names the same value more than once")
            return frozenset(converted)
        if op == "like":
            assert isinstance(value, Literal)
            if value.kind != "string":
                raise _TypeError(value.span, 'a `like` pattern is text in quotes, like "appliance.*"')
            return value.value
        if op == "has":
            return self.literal("text", path, value)  # type: ignore[arg-type]
        if isinstance(value, SetLiteral):
            raise _TypeError(value.span, f"{OP_WORDS[op]} compares with one value; to allow several, use `in {{...}}`")
        return self.literal(ftype, path, value)

    def literal(self, ftype: str, path: str, lit: Literal) -> Any:
        """Convert a written value to the constant a field of type `ftype` is compared with."""
        if lit.value is None:
            raise _TypeError(lit.span, f"{lit.raw} cannot be read")  # already reported by the parser
        kind = lit.kind
        words = TYPE_WORDS[ftype]
        if ftype == "int":
            if kind == "int":
                return lit.value
            if kind == "string" and (lit.text() or "").isdigit():
                raise _TypeError(lit.span, f"`{path}` is a whole number: write {lit.value} without quotes")
        elif ftype == "money":
            if kind == "money":
                return lit.value
            if kind == "int":
                raise _TypeError(lit.span, f"`{path}` is an amount of money: write it with ¥, like ¥{lit.raw}")
        elif ftype in ("text", "mcc"):
            if kind == "string":
                mcc = lit.text() or ""
                if ftype == "mcc" and not (len(mcc) == 4 and mcc.isascii() and mcc.isdigit()):
                    raise _TypeError(
                        lit.span, f'{lit.raw} is not a merchant category code: those are four digits, like "5812"'
                    )
                return lit.value
            if kind in ("int", "name"):
                if ftype == "mcc":
                    raise _TypeError(lit.span, f'merchant category codes are written in quotes, like "{lit.raw}"')
                raise _TypeError(lit.span, f'`{path}` is {words}: write it in quotes, like "{lit.raw}"')
        elif ftype == "region":
            if kind in ("int", "string"):
                code = lit.raw.strip('"')
                if regions.is_region_code(code):
                    return code
                raise _TypeError(lit.span, regions.why_not(lit.raw))
        elif ftype == "weekday":
            if kind == "name":
                for number, day in enumerate(WEEKDAYS):
                    if (lit.text() or "").lower() in (day.lower(), day[:3].lower()):
                        return number
                raise _TypeError(lit.span, f"{lit.raw} is not a day of the week; write Monday ... Sunday")
        elif ftype == "time":
            if kind == "time":
                return lit.value
        elif ftype == "date":
            if kind == "date":
                return lit.value
        raise _TypeError(lit.span, f"`{path}` is {words}, but {lit.raw} is {_literal_words(lit)}")

    # ---- conditions that can never be true ------------------------------------------------------------

    def never_true(self, rules: list[TRule], context: str) -> None:
        """Warn when the top-level conditions of one section contradict each other (or one cannot hold).

        Only single-field comparisons are analysed, by intersecting what each allows; a warning is where the
        contradiction is provable from them, silence proves nothing. Each condition costs time in proportion to its
        own size (its set), never to the conditions before it: this runs on any text anyone may post.
        """
        state: dict[str, _Allowed] = {}
        for rule in rules:
            c = rule.condition
            if not isinstance(c, TCompare):
                continue
            if c.op in ("in", "has_any") and not c.value:
                self.warn(c.span, "this condition can never be true: the set is empty")
                continue
            if c.ftype not in ("int", "money", "time", "date", "text", "mcc", "region", "weekday"):
                continue
            if c.op not in ("<", "<=", ">", ">=", "=", "in", "!=", "not_in", "within"):
                continue
            allowed = state.get(c.path)
            if allowed is None:
                allowed = state[c.path] = _Allowed(c)
            allowed.add(c.op, c.value)
            if allowed.impossible():
                first = allowed.first
                other = f" together with `{first.text}` (line {first.span.line})" if first is not c else ""
                self.warn(
                    c.span,
                    f"this condition can never be true{other}: no "
                    f"{'holder' if context == 'holder' else 'payment' if context == 'payment' else 'item'} "
                    "can satisfy it",
                )
                state.pop(c.path)


def _key(value: Any) -> Any:
    """What a range compares: dates by their day number, everything else (fen, seconds, integers) as it is."""
    return value.toordinal() if isinstance(value, dt.date) else value


def _ancestors(code: str) -> tuple[str, ...]:
    """The regions a region code lies within, itself included: `regions.within(code, area)` exactly when `area` is
    one of these (GB/T 2260 codes nest by their digits: county, prefecture, province, country)."""
    return (code, code[:4] + "00", code[:2] + "0000", regions.COUNTRY)


class _Regions:
    """A set of regions (the ground they cover together) with, for each region, which of its members lie within it,
    so that keeping the members within some area of a new set costs the new set's size, not this one's."""

    def __init__(self, codes: Any) -> None:
        self.members: set[str] = set(codes)
        self.under: dict[str, set[str]] = {}
        for code in self.members:
            self._index(code)

    def _index(self, code: str) -> None:
        for area in set(_ancestors(code)):
            self.under.setdefault(area, set()).add(code)

    def covers(self, code: str) -> bool:
        """Whether `code` lies within a member."""
        members = self.members
        return any(area in members for area in _ancestors(code))

    def within(self, areas: Any) -> set[str]:
        """The members that lie within one of `areas`."""
        kept: set[str] = set()
        for area in areas:
            inside = self.under.get(area)
            if inside:
                kept |= inside & self.members
        return kept

    def intersect(self, areas: Any) -> None:
        """Keep the ground both this set and `areas` cover: members within an area, and areas within a member."""
        added = {area for area in areas if self.covers(area)}
        self.members = self.within(areas) | added
        for code in added:
            self._index(code)


class _Allowed:
    """What the top-level conditions on one field allow so far: a range, a set of values (`=`, `in`) still alive,
    values excluded, and the regions `within` allows. Each `add` costs the new condition's size (amortised)."""

    def __init__(self, first: TCompare) -> None:
        self.first = first
        self.lo: Any = None
        self.hi: Any = None
        self.excluded: set[Any] = set()
        self.areas: Union[_Regions, None] = None
        self.alive: Union[set[Any], None] = None  # values of every `=`/`in` so far that fit everything else
        self.alive_regions: Union[_Regions, None] = None  # the same, indexed by region, for `within`
        self.by_key: list[tuple[Any, Any]] = []  # the alive values that have a range key, in key order
        self.below = 0  # by_key[:below] and by_key[above:] have been dropped for the range
        self.above = 0

    def add(self, op: str, value: Any) -> None:
        if op in ("<", "<=", ">", ">="):
            key = _key(value)
            if op in (">", ">="):
                bound = key + (1 if op == ">" else 0)
                self.lo = bound if self.lo is None else max(self.lo, bound)
            else:
                bound = key - (1 if op == "<" else 0)
                self.hi = bound if self.hi is None else min(self.hi, bound)
            self._drop_out_of_range()
        elif op in ("=", "in"):
            values = {value} if op == "=" else set(value)
            if self.alive is None:
                self._first_values(values)
            else:
                self.alive &= values
        elif op in ("!=", "not_in"):
            values = {value} if op == "!=" else set(value)
            self.excluded |= values
            if self.alive is not None:
                self.alive -= values
        elif op == "within":
            if self.areas is None:
                self.areas = _Regions(value)
            else:
                self.areas.intersect(value)
            if self.alive is not None and self.alive_regions is not None:
                self.alive &= self.alive_regions.within(value)

    def _first_values(self, values: set[Any]) -> None:
        """The first `=`/`in`: its values, less those the conditions before it rule out (costs its own size)."""
        lo, hi, areas = self.lo, self.hi, self.areas
        alive = set()
        for value in values:
            if value in self.excluded:
                continue
            key = _key(value)
            if isinstance(key, int) and ((lo is not None and key < lo) or (hi is not None and key > hi)):
                continue
            if areas is not None and not (isinstance(value, str) and areas.covers(value)):
                continue
            alive.add(value)
        self.alive = alive
        if self.first.ftype == "region":
            self.alive_regions = _Regions(alive)
        self.by_key = sorted(((_key(v), v) for v in alive if isinstance(_key(v), int)), key=lambda kv: kv[0])
        self.below, self.above = 0, len(self.by_key)

    def _drop_out_of_range(self) -> None:
        # Each value is dropped at most once, from one end or the other of the sorted list: linear in all.
        if self.alive is None:
            return
        by_key = self.by_key
        while self.below < self.above and self.lo is not None and by_key[self.below][0] < self.lo:
            self.alive.discard(by_key[self.below][1])
            self.below += 1
        while self.above > self.below and self.hi is not None and by_key[self.above - 1][0] > self.hi:
            self.alive.discard(by_key[self.above - 1][1])
            self.above -= 1

    def impossible(self) -> bool:
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            return True
        if self.alive is not None:
            return not self.alive
        return self.areas is not None and not self.areas.members


def _literal_words(lit: Literal) -> str:
    return {
        "int": "a number",
        "count": "a number",
        "money": "an amount of money",
        "percent": "a percentage",
        "string": "a text in quotes",
        "time": "a time of day",
        "date": "a date",
        "datetime": "a date and time",
        "name": "a bare word (text must be in quotes)",
    }.get(lit.kind, "a value")


__all__ = ["CheckResult", "check", "summarize"]
