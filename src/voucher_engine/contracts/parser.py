"""Text to syntax tree: lark (LALR, contextual lexer) over grammar.lark, then a conversion to syntax.py nodes.

`parse(source)` never raises for any input text: size and shape limits, lexical and grammatical errors and
undecodable literals (¥1.234, 2025-02-30) all come back as Diagnostics with the line and column to fix.
"""

from __future__ import annotations

import datetime as dt
import re
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Union

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import limits
from .diagnostics import Diagnostic
from .syntax import (
    And,
    Attested,
    Block,
    Budget,
    Campaign,
    Comparison,
    Condition,
    ContractSyntax,
    Count,
    DailyCap,
    Declare,
    Distribution,
    Field,
    FunderEntry,
    Funders,
    Literal,
    Not,
    Or,
    Rate,
    RiskBlock,
    RiskLine,
    Rule,
    Section,
    SetLiteral,
    Span,
    Spend,
    TimeZone,
    Validity,
    Voucher,
)

_GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
# Built once per process: constructing the LALR tables costs ~0.1 s, parsing one contract well under that.
_LARK = Lark(
    _GRAMMAR_PATH.read_text(encoding="utf-8"),
    parser="lalr",
    lexer="contextual",
    propagate_positions=True,
    maybe_placeholders=False,
)

# How the parser's terminal names read to a person, for "expected ..." messages.
_TERMINAL_WORDS = {
    "STRING": 'a text in double quotes, like "Shanghai dining vouchers"',
    "MONEY": "an amount of money, like ¥20 or ¥10,000",
    "PERCENT": "a percentage, like 20%",
    "DATETIME": "a date and time, like 2025-01-01 00:00",
    "DATE": "a date, like 2025-01-01",
    "TIME": "a time of day, like 09:00",
    "COUNT": "a whole number, like 500,000",
    "INT": "a number or a code, like 18 or 310000",
    "NAME": "a name, like age or merchant.mcc",
    "COMPARE": "a comparison such as >=, =, <",
    "LBRACE": "{",
    "RBRACE": "}",
    "LPAR": "(",
    "RPAR": ")",
    "COLON": ":",
    "SEMICOLON": ";",
    "COMMA": ",",
    "DOT": ".",
    "$END": "the end of the contract",
}

_SECTION_WORDS = (
    "campaign, budget, funders, voucher, quantity, limit, daily cap, valid, timezone, distribution, holder, "
    "holder attested by, payment, items, risk or declare"
)

_OPS = {"==": "=", "≥": ">=", "≤": "<=", "≠": "!="}


def parse(source: str) -> tuple[Union[ContractSyntax, None], list[Diagnostic]]:
    """Parse contract text. Returns the tree (None when it could not be built) and the diagnostics found."""
    if not isinstance(source, str):
        return None, [Diagnostic(1, 1, "a contract must be text")]
    size = len(source.encode("utf-8", errors="replace"))
    if size > limits.MAX_SOURCE_BYTES:
        return None, [
            Diagnostic(
                1, 1, f"the contract is {size:,} bytes long; the limit is {limits.MAX_SOURCE_BYTES:,} bytes (64 KiB)"
            )
        ]
    lines = source.count("\n") + 1
    if lines > limits.MAX_LINES:
        return None, [Diagnostic(1, 1, f"the contract has {lines:,} lines; the limit is {limits.MAX_LINES:,}")]
    if not source.strip():
        return None, [Diagnostic(1, 1, "the contract is empty")]
    too_much = _over_limits(source)
    if too_much is not None:
        return None, [too_much]
    try:
        tree = _LARK.parse(source)
    except UnexpectedInput as exc:
        return None, [_syntax_error(exc, source)]
    except RecursionError:  # pragma: no cover - LALR is iterative; kept so no input can escape as a crash
        return None, [Diagnostic(1, 1, "the contract is nested too deeply to read")]
    deep = _too_deep(tree)
    if deep is not None:
        return None, [deep]
    builder = _Builder(source)
    sections = tuple(s for s in (builder.section(child) for child in tree.children) if s is not None)
    return ContractSyntax(sections, source), builder.diagnostics


