"""Ahead-of-time compilation of a checked contract into plain Python functions.

For each contract this module writes Python source text and runs `compile()` on it once:

* `evaluate(p)` - the redemption hot path: a straight line of attribute reads and comparisons ending in one
  `and`-chain; when every condition holds it computes the subsidy and returns. Nothing is parsed, no tree is
  walked and no Failure is built on that path.
* `explain(p)` - called only when the hot path fails: the same conditions one by one, recording each failure
  with its source text, position, the actual value and what was expected.
* `check_holder(attributes)` - conditions on the holder at issue, over JSON attributes that may be missing or of
  the wrong type (such a condition fails; it never raises): three-valued (true / false / unknown), and only
  true passes.
* for vouchers per item, `item(it)` - the subsidy one order item earns, or its failures.

Constants (sets, patterns, rule texts) are passed to the generated code by name, never pasted into its text, so
no contract text can inject code. The reference interpreter (reference.py) must agree with these functions on
every contract and payment; the property tests check that.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any, Callable, Union

from . import limits
from .explain import actual_value, jsonable, yuan
from .model import ContractModel, TAnd, TCompare, TCondition, TNot, TOr, TRule
from .regions import level, prefix
from .runtime import Evaluation, Failure

_MISSING = object()
_tuple_new = tuple.__new__

# Where each payment field lives in the generated evaluate(): a local bound in the prelude, or the record.
_PAYMENT_ACCESS = {
    "merchant.mcc": "p.merchant_mcc",
    "merchant.region": "p.merchant_region",
    "merchant.tags": "p.merchant_tags",
    "order.amount": "o",
    "payment.weekday": "wd",
    "payment.time": "tod",
    "payment.date": "day",
}
_ITEM_RECORD = {"item.sku": "it.sku", "item.category": "it.category", "item.amount": "it.amount_fen"}
_GUARDS = {
    "int": "type({v}) is int",
    "money": "type({v}) is int",
    "text": "type({v}) is str",
    "mcc": "type({v}) is str",
    "region": "_is_code({v})",
    "date": "{v} is not None",
}


def _is_code(v: object) -> bool:
    return type(v) is str and len(v) == 6 and v.isascii() and v.isdigit()


def _as_date(v: object) -> Union[dt.date, None]:
    """A date attribute as JSON carries it ("2025-01-01"); anything else is unknown."""
    if type(v) is str and len(v) == 10:
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            return None
    return None


def _and3(*values: Union[bool, None]) -> Union[bool, None]:
    if False in values:
        return False
    return None if None in values else True


def _or3(*values: Union[bool, None]) -> Union[bool, None]:
    if True in values:
        return True
    return None if None in values else False


def _not3(value: Union[bool, None]) -> Union[bool, None]:
    return None if value is None else not value


def like_regex(pattern: str) -> "re.Pattern[str]":
    """`*` matches any run of characters; everything else matches itself."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class Compiled:
    """The generated functions of one contract and the Python source they were compiled from."""

    __slots__ = ("evaluate", "check_holder", "source")

    def __init__(self, evaluate: Callable, check_holder: Callable, source: str) -> None:
        self.evaluate = evaluate
        self.check_holder = check_holder
        self.source = source


