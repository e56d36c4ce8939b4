"""Property tests: the compiled evaluator agrees with the reference interpreter; no text crashes the checker."""

from __future__ import annotations

import datetime as dt

from contract_helpers import POLICY_FILES, pay, source
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from voucher_engine.contracts import ContractInvalid, Item, Payment, check_contract, compile_contract, reference

REGIONS = ["000000", "310000", "310100", "310104", "310101", "320000", "320500", "320505", "330127", "330100"]
MCCS = ["5812", "5813", "5411", "5499", "7832", "1520"]
TAGS = ["a", "b", "ecny-signed", "farm-produce"]
CATEGORIES = ["appliance.tv", "appliance.refrigerator", "furniture.sofa", "appliance", "appliance.x.y"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OPS = ["=", "!=", "<", "<=", ">", ">="]

fen = st.integers(1, 300_000)


def money(value: int) -> str:
    return f"¥{value // 100:,}.{value % 100:02d}" if value % 100 else f"¥{value // 100:,}"


def quoted_set(values: list[str]) -> str:
    return "{" + ", ".join(f'"{v}"' for v in values) + "}"


def regions_set(values: list[str]) -> str:
    return "{" + ", ".join(values) + "}"


some_regions = st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True)
some_mccs = st.lists(st.sampled_from(MCCS), min_size=1, max_size=3, unique=True)
some_tags = st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True)
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30, 59]))
day_2025 = st.builds(lambda n: (dt.date(2025, 1, 1) + dt.timedelta(days=n)).isoformat(), st.integers(0, 364))

holder_leaf = st.one_of(
    st.builds(lambda op, n: f"age {op} {n}", st.sampled_from(OPS), st.integers(0, 100)),
    st.builds(lambda ns: "age in {" + ", ".join(map(str, ns)) + "}", st.lists(st.integers(15, 70), max_size=3)),
    st.builds(lambda op: f"age is {op}", st.sampled_from(["present", "missing"])),
    st.builds(lambda r: f"residence_region within {r}", st.sampled_from(REGIONS)),
    st.builds(lambda rs: f"residence_region not within {regions_set(rs)}", some_regions),
    st.builds(lambda r: f"residence_region = {r}", st.sampled_from(REGIONS)),
    st.builds(lambda op, y: f"graduate_year {op} {y}", st.sampled_from(OPS), st.integers(2020, 2026)),
    st.builds(lambda op, d: f"birth_date {op} {d}", st.sampled_from(OPS), day_2025),
)
payment_leaf = st.one_of(
    st.builds(lambda ms: f"merchant.mcc in {quoted_set(ms)}", some_mccs),
    st.builds(lambda ms: f"merchant.mcc not in {quoted_set(ms)}", some_mccs),
    st.builds(lambda m: f'merchant.mcc = "{m}"', st.sampled_from(MCCS)),
    st.builds(lambda p: f'merchant.mcc like "{p}"', st.sampled_from(["58*", "5*1*", "*9", "5812", "*"])),
    st.builds(lambda rs: f"merchant.region within {regions_set(rs)}", some_regions),
    st.builds(lambda r: f"merchant.region_code not within {r}", st.sampled_from(REGIONS)),
    st.builds(lambda rs: f"merchant.region in {regions_set(rs)}", some_regions),
    st.builds(lambda t: f'merchant.tags has "{t}"', st.sampled_from(TAGS)),
    st.builds(lambda ts: f"merchant.tags has any of {quoted_set(ts)}", some_tags),
    st.builds(lambda ts: f"merchant.tags has all of {quoted_set(ts)}", some_tags),
    st.builds(lambda op, v: f"order.amount {op} {money(v)}", st.sampled_from(["<", "<=", "!=", ">", ">="]), fen),
    st.builds(
        lambda ds: "payment.weekday in {" + ", ".join(ds) + "}",
        st.lists(st.sampled_from(DAYS), min_size=1, max_size=4, unique=True),
    ),
    st.builds(lambda d: f"payment.weekday != {d}", st.sampled_from(DAYS)),
    st.builds(lambda op, t: f"payment.time {op} {t}", st.sampled_from(OPS), hhmm),
    st.builds(lambda op, d: f"payment.date {op} {d}", st.sampled_from(OPS), day_2025),
)
item_leaf = st.one_of(
    st.builds(lambda p: f'item.category like "{p}"', st.sampled_from(["appliance.*", "*.tv", "appliance", "*"])),
    st.builds(lambda c: f'item.category = "{c}"', st.sampled_from(CATEGORIES)),
    st.builds(lambda op, n: f"item.energy_grade {op} {n}", st.sampled_from(OPS), st.integers(0, 4)),
    st.builds(lambda op: f"item.trade_in_certificate is {op}", st.sampled_from(["present", "missing"])),
    st.builds(lambda op, v: f"item.amount {op} {money(v)}", st.sampled_from(OPS), fen),
    st.builds(
        lambda b: f"item.brand in {quoted_set(b)}",
        st.lists(st.sampled_from(["haier", "gree"]), min_size=1, unique=True),
    ),
)