# The limits counted before the parser runs, by regular expressions (C speed, linear in the text): the parser costs
# tens of microseconds per token, so it must never be handed more tokens than a contract within the limits has.
# Texts in quotes and comments are blanked first: what they contain is neither words nor conditions.
_QUOTED_OR_COMMENT = re.compile(r'"[^"\n]*"|#[^\n]*')
# Roughly the parser's tokens: names, numbers (digits with their decimal point, colons, dashes), single symbols.
# Commas always count, so `¥10,000` is three and `500,000` two: the count errs on the high side, and only there.
_LEXEME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9.:%％-]*|[^\sA-Za-z0-9_]")
# One per elementary comparison: a field name followed by its operator (`merchant.mcc not in`, `age >=`).
_COMPARISON = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*[ \t\r\n]*"
    r"(?:>=|<=|!=|==|=|>|<|≥|≤|≠|not[ \t\r\n]+in\b|not[ \t\r\n]+within\b|in\b|within\b|like\b|has\b|is\b)"
)


def _over_limits(source: str) -> Union[Diagnostic, None]:
    """The first limit the text is over that can be counted without parsing it: conditions, then tokens."""
    bare = _QUOTED_OR_COMMENT.sub(_blank, source)
    conditions = sum(1 for _ in _COMPARISON.finditer(bare))
    if conditions > limits.MAX_CONDITIONS:
        return Diagnostic(1, 1, f"the contract has {conditions:,} conditions; the limit is {limits.MAX_CONDITIONS}")
    tokens = len(_LEXEME.findall(bare))
    if tokens > limits.MAX_TOKENS:
        return Diagnostic(
            1,
            1,
            f"the contract has about {tokens:,} words, numbers and symbols; the limit is {limits.MAX_TOKENS:,}: "
            "write shorter conditions or smaller sets",
        )
    return None


def _blank(match: re.Match) -> str:
    # A text in quotes stays one token (one name, spaced so that it never joins its neighbours); a comment is nothing.
    return " S " if match.group().startswith('"') else ""


def _syntax_error(exc: UnexpectedInput, source: str) -> Diagnostic:
    """Turn lark's exception into one sentence a policy officer can act on."""
    line = max(1, getattr(exc, "line", 1) or 1)
    column = max(1, getattr(exc, "column", 1) or 1)
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        ch = source[pos] if pos is not None and 0 <= pos < len(source) else "?"
        if ch == '"':
            return Diagnostic(line, column, 'this text in quotes is not closed: add the closing " on the same line')
        return Diagnostic(line, column, f"I cannot read the character {ch!r} here{_expected(exc.allowed)}")
    if isinstance(exc, UnexpectedEOF):
        last = source.rstrip()
        line = last.count("\n") + 1
        column = len(last) - (last.rfind("\n") + 1) + 1
        return Diagnostic(line, column, f"the contract ends too early{_expected(exc.expected)}")
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            last = source.rstrip()
            line = last.count("\n") + 1
            column = len(last) - (last.rfind("\n") + 1) + 1
            return Diagnostic(line, column, f"the contract ends too early{_expected(exc.expected)}")
        shown = str(token)
        if len(shown) > 30:
            shown = shown[:27] + "..."
        expected = set(exc.expected)
        if expected and expected <= _SECTION_START_TERMINALS | {"SEMICOLON", "$END"}:
            return Diagnostic(
                line, column, f"I did not expect `{shown}` here: a new section starts with {_SECTION_WORDS}"
            )
        return Diagnostic(line, column, f"I did not expect `{shown}` here{_expected(expected)}")
    return Diagnostic(line, column, "the contract cannot be read here")  # pragma: no cover


_SECTION_START_TERMINALS = {
    "CAMPAIGN",
    "BUDGET",
    "FUNDERS",
    "VOUCHER",
    "QUANTITY",
    "LIMIT",
    "DAILY",
    "VALID",
    "TIMEZONE",
    "DISTRIBUTION",
    "HOLDER",
    "PAYMENT",
    "ITEMS",
    "DECLARE",
    "RISK",
}


def _expected(names: Iterable[str]) -> str:
    words = []
    for name in sorted(set(names)):
        if name in _TERMINAL_WORDS:
            word = _TERMINAL_WORDS[name]
        else:
            pattern = _LARK.get_terminal(name).pattern if name in _TERMINALS else None
            word = f"`{pattern.value}`" if pattern is not None and pattern.type == "str" else name.lower()
        if word not in words:
            words.append(word)
    if not words:
        return ""
    if len(words) > 8:
        return "; expected one of: " + ", ".join(words[:8]) + ", ..."
    return "; expected " + (words[0] if len(words) == 1 else "one of: " + ", ".join(words))