class _Generator:
    def __init__(self, model: ContractModel) -> None:
        self.model = model
        self.names: dict[str, Any] = {
            "Failure": Failure,
            "_Ev": Evaluation,
            "_tnew": _tuple_new,
            "M": _MISSING,
            "_is_code": _is_code,
            "_as_date": _as_date,
            "_and3": _and3,
            "_or3": _or3,
            "_not3": _not3,
            "_actual": actual_value,
            "_jsonable": jsonable,
            "TZ": zoneinfo.ZoneInfo(model.timezone),
        }
        self.counter = 0

    def const(self, value: Any) -> str:
        if type(value) is int:
            return repr(value)
        name = f"K{self.counter}"
        self.counter += 1
        self.names[name] = value
        return name

    # ---- one comparison ---------------------------------------------------------------------------------

    def test(self, c: TCompare, x: str) -> str:
        """Python expression, true when the comparison holds for the value in expression `x` (already typed)."""
        op, v = c.op, c.value
        if op in ("=", "!=", "<", "<=", ">", ">="):
            return f"({x} {'==' if op == '=' else op} {self.const(v)})"
        if op == "in":
            return f"({x} in {self.const(v)})"
        if op == "not_in":
            return f"({x} not in {self.const(v)})"
        if op in ("within", "not_within"):
            inside = self.within(v, x)
            return inside if op == "within" else f"(not {inside})"
        if op == "like":
            if "*" not in v:
                return f"({x} == {self.const(v)})"
            if v.count("*") == 1 and v.endswith("*"):
                return f"{x}.startswith({self.const(v[:-1])})"
            return f"({self.const(like_regex(v))}.fullmatch({x}) is not None)"
        if op == "has":
            return f"({self.const(v)} in {x})"
        if op == "has_any":
            return f"(not {self.const(frozenset(v))}.isdisjoint({x}))"
        if op == "has_all":
            return f"({self.const(frozenset(v))} <= {x})"
        raise AssertionError(op)  # pragma: no cover - the checker admits no other operator

    def within(self, areas: tuple[str, ...], x: str) -> str:
        # A code is within an area when it starts with the area's 2-, 4- or 6-digit prefix (regions.py).
        if any(level(a) == 0 for a in areas):
            return "True"
        by_length: dict[int, set[str]] = {}
        for area in areas:
            pre = prefix(area)
            by_length.setdefault(len(pre), set()).add(pre)
        tests = []
        for length, prefixes in sorted(by_length.items()):
            head = x if length == 6 else f"{x}[:{length}]"
            if len(prefixes) == 1:
                tests.append(f"{head} == {self.const(next(iter(prefixes)))}")
            else:
                tests.append(f"{head} in {self.const(frozenset(prefixes))}")
        return "(" + " or ".join(tests) + ")"

    # ---- conditions over always-typed payment fields: two-valued --------------------------------------

    def payment_expr(self, c: TCondition) -> str:
        if isinstance(c, TCompare):
            return self.test(c, _PAYMENT_ACCESS[c.path])
        if isinstance(c, TNot):
            return f"(not {self.payment_expr(c.part)})"
        joiner = " and " if isinstance(c, TAnd) else " or "
        return "(" + joiner.join(self.payment_expr(p) for p in c.parts) + ")"

    # ---- conditions over JSON attributes: three-valued --------------------------------------------------

    def attr_expr(self, c: TCondition, local: Callable[[TCompare], str]) -> str:
        """True / False / None (unknown: the value is missing or of the wrong type)."""
        if isinstance(c, TCompare):
            v = local(c)
            if c.op == "present":
                return f"({v} is not M and {v} is not None)"
            if c.op == "missing":
                return f"({v} is M or {v} is None)"
            guard = _GUARDS[c.ftype].format(v=v)
            return f"({self.test(c, v)} if {guard} else None)"
        if isinstance(c, TNot):
            return f"_not3({self.attr_expr(c.part, local)})"
        fn = "_and3" if isinstance(c, TAnd) else "_or3"
        return f"{fn}(" + ", ".join(self.attr_expr(p, local) for p in c.parts) + ")"

    # ---- explanations -----------------------------------------------------------------------------------

    def failure(self, rule: Union[TRule, Any], actual: str, item: str = "None") -> str:
        """Python expression building the Failure of `rule`, given an expression for its actual value."""
        meta = self.const((rule.text, rule.span.line, rule.span.column))
        expected = rule.condition.expected if isinstance(rule.condition, TCompare) else rule.text
        return f"Failure({meta}[0], {meta}[1], {meta}[2], {actual}, {self.const(expected)}, {item})"

    def actual(self, c: TCondition, read: Callable[[TCompare], str]) -> str:
        """Python expression for the JSON-able actual value(s) a condition looked at."""
        leaves = list(_leaves(c))
        if isinstance(c, TCompare):
            return f"_actual({c.ftype!r}, {read(c)})"
        seen: dict[str, str] = {}
        for leaf in leaves:
            seen.setdefault(leaf.path, f"_actual({leaf.ftype!r}, {read(leaf)})")
        return "{" + ", ".join(f"{path!r}: {expr}" for path, expr in seen.items()) + "}"

    # ---- the functions ----------------------------------------------------------------------------------

    def holder_source(self) -> list[str]:
        rules = self.model.holder_rules
        lines = ["def check_holder(a):", "    if type(a) is not dict: a = {}", "    f = []"]
        locals_: dict[str, str] = {}
        for rule in rules:
            for leaf in _leaves(rule.condition):
                if leaf.path not in locals_:
                    name = f"v{len(locals_)}"
                    locals_[leaf.path] = name
                    lines.append(f"    {name} = a.get({self.const(leaf.path)}, M)")
                    if leaf.ftype == "date":
                        lines.append(f"    d{name} = _as_date({name})")

        def local(c: TCompare) -> str:
            name = locals_[c.path]
            return f"d{name}" if c.ftype == "date" and c.op not in ("present", "missing") else name

        def read(c: TCompare) -> str:
            name = locals_[c.path]
            return f"(None if {name} is M else {name})"

        for rule in rules:
            lines.append(f"    if {self.attr_expr(rule.condition, local)} is not True:")
            lines.append(f"        f.append({self.failure(rule, self.actual(rule.condition, read))})")
        lines.append("    return f")
        return lines

    def item_source(self) -> list[str]:
        """`item(it)`: the subsidy (int fen) one order item earns, or the list of its failures."""
        m = self.model
        lines = [
            "def item(it):",
            "    at = it.attributes",
            "    if type(at) is not dict: at = {}",
            "    f = None",
            "    sku = it.sku if type(it.sku) is str else _jsonable(it.sku)",
        ]
        locals_: dict[str, str] = {}
        conditions = [r.condition for r in m.item_rules] + [r.condition for r in m.rates if r.condition]
        for cond in conditions:
            for leaf in _leaves(cond):
                if leaf.path not in locals_:
                    name = f"v{len(locals_)}"
                    locals_[leaf.path] = name
                    source = _ITEM_RECORD.get(leaf.path) or f"at.get({self.const(leaf.path[len('item.') :])}, M)"
                    lines.append(f"    {name} = {source}")
                    if leaf.ftype == "date":
                        lines.append(f"    d{name} = _as_date({name})")

        def local(c: TCompare) -> str:
            name = locals_[c.path]
            return f"d{name}" if c.ftype == "date" and c.op not in ("present", "missing") else name

        def read(c: TCompare) -> str:
            name = locals_[c.path]
            return f"(None if {name} is M else {name})"

        for rule in m.item_rules:
            lines.append(f"    if {self.attr_expr(rule.condition, local)} is not True:")
            lines.append("        if f is None: f = []")
            lines.append(f"        f.append({self.failure(rule, self.actual(rule.condition, read), 'sku')})")
        # The first rate whose condition holds applies (`otherwise` always holds).
        lines.append("    rn = 0")
        for index, rate in enumerate(m.rates):
            keyword = "if" if index == 0 else "elif"
            test = "True" if rate.condition is None else f"{self.attr_expr(rate.condition, local)} is True"
            lines.append(f"    {keyword} {test}:")
            lines.append(f"        rn, rd = {rate.rate.numerator}, {rate.rate.denominator}")
        rate_rule = _RateRule(m)
        if any(r.condition is None for r in m.rates):
            rate_actual = "None"
        else:
            rate_actual = self.actual(_rates_condition(m), read)
        lines += [
            "    if rn == 0:",
            "        if f is None: f = []",
            f"        f.append({self.failure(rate_rule, rate_actual, 'sku')})",
            "    amount = it.amount_fen",
            "    if type(amount) is not int or amount < 0:",
            "        if f is None: f = []",
            f"        f.append(Failure({self.const(m.voucher_text)}, {m.voucher_span.line}, {m.voucher_span.column}, "
            "_jsonable(amount), 'an item amount in fen, 0 or more', sku))",
            "    if f is not None: return f",
            "    s = amount * rn // rd",
            f"    return s if s <= {m.cap_fen} else {m.cap_fen}",
        ]
        return lines

    def evaluate_source(self) -> list[str]:
        m = self.model
        used = {leaf.path for rule in m.payment_rules for leaf in _leaves(rule.condition)}
        prelude = ["    o = p.order_amount_fen"]
        if used & {"payment.weekday", "payment.time", "payment.date"}:
            # A naive datetime would be read in the server's local zone; refuse it (caught below).
            prelude += [
                "    t = p.at",
                "    if t.tzinfo is None: raise ValueError('naive datetime')",
                "    lt = t.astimezone(TZ)",
            ]
            if "payment.weekday" in used:
                prelude.append("    wd = lt.weekday()")
            if "payment.time" in used:
                prelude.append("    tod = lt.hour * 3600 + lt.minute * 60 + lt.second")
            if "payment.date" in used:
                prelude.append("    day = lt.date()")
        tests = [self.payment_expr(rule.condition) for rule in m.payment_rules]
        if m.spend_fen:
            tests.append(f"o >= {m.spend_fen}")
        pay = self.subsidy_lines(m)

        fast = ["def evaluate(p):", "  try:"] + ["  " + line for line in prelude]
        if m.kind == "item_percent":
            fast += [
                "      its = p.items",
                f"      if len(its) > {limits.MAX_PAYMENT_ITEMS}: return explain(p)",
                "      best = -1",
                "      for it in its:",
                "          r = item(it)",
                "          if type(r) is int and r > best: best = r",
            ]
            tests.append("best >= 0")
        condition = " and ".join(tests) if tests else "True"
        fast.append(f"      if {condition}:")
        fast += ["      " + line for line in pay]
        fast += [
            "      return explain(p)",
            "  except (TypeError, AttributeError, ValueError, OverflowError):",
            "      return _malformed(p)",
        ]

        slow = ["def explain(p):", "    f = []"] + prelude
        for rule in m.payment_rules:
            slow.append(f"    if not {self.payment_expr(rule.condition)}:")
            slow.append(
                f"        f.append({self.failure(rule, self.actual(rule.condition, lambda c: _PAYMENT_ACCESS[c.path]))})"
            )
        if m.spend_fen:
            if m.spend_span is None:  # the checker gives every spend the span it was written at
                raise ValueError("a spend without the place it was written")
            meta = self.const((m.spend_text, m.spend_span.line, m.spend_span.column))
            slow.append(f"    if not o >= {m.spend_fen}:")
            slow.append(
                f"        f.append(Failure({meta}[0], {meta}[1], {meta}[2], _actual('money', o), "
                f"{self.const('an order of at least ' + yuan(m.spend_fen))}))"
            )
        voucher = self.const((m.voucher_text, m.voucher_span.line, m.voucher_span.column))
        if m.kind == "item_percent":
            slow += [
                "    its = p.items",
                f"    if len(its) > {limits.MAX_PAYMENT_ITEMS}:",
                f"        f.append(Failure({voucher}[0], {voucher}[1], {voucher}[2], len(its), "
                f"'at most {limits.MAX_PAYMENT_ITEMS} order items'))",
                "        return _tnew(_Ev, (False, 0, o, tuple(f)))",
                "    best = -1",
                "    item_failures = []",
                "    for it in its:",
                "        r = item(it)",
                "        if type(r) is int:",
                "            if r > best: best = r",
                "        else:",
                "            item_failures.extend(r)",
                "    if best < 0:",
                "        if not its:",
                f"            f.append(Failure({voucher}[0], {voucher}[1], {voucher}[2], [], "
                "'an order item the voucher covers'))",
                "        f.extend(item_failures)",
            ]
        if m.kind == "balance":
            slow += [
                "    b = p.balance_fen",
                f"    if b is not None and not (type(b) is int and 0 < b <= {m.amount_fen}):",
                f"        f.append(Failure({voucher}[0], {voucher}[1], {voucher}[2], _actual('money', b), "
                f"{self.const(_balance_expected(m))}))",
            ]
        slow.append("    if f: return _tnew(_Ev, (False, 0, o, tuple(f)))")
        slow += pay
        return fast + slow

    def subsidy_lines(self, m: ContractModel) -> list[str]:
        """Statements that compute `s` (subsidy) from `o` (order) and return the Evaluation: 0 <= s <= max(o, 0)."""
        if m.kind == "threshold":
            # The checker proved amount <= spend and the condition o >= spend holds here, so s <= o.
            body = [f"    s = {m.amount_fen}"]
        elif m.kind == "fixed":
            body = [f"    s = {m.amount_fen} if o >= {m.amount_fen} else (o if o > 0 else 0)"]
        elif m.kind == "percent":
            rate = m.rate
            body = [
                f"    s = o * {rate.numerator} // {rate.denominator} if o > 0 else 0",
                f"    if s > {m.cap_fen}: s = {m.cap_fen}",
            ]
        elif m.kind == "balance":
            body = [
                "    b = p.balance_fen",
                f"    if b is None: b = {m.amount_fen}",
                f"    if not (type(b) is int and 0 < b <= {m.amount_fen}): return explain(p)",
                "    s = b if b <= o else (o if o > 0 else 0)",
            ]
        else:  # item_percent: `best` is the largest subsidy any one qualifying item earns
            body = ["    s = best if best <= o else (o if o > 0 else 0)"]
        return body + ["    return _tnew(_Ev, (True, s, o - s, ()))"]