def compound(leaf: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda x: f"not ({x})", inner),
            st.builds(lambda xs: "(" + " or ".join(xs) + ")", st.lists(inner, min_size=2, max_size=3)),
            st.builds(lambda xs: "(" + " and ".join(xs) + ")", st.lists(inner, min_size=2, max_size=3)),
        ),
        max_leaves=5,
    )


def block(name: str, leaf: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda conds, sep: f"{name} {{\n    " + sep.join(conds) + "\n}\n" if conds else "",
        st.lists(compound(leaf), max_size=4),
        st.sampled_from(["\n    ", "; ", " and "]),
    )


@st.composite
def voucher_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["fixed", "threshold", "percent", "item_percent", "balance"]))
    if kind == "fixed":
        amount = draw(fen)
        spend = draw(st.one_of(st.none(), st.integers(amount, 400_000)))
        return f"voucher fixed {money(amount)} off" + (f", spend {money(spend)}" if spend else "")
    if kind == "threshold":
        off = draw(fen)
        return f"voucher threshold: spend {money(draw(st.integers(off, 400_000)))}, get {money(off)} off"
    if kind == "percent":
        rate = draw(st.sampled_from(["1%", "12.5%", "20%", "33.33%", "100%"]))
        spend = draw(st.one_of(st.none(), fen))
        return f"voucher percent: {rate} off, up to {money(draw(fen))}" + (f", spend {money(spend)}" if spend else "")
    if kind == "item_percent":
        rates = draw(
            st.lists(
                st.builds(
                    lambda r, c: f"{r} when {c}", st.sampled_from(["10%", "15%", "20%", "7.5%"]), compound(item_leaf)
                ),
                min_size=1,
                max_size=3,
            )
        )
        if draw(st.booleans()):
            rates.append("5% otherwise")
        return f"voucher per item: up to {money(draw(fen))} {{\n    " + "\n    ".join(rates) + "\n}"
    return f"voucher balance: {money(draw(fen))}"


@st.composite
def contracts(draw: st.DrawFn) -> str:
    voucher = draw(voucher_line())
    items = draw(block("items", item_leaf)) if "per item" in voucher else ""
    validity = draw(
        st.sampled_from(
            [
                "valid during 2025",
                "valid for 7 days from issue",
                "valid from 2025-01-01 00:00 to 2025-01-31 23:59 China time",
            ]
        )
    )
    tz = draw(st.sampled_from(["", 'timezone "Asia/Shanghai"', 'timezone "Europe/London"']))
    return "\n".join(
        [
            'campaign "generated" issuer 310000',
            "declare holder.birth_date as date",
            "declare item.brand as text",
            "budget ¥100,000,000,000",
            "quantity 1,000",
            "funders { 000000: 60%, 310000: 40% }",
            voucher,
            validity if not (tz and "China" in validity) else "valid during 2025",
            tz,
            draw(block("holder", holder_leaf)),
            draw(block("payment", payment_leaf)),
            items,
        ]
    )


attribute_value = st.one_of(
    st.integers(-5, 120),
    st.sampled_from(REGIONS),
    st.none(),
    st.booleans(),
    st.just("18"),
    st.just(18.0),
    st.just("2025-03-01"),
    st.just("not a date"),
)
holders = st.dictionaries(
    st.sampled_from(["age", "residence_region", "graduate_year", "birth_date", "other"]), attribute_value, max_size=5
)
items = st.builds(
    Item,
    sku=st.sampled_from(["a", "b", "c"]),
    category=st.sampled_from(CATEGORIES),
    amount_fen=st.one_of(st.integers(0, 3_000_000), st.just(-1)),
    attributes=st.dictionaries(
        st.sampled_from(["energy_grade", "trade_in_certificate", "brand"]),
        st.one_of(st.integers(0, 4), st.sampled_from(["haier", "gree", "cert"]), st.none()),
        max_size=3,
    ),
)
payments = st.builds(
    Payment,
    merchant_mcc=st.sampled_from(MCCS),
    merchant_region=st.sampled_from(REGIONS + ["440305"]),
    merchant_tags=st.frozensets(st.sampled_from(TAGS), max_size=3),
    at=st.builds(
        lambda t, off: t.replace(tzinfo=dt.timezone(dt.timedelta(hours=off))),
        st.datetimes(dt.datetime(2024, 12, 30), dt.datetime(2026, 1, 2)),
        st.sampled_from([8, 0, -5, 14]),
    ),
    order_amount_fen=st.one_of(st.integers(0, 500_000), st.sampled_from([0, 1, 9999, 10000, 10001])),
    items=st.lists(items, max_size=4).map(tuple),
    balance_fen=st.one_of(st.none(), st.integers(0, 40_000)),
)