_TERMINALS = {t.name for t in _LARK.terminals}


def _too_deep(tree: Tree) -> Union[Diagnostic, None]:
    """Refuse trees deeper than the limit before anything walks them recursively. Iterative on purpose."""
    # Sections and the wrappers around a condition add a fixed number of levels; only conditions nest freely.
    allowed = limits.MAX_NESTING_DEPTH + 8
    stack: list[tuple[Tree, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > allowed:
            meta = node.meta
            line = getattr(meta, "line", 1)
            column = getattr(meta, "column", 1)
            return Diagnostic(
                line,
                column,
                f"this condition is nested too deeply (more than {limits.MAX_NESTING_DEPTH} levels of brackets "
                "or `not`); write it as several simpler conditions",
            )
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))
    return None


def _span_of(node: Union[Tree, Token]) -> Span:
    if isinstance(node, Token):
        return Span(node.line or 1, node.column or 1, node.start_pos or 0, node.end_pos or 0)
    meta = node.meta
    if getattr(meta, "empty", True):
        return Span(1, 1, 0, 0)
    return Span(meta.line, meta.column, meta.start_pos, meta.end_pos)


# Numbers past these are codes or mistakes, never counts or shares: refused before int() or Fraction() sees them
# (Python refuses int() of more than 4,300 digits with a ValueError, which must never escape as a 500).
_MAX_NUMBER_DIGITS = 18
_MAX_PERCENT_CHARS = 12

_MONEY_RE = re.compile(r"(?:CNY[ \t]*|[¥￥])([0-9,]+)(?:\.([0-9]+))?")


