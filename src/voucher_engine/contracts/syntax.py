"""The syntax tree of a contract, as the parser builds it from the text.

Plain immutable data: the checker reads it, the compiler turns it into Python source, and the reference
interpreter (reference.py) walks it. Every node keeps its position and its exact source text, because every
diagnostic and every explained failure quotes the contract back to the person who wrote it.

Literal values are already decoded here (money to integer fen, percentages to exact Fractions, times to seconds of
the day); a literal that could not be decoded carries `value=None` and the parser has reported why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Union


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node stands in the source: 1-based line and column of its start, and character offsets."""

    line: int
    column: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Literal:
    """A written value. `kind` is how it was written: int, count, money, percent, string, time, date, datetime,
    name (a bare word such as Saturday). `raw` is the text as written (regions keep their leading zeros)."""

    kind: str
    raw: str
    value: Union[int, Fraction, str, dt.date, dt.datetime, None]
    span: Span
    # For datetimes and times: the finest unit written ("minute" or "second"), so an inclusive end such as
    # `to 23:59` can cover the whole minute.
    precision: str = ""

    # The value as the type its kind gives it (None: it could not be read, and the parser has said why). The parser
    # makes each kind's value of one type; a value of another is a bug, and raises TypeError.

    def whole(self) -> Union[int, None]:
        """An int, count, money (in fen) or time (seconds since midnight) literal's value."""
        if self.value is None or type(self.value) is int:
            return self.value
        raise TypeError(f"the {self.kind} literal {self.raw!r} holds {type(self.value).__name__}, not int")

    def fraction(self) -> Union[Fraction, None]:
        """A percent literal's value (a fraction of one)."""
        if self.value is None or isinstance(self.value, Fraction):
            return self.value
        raise TypeError(f"the {self.kind} literal {self.raw!r} holds {type(self.value).__name__}, not Fraction")

    def text(self) -> Union[str, None]:
        """A string or name literal's value."""
        if self.value is None or isinstance(self.value, str):
            return self.value
        raise TypeError(f"the {self.kind} literal {self.raw!r} holds {type(self.value).__name__}, not str")


@dataclass(frozen=True, slots=True)
class SetLiteral:
    """`{a, b, c}` as written, duplicates included (the checker warns about them)."""

    items: tuple[Literal, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Field:
    """A dotted name such as `age`, `merchant.mcc` or `item.energy_grade`."""

    path: str
    span: Span


@dataclass(frozen=True, slots=True)
class Comparison:
    """One elementary condition: field, operator, value. `op` is one of = != < <= > >= in not_in within
    not_within like has has_any has_all present missing (operators spelled `==`, `≥`... are normalised)."""

    op: str
    field: Field
    value: Union[Literal, SetLiteral, None]
    span: Span
    text: str


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple["Condition", ...]
    span: Span
    text: str


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple["Condition", ...]
    span: Span
    text: str


@dataclass(frozen=True, slots=True)
class Not:
    part: "Condition"
    span: Span
    text: str


Condition = Union[Comparison, And, Or, Not]


@dataclass(frozen=True, slots=True)
class Rule:
    """A condition as a unit of explanation: each top-level condition of a block, with a top-level `and` split
    into its parts, so a failure names the smallest piece of text that failed."""

    condition: Condition
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Rate:
    """One line of a per-item rate table: `20% when item.energy_grade = 1` (condition None for `otherwise`)."""

    percent: Literal
    condition: Union[Condition, None]
    span: Span
    text: str


# ---- sections -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Campaign:
    name: Literal
    issuer: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Budget:
    amount: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class FunderEntry:
    region: Literal
    share: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Funders:
    entries: tuple[FunderEntry, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Spend:
    """`spend ¥100` (a minimum order amount), kept as its own node so a failure can quote it."""

    amount: Literal
    span: Span
    text: str


@dataclass(frozen=True, slots=True)
class Voucher:
    """What one voucher pays. kind: fixed | threshold | percent | item_percent | balance."""

    kind: str
    span: Span
    text: str
    amount: Union[Literal, None] = None  # fixed: face value; threshold: amount off; balance: initial balance
    spend: Union[Spend, None] = None
    percent: Union[Literal, None] = None
    cap: Union[Literal, None] = None
    rates: tuple[Rate, ...] = ()


@dataclass(frozen=True, slots=True)
class Count:
    """`quantity N` or `limit N per holder`; `what` says which."""

    what: str
    count: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class DailyCap:
    amount: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Validity:
    """kind: window (`from A to B`), year (`during 2025`) or relative (`for 7 days from issue`)."""

    kind: str
    span: Span
    start: Union[Literal, None] = None
    end: Union[Literal, None] = None
    year: Union[Literal, None] = None
    amount: Union[Literal, None] = None
    unit: str = ""
    china_time: bool = False


@dataclass(frozen=True, slots=True)
class TimeZone:
    name: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Distribution:
    kind: str  # targeted | lottery | first_come
    span: Span


@dataclass(frozen=True, slots=True)
class Attested:
    """`holder attested by "<attester name>"`: holders must come with an attestation from that attester."""

    name: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Block:
    """`holder { ... }`, `payment { ... }` or `items { ... }`; context names which."""

    context: str
    rules: tuple[Rule, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Declare:
    """`declare holder.x as integer`: an attribute the built-in vocabulary does not know."""

    field: Field
    type_name: str
    span: Span


@dataclass(frozen=True, slots=True)
class RiskLine:
    """One line of `risk { ... }`: `odd_hour from 00:00 to 06:00: hold` (contracts/risk.py checks it)."""

    signal: Literal
    params: tuple[tuple[Literal, Literal], ...]
    outcome: Literal
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class RiskBlock:
    """`risk { ... }`: the contract's own risk rules, replacing the platform's defaults of the signals it names."""

    lines: tuple[RiskLine, ...]
    span: Span


Section = Union[
    Campaign,
    Budget,
    Funders,
    Voucher,
    Count,
    DailyCap,
    Validity,
    TimeZone,
    Distribution,
    Attested,
    Block,
    Declare,
    RiskBlock,
]


@dataclass(frozen=True, slots=True)
class ContractSyntax:
    """The whole parsed contract: its sections in source order and the source itself."""

    sections: tuple[Section, ...]
    source: str