@settings(
    max_examples=200,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(contracts(), st.lists(payments, min_size=1, max_size=8), st.lists(holders, min_size=1, max_size=4))
def test_compiled_agrees_with_reference(text: str, ps: list[Payment], hs: list[dict]) -> None:
    result = check_contract(text)
    assume(result.ok)
    contract = compile_contract(text)
    model = result.model
    for p in ps:
        got = contract.evaluate(p)
        assert got == reference.evaluate(model, p), (text, p, contract.python_source)
        assert 0 <= got.subsidy_fen <= max(p.order_amount_fen, 0)
        assert got.subsidy_fen <= contract.face_value_fen
        assert got.payable_fen == p.order_amount_fen - got.subsidy_fen
        assert got.ok == (not got.failures)
    for h in hs:
        assert contract.check_holder(h) == reference.check_holder(model, h), (text, h)


# ---- robustness: any text gives a clean answer ---------------------------------------------------------

TOKENS = [
    "campaign",
    "budget",
    "funders",
    "voucher",
    "holder",
    "payment",
    "items",
    "valid",
    "from",
    "to",
    "during",
    "for",
    "days",
    "issue",
    "quantity",
    "limit",
    "per",
    "daily",
    "cap",
    "threshold",
    "percent",
    "fixed",
    "balance",
    "item",
    "spend",
    "get",
    "off",
    "up",
    "when",
    "otherwise",
    "and",
    "or",
    "not",
    "in",
    "within",
    "like",
    "has",
    "any",
    "all",
    "of",
    "is",
    "present",
    "missing",
    "declare",
    "as",
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    ":",
    ".",
    "=",
    ">=",
    "<",
    "¥",
    "¥1,000",
    "¥0",
    "¥1.234",
    "CNY 5",
    "100%",
    "0%",
    "101%",
    "2025",
    "2025-02-30",
    "2025-01-01 00:00",
    "24:00",
    "09:00",
    "310000",
    "999999",
    '"5812"',
    '"',
    "#",
    "\n",
    " ",
    "age",
    "merchant.mcc",
    "order.amount",
    "Saturday",
    "Funday",
    "x" * 70,
    "9" * 30,
    "(" * 40,
    "not " * 40,
]


@settings(max_examples=300, database=None, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup_never_crashes(text: str) -> None:
    _clean(text)


@settings(max_examples=150, database=None, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes(text: str) -> None:
    _clean(text)


@settings(max_examples=300, database=None, deadline=None)
@given(
    st.sampled_from(POLICY_FILES),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 40), st.sampled_from(TOKENS + [""])), min_size=1, max_size=4),
)
def test_mutated_policies_never_crash(name: str, edits: list[tuple[float, int, str]]) -> None:
    text = source(name)
    for where, length, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + length :]
    _clean(text)


def _clean(text: str) -> None:
    result = check_contract(text)
    assert result.ok == (not result.errors)
    for d in result.errors + result.warnings:
        assert d.line >= 1 and d.column >= 1 and d.message
    try:
        contract = compile_contract(text)
    except ContractInvalid as exc:
        assert exc.errors and not result.ok
        return
    assert result.ok
    contract.evaluate(pay(12_000))
    contract.check_holder({"age": 30})
    contract.summary()


def test_limits_are_clean_errors() -> None:
    base = source("shanghai-dining-2025")
    huge = base + "\n#" + "x" * (65 * 1024)
    assert "64 KiB" in check_contract(huge).errors[0].message
    deep = base.replace("age >= 18", "not " * 200 + "age >= 18")
    assert "nested too deeply" in check_contract(deep).errors[0].message
    wide = base.replace('{"5812", "5813", "5814"}', "{" + ", ".join(f'"{5000 + i}"' for i in range(600)) + "}")
    assert "the limit is 500" in check_contract(wide).errors[0].message
    many = base.replace("age >= 18", "\n".join(f"age != {i}" for i in range(250)))
    assert "conditions; the limit is 200" in check_contract(many).errors[0].message
    long_lines = base + "\n" * 3000
    assert "lines; the limit" in check_contract(long_lines).errors[0].message
    parens = base.replace("age >= 18", "(" * 200 + "age >= 18" + ")" * 200)
    assert check_contract(parens).ok  # brackets alone do not nest the tree
    many_parens = base.replace("age >= 18", "(" * 5000 + "age >= 18" + ")" * 5000)
    assert "words, numbers and symbols; the limit is" in check_contract(many_parens).errors[0].message