class _Builder:
    """Converts the lark tree into syntax.py nodes, decoding literals and collecting diagnostics."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def error(self, span: Span, message: str) -> None:
        self.diagnostics.append(Diagnostic(span.line, span.column, message))

    def text(self, span: Span) -> str:
        return self.source[span.start : span.end]

    # ---- sections ---------------------------------------------------------------------------------------

    def section(self, node: Union[Tree, Token]) -> Union[Section, None]:
        if not isinstance(node, Tree):
            return None  # a stray `;` between sections
        span = _span_of(node)
        kind = node.data
        ch = node.children
        if kind == "campaign":
            return Campaign(self.literal(ch[0]), self.code(ch[1]), span)
        if kind == "budget":
            return Budget(self.literal(ch[0]), span)
        if kind == "funders":
            entries = []
            for f in ch:
                if isinstance(f, Tree) and f.data == "funder":
                    entries.append(FunderEntry(self.code(f.children[0]), self.literal(f.children[1]), _span_of(f)))
            return Funders(tuple(entries), span)
        if kind == "quantity":
            return Count("quantity", self.literal(ch[0]), span)
        if kind == "limit":
            return Count("limit", self.literal(ch[0]), span)
        if kind == "daily_cap":
            return DailyCap(self.literal(ch[0]), span)
        if kind == "validity":
            return self.validity(node, span)
        if kind == "timezone":
            return TimeZone(self.literal(ch[0]), span)
        if kind == "distribution":
            return Distribution(str(ch[0].data), span)
        if kind == "attested":
            return Attested(self.literal(ch[0]), span)
        if kind == "voucher":
            return self.voucher(ch[0], span)
        if kind in ("holder_block", "payment_block", "items_block"):
            context = kind[: -len("_block")]
            rules: list[Rule] = []
            for c in ch:
                if isinstance(c, (Tree,)):
                    rules.extend(self.rules(self.condition(c)))
            return Block(context, tuple(rules), span)
        if kind == "declare":
            return Declare(self.field(ch[0]), str(ch[1].children[0]), span)
        if kind == "risk_block":
            return RiskBlock(tuple(self.risk_line(c) for c in ch if isinstance(c, Tree)), span)
        return None  # pragma: no cover - every grammar section is handled above

    def risk_line(self, node: Tree) -> RiskLine:
        span = _span_of(node)
        ch = node.children
        params = tuple(
            (self.literal(p.children[0]), self.literal(p.children[1])) for p in ch[1:-1] if isinstance(p, Tree)
        )
        return RiskLine(self.literal(ch[0]), params, self.literal(ch[-1]), self.text(span), span)

    def validity(self, node: Tree, span: Span) -> Validity:
        inner = node.children[0]
        china = any(isinstance(c, Tree) and c.data == "china_time" for c in node.children[1:])
        if inner.data == "valid_window":
            start = self.literal(inner.children[0].children[0])
            end = self.literal(inner.children[1].children[0])
            return Validity("window", span, start=start, end=end, china_time=china)
        if inner.data == "valid_year":
            return Validity("year", span, year=self.literal(inner.children[0]), china_time=china)
        amount = self.literal(inner.children[0])
        unit = str(inner.children[1].children[0])
        return Validity("relative", span, amount=amount, unit=unit, china_time=china)

    def voucher(self, node: Tree, span: Span) -> Voucher:
        text = self.text(span)
        kind = str(node.data)
        money = [self.literal(c) for c in node.children if isinstance(c, Token) and c.type == "MONEY"]
        percent = next((self.literal(c) for c in node.children if isinstance(c, Token) and c.type == "PERCENT"), None)
        spend = next((self.spend(c) for c in node.children if isinstance(c, Tree) and c.data == "spend"), None)
        cap = next(
            (self.literal(c.children[0]) for c in node.children if isinstance(c, Tree) and c.data == "cap"), None
        )
        if kind == "item_percent":
            rates = tuple(self.rate(c) for c in node.children if isinstance(c, Tree) and c.data.startswith("rate_"))
            return Voucher("item_percent", span, text, cap=cap, rates=rates)
        amount = money[0] if money else None
        return Voucher(kind, span, text, amount=amount, spend=spend, percent=percent, cap=cap)

    def spend(self, node: Tree) -> Spend:
        span = _span_of(node)
        return Spend(self.literal(node.children[0]), span, self.text(span))

    def rate(self, node: Tree) -> Rate:
        span = _span_of(node)
        percent = self.literal(node.children[0])
        condition = self.condition(node.children[1]) if node.data == "rate_when" else None
        return Rate(percent, condition, span, self.text(span))

    # ---- conditions -------------------------------------------------------------------------------------

    def rules(self, condition: Condition) -> list[Rule]:
        # A top-level `and` is a list of separate requirements; each fails (and is explained) on its own.
        if isinstance(condition, And):
            out: list[Rule] = []
            for part in condition.parts:
                out.extend(self.rules(part))
            return out
        return [Rule(condition, condition.text, condition.span)]

    def condition(self, node: Tree) -> Condition:
        span = _span_of(node)
        text = self.text(span)
        kind = node.data
        if kind == "or_":
            return Or(tuple(self.condition(c) for c in node.children), span, text)
        if kind == "and_":
            return And(tuple(self.condition(c) for c in node.children), span, text)
        if kind == "not_":
            return Not(self.condition(node.children[0]), span, text)
        field = self.field(node.children[0])
        rest = node.children[1:]
        if kind == "compare":
            op = str(rest[0])
            return Comparison(_OPS.get(op, op), field, self.value(rest[1]), span, text)
        if kind in ("in_", "not_in", "has_any", "has_all"):
            op = {"in_": "in", "not_in": "not_in", "has_any": "has_any", "has_all": "has_all"}[kind]
            return Comparison(op, field, self.value(rest[0]), span, text)
        if kind in ("within", "not_within"):
            return Comparison(kind, field, self.value(rest[0]), span, text)
        if kind in ("like", "has"):
            return Comparison(kind, field, self.literal(rest[0]), span, text)
        return Comparison(kind, field, None, span, text)  # present / missing

    def field(self, node: Tree) -> Field:
        span = _span_of(node)
        path = ".".join(str(t) for t in node.children)
        if len(path) > limits.MAX_NAME_CHARS:
            self.error(span, f"this name is longer than {limits.MAX_NAME_CHARS} characters")
        return Field(path, span)

    def value(self, node: Union[Tree, Token]) -> Union[Literal, SetLiteral]:
        if isinstance(node, Tree) and node.data == "set":
            span = _span_of(node)
            items = tuple(self.literal(v) for v in node.children)
            if len(items) > limits.MAX_SET_SIZE:
                self.error(span, f"this set has {len(items):,} elements; the limit is {limits.MAX_SET_SIZE:,}")
            return SetLiteral(items, span)
        return self.literal(node)

    def code(self, node: Tree) -> Literal:
        return self.literal(node.children[0])

    # ---- literals -----------------------------------------------------------------------------------------

    def literal(self, node: Union[Tree, Token]) -> Literal:
        if not isinstance(node, Token):  # the grammar puts a token wherever a literal is read
            raise TypeError(f"a literal is a token, not the tree {node.data!r}")
        token = node
        span = _span_of(token)
        raw = str(token)
        kind = token.type
        if kind == "MONEY":
            return Literal("money", raw, self.money(raw, span), span)
        if kind == "PERCENT":
            number = raw.rstrip("%％")
            if len(number) > _MAX_PERCENT_CHARS:
                # Fraction() of thousands of digits is slow, and past 4,300 digits Python refuses it outright.
                self.error(span, f"the percentage {raw[:20]}... is too long")
                return Literal("percent", raw, None, span)
            return Literal("percent", raw, Fraction(number) / 100, span)
        if kind == "COUNT":
            digits = raw.replace(",", "")
            if len(digits) > _MAX_NUMBER_DIGITS:
                self.error(span, f"the number {raw[:20]}... is too long")
                return Literal("count", raw, None, span)
            return Literal("count", raw, int(digits), span)
        if kind == "INT":
            # Long digit strings are codes or mistakes, never amounts; cap them before int() does big arithmetic.
            if len(raw) > _MAX_NUMBER_DIGITS:
                self.error(span, f"the number {raw[:20]}... is too long")
                return Literal("int", raw, None, span)
            return Literal("int", raw, int(raw), span)
        if kind == "STRING":
            value = raw[1:-1]
            if len(value) > limits.MAX_STRING_CHARS:
                self.error(span, f"this text is longer than {limits.MAX_STRING_CHARS} characters")
            return Literal("string", raw, value, span)
        if kind == "TIME":
            return Literal("time", raw, self.time(raw, span), span, "second" if raw.count(":") == 2 else "minute")
        if kind == "DATE":
            return Literal("date", raw, self.date(raw, span), span, "day")
        if kind == "DATETIME":
            date_part, time_part = re.split(r"T|[ \t]+", raw, maxsplit=1)
            day = self.date(date_part, span)
            seconds = self.time(time_part, span)
            at = None
            if day is not None and seconds is not None:
                at = dt.datetime.combine(day, dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60))
            precision = "second" if time_part.count(":") == 2 else "minute"
            return Literal("datetime", raw, at, span, precision)
        if kind == "NAME":
            return Literal("name", raw, raw, span)
        return Literal(kind.lower(), raw, raw, span)  # pragma: no cover

    def money(self, raw: str, span: Span) -> Union[int, None]:
        match = _MONEY_RE.fullmatch(raw)
        if match is None:  # pragma: no cover - the lexer only lets well-formed money through
            self.error(span, f"I cannot read {raw} as an amount of money")
            return None
        whole, cents = match.group(1), match.group(2) or ""
        if len(cents) > 2:
            self.error(span, f"{raw} has more than two decimal places; money is counted in fen (¥0.01)")
            return None
        yuan = int(whole.replace(",", "")) if len(whole) <= 18 else limits.MAX_MONEY_FEN
        fen = yuan * 100 + int(cents.ljust(2, "0") or "0")
        if fen > limits.MAX_MONEY_FEN:
            self.error(span, f"{raw} is more than the largest amount a contract may name (¥100,000,000,000)")
            return None
        return fen

    def time(self, raw: str, span: Span) -> Union[int, None]:
        parts = [int(p) for p in raw.split(":")]
        hour, minute = parts[0], parts[1]
        second = parts[2] if len(parts) > 2 else 0
        if hour > 23 or minute > 59 or second > 59:
            self.error(span, f"{raw} is not a time of day; times run from 00:00 to 23:59")
            return None
        return hour * 3600 + minute * 60 + second

    def date(self, raw: str, span: Span) -> Union[dt.date, None]:
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            self.error(span, f"{raw} is not a date in the calendar")
            return None