def _balance_expected(m: ContractModel) -> str:
    # A balance above the initial one can only come from a bookkeeping bug upstream: refuse, do not pay it.
    return f"a remaining balance above ¥0.00 and at most {yuan(m.amount_fen)}"


class _RateRule:
    """The rate table as one explainable rule: its lines joined, positioned at the first rate."""

    def __init__(self, m: ContractModel) -> None:
        self.text = "; ".join(r.text for r in m.rates)
        self.span = m.rates[0].span
        self.condition = None


def _rates_condition(m: ContractModel) -> TCondition:
    first = m.rates[0]
    return TOr(tuple(r.condition for r in m.rates if r.condition is not None), first.text, first.span)


def _leaves(c: TCondition):
    if isinstance(c, TCompare):
        yield c
    elif isinstance(c, TNot):
        yield from _leaves(c.part)
    else:
        for part in c.parts:
            yield from _leaves(part)


def _malformed_payment(m: ContractModel) -> Callable:
    def malformed(p: Any) -> Evaluation:
        order = getattr(p, "order_amount_fen", 0)
        order = order if type(order) is int else 0
        failure = Failure(
            "the payment record", 0, 0, jsonable(repr(p)[:80]), "a payment with typed fields and a timezone-aware time"
        )
        return Evaluation(False, 0, order, (failure,))

    return malformed


def compile_model(model: ContractModel) -> Compiled:
    """Generate, compile and return the contract's functions. Called once per contract."""
    gen = _Generator(model)
    lines = gen.holder_source() + [""]
    if model.kind == "item_percent":
        lines += gen.item_source() + [""]
    lines += gen.evaluate_source()
    source = "\n".join(lines) + "\n"
    namespace = dict(gen.names)
    namespace["_malformed"] = _malformed_payment(model)
    code = compile(source, f"<contract {model.name[:40]!r}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated source; contract constants are passed by name
    return Compiled(namespace["evaluate"], namespace["check_holder"], source)
