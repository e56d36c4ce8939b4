"""The six reference policies of POLICIES.md, each table run through its compiled contract."""

from __future__ import annotations

import datetime as dt

import pytest
from contract_helpers import POLICY_FILES, cst, pay, policy, source

from voucher_engine.contracts import FixedWindow, Item, RelativeValidity, check_contract


@pytest.mark.parametrize("name", POLICY_FILES)
def test_every_policy_checks_without_errors(name: str) -> None:
    result = check_contract(source(name))
    assert result.ok, [str(e) for e in result.errors]
    assert result.summary["name"]


# ---- 1. Shanghai dining (满减) ---------------------------------------------------------------------------


def test_dining_terms() -> None:
    c = policy("shanghai-dining-2025")
    assert (c.name, c.issuer_region, c.timezone) == ("Shanghai dining vouchers 2025", "310000", "Asia/Shanghai")
    assert c.budget_fen == 1_000_000_000
    assert [(f.region_code, f.share_bp) for f in c.funders] == [("310000", 10000)]
    assert (c.kind, c.face_value_fen, c.quantity, c.per_holder_limit) == ("threshold", 2000, 500_000, 1)
    assert c.distribution == "targeted" and c.daily_cap_fen is None
    assert c.worst_case_fen == 1_000_000_000 and not c.needs_escrow_check and not c.needs_items


def test_dining_120_yuan_gets_20_off() -> None:
    ev = policy("shanghai-dining-2025").evaluate(pay(12000))
    assert ev.ok and ev.subsidy_fen == 2000 and ev.payable_fen == 10000 and ev.failures == ()


def test_dining_99_99_names_the_minimum_spend() -> None:
    ev = policy("shanghai-dining-2025").evaluate(pay(9999))
    assert not ev.ok and ev.subsidy_fen == 0
    [failure] = ev.failures
    assert "spend ¥100" in failure.rule
    assert failure.actual == "¥99.99" and "¥100.00" in failure.expected
    assert (failure.line, failure.column) == (9, 20)


def test_dining_wrong_category_names_the_category() -> None:
    ev = policy("shanghai-dining-2025").evaluate(pay(30000, mcc="5411"))
    [failure] = ev.failures
    assert failure.rule == 'merchant.mcc in {"5812", "5813", "5814"}'
    assert failure.actual == "5411" and failure.line == 22
    assert failure.to_dict() == {
        "rule": 'merchant.mcc in {"5812", "5813", "5814"}',
        "line": 22,
        "column": 5,
        "actual": "5411",
        "expected": 'one of {"5812", "5813", "5814"}',
    }


def test_dining_suzhou_merchant_names_the_region() -> None:
    ev = policy("shanghai-dining-2025").evaluate(pay(30000, region="320505"))
    [failure] = ev.failures
    assert failure.rule == "merchant.region within 310000"
    assert failure.actual == "320505" and failure.expected == "within 310000"


def test_dining_several_failures_are_all_named() -> None:
    ev = policy("shanghai-dining-2025").evaluate(pay(5000, mcc="5411", region="320505"))
    assert [f.line for f in ev.failures] == [22, 23, 9]


def test_dining_validity_excludes_february() -> None:
    v = policy("shanghai-dining-2025").validity
    assert isinstance(v, FixedWindow)
    assert v.valid_from == cst(2025, 1, 1, 0, 0)
    assert v.valid_until == cst(2025, 2, 1, 0, 0)  # "to 2025-01-31 23:59" covers that whole minute
    assert v.contains(cst(2025, 1, 31, 23, 59, 59))
    assert not v.contains(cst(2025, 2, 1, 10, 0))  # the table's VOUCHER_EXPIRED row
    assert not v.contains(cst(2024, 12, 31, 23, 59))
    start, end = policy("shanghai-dining-2025").window_for(cst(2025, 1, 10, 9, 0))
    assert (start, end) == (v.valid_from, v.valid_until)


def test_dining_holder() -> None:
    c = policy("shanghai-dining-2025")
    assert c.check_holder({"age": 30, "residence_region": "310104"}) == []
    [too_young] = c.check_holder({"age": 17, "residence_region": "310104"})
    assert too_young.rule == "age >= 18" and too_young.actual == 17 and too_young.expected == "at least 18"
    [elsewhere] = c.check_holder({"age": 30, "residence_region": "320505"})
    assert elsewhere.rule == "residence_region within 310000"
    # Missing and wrongly typed attributes are failures, never exceptions.
    assert len(c.check_holder({})) == 2
    assert len(c.check_holder({"age": "30", "residence_region": 310104})) == 2
    assert len(c.check_holder({"age": True, "residence_region": "31010"})) == 2
    assert len(c.check_holder(None)) == 2  # type: ignore[arg-type]
    assert c.check_holder({"age": 18.5, "residence_region": "310104"})[0].actual == "18.5"


# ---- 2. Appliance trade-in (以旧换新) -------------------------------------------------------------------


def appliance(category: str, grade: int | None, amount_fen: int, certificate: bool, sku: str = "sku-1") -> Item:
    attributes: dict = {}
    if grade is not None:
        attributes["energy_grade"] = grade
    if certificate:
        attributes["trade_in_certificate"] = "TI-2025-000123"
    return Item(sku, category, amount_fen, attributes)


def test_trade_in_terms() -> None:
    c = policy("appliance-trade-in-2025")
    assert [(f.region_code, f.share_bp) for f in c.funders] == [("000000", 9000), ("310000", 1000)]
    assert (c.kind, c.face_value_fen, c.quantity, c.per_holder_limit) == ("item_percent", 200_000, 100_000, 3)
    assert c.needs_items and c.needs_escrow_check
    assert c.validity == FixedWindow(cst(2025, 1, 1, 0, 0), cst(2026, 1, 1, 0, 0))


def test_trade_in_refrigerator_grade_1() -> None:
    item = appliance("appliance.refrigerator", 1, 500_000, True)
    ev = policy("appliance-trade-in-2025").evaluate(pay(500_000, mcc="5722", items=(item,)))
    assert ev.ok and ev.subsidy_fen == 100_000 and ev.payable_fen == 400_000


def test_trade_in_air_conditioner_grade_2_hits_the_cap() -> None:
    item = appliance("appliance.air_conditioner", 2, 2_000_000, True)
    ev = policy("appliance-trade-in-2025").evaluate(pay(2_000_000, mcc="5722", items=(item,)))
    assert ev.ok and ev.subsidy_fen == 200_000


def test_trade_in_grade_3_is_not_covered() -> None:
    item = appliance("appliance.tv", 3, 400_000, True)
    ev = policy("appliance-trade-in-2025").evaluate(pay(400_000, mcc="5722", items=(item,)))
    assert not ev.ok and ev.subsidy_fen == 0
    [failure] = ev.failures
    assert "energy_grade" in failure.rule and failure.actual == {"item.energy_grade": 3}
    assert failure.item == "sku-1"


def test_trade_in_without_certificate_names_the_certificate() -> None:
    item = appliance("appliance.washer", 1, 300_000, False)
    ev = policy("appliance-trade-in-2025").evaluate(pay(300_000, mcc="5722", items=(item,)))
    assert not ev.ok
    [failure] = ev.failures
    assert "trade_in_certificate" in failure.rule and failure.actual is None and failure.expected == "present"
    assert failure.to_dict()["item"] == "sku-1"


def test_trade_in_picks_the_item_with_the_largest_subsidy() -> None:
    items = (
        appliance("appliance.tv", 2, 400_000, True, "tv"),  # 15% = 60,000
        appliance("furniture.sofa", 1, 900_000, True, "sofa"),  # not an appliance
        appliance("appliance.refrigerator", 1, 500_000, True, "fridge"),  # 20% = 100,000
    )
    ev = policy("appliance-trade-in-2025").evaluate(pay(1_800_000, mcc="5722", items=items))
    assert ev.ok and ev.subsidy_fen == 100_000


def test_trade_in_needs_items() -> None:
    ev = policy("appliance-trade-in-2025").evaluate(pay(500_000, mcc="5722"))
    assert not ev.ok and "voucher per item" in ev.failures[0].rule


def test_trade_in_rounds_down_and_never_exceeds_the_order() -> None:
    item = appliance("appliance.kettle", 2, 333, True)  # 15% of 333 fen = 49.95 -> 49
    assert policy("appliance-trade-in-2025").evaluate(pay(333, items=(item,))).subsidy_fen == 49
    item = appliance("appliance.refrigerator", 1, 500_000, True)  # item dearer than the order total
    ev = policy("appliance-trade-in-2025").evaluate(pay(50_000, items=(item,)))
    assert ev.subsidy_fen == 50_000 and ev.payable_fen == 0


def test_trade_in_bad_item_attributes_are_failures() -> None:
    weird = Item("x", "appliance.tv", 1000, {"energy_grade": "1", "trade_in_certificate": "c"})
    ev = policy("appliance-trade-in-2025").evaluate(pay(1000, items=(weird,)))
    assert not ev.ok and ev.failures[0].actual == {"item.energy_grade": "1"}
    broken = Item("y", "appliance.tv", 1000, None)  # type: ignore[arg-type]
    assert not policy("appliance-trade-in-2025").evaluate(pay(1000, items=(broken,))).ok


# ---- 3. Suzhou e-CNY red envelope (balance) -------------------------------------------------------------


def test_red_envelope_spent_over_two_payments() -> None:
    c = policy("suzhou-ecny-red-envelope")
    assert (c.kind, c.face_value_fen, c.quantity, c.distribution) == ("balance", 20_000, 10_000, "lottery")
    suzhou = dict(mcc="5411", region="320505", tags=("ecny-signed",))
    first = c.evaluate(pay(15_000, **suzhou))  # untouched envelope: balance_fen None means ¥200
    assert first.ok and (first.subsidy_fen, first.payable_fen) == (15_000, 0)
    balance = c.face_value_fen - first.subsidy_fen
    second = c.evaluate(pay(8_000, balance_fen=balance, **suzhou))
    assert second.ok and (second.subsidy_fen, second.payable_fen) == (5_000, 3_000)
    assert balance - second.subsidy_fen == 0
    # A full refund of the first payment puts 15000 back; the envelope pays again.
    again = c.evaluate(pay(8_000, balance_fen=15_000, **suzhou))
    assert again.ok and again.subsidy_fen == 8_000
    spent = c.evaluate(pay(8_000, balance_fen=0, **suzhou))
    assert not spent.ok and spent.failures[0].expected == "a remaining balance above ¥0.00 and at most ¥200.00"


def test_red_envelope_merchant_conditions() -> None:
    c = policy("suzhou-ecny-red-envelope")
    [untagged] = c.evaluate(pay(1_000, region="320505")).failures
    assert untagged.rule == 'merchant.tags has "ecny-signed"' and untagged.actual == []
    [outside] = c.evaluate(pay(1_000, region="310104", tags=("ecny-signed",))).failures
    assert outside.rule == "merchant.region within 320500"


def test_red_envelope_valid_for_seven_days_from_issue() -> None:
    c = policy("suzhou-ecny-red-envelope")
    assert c.validity == RelativeValidity(7 * 24 * 3600)
    issued = cst(2025, 5, 1, 10, 0)
    start, end = c.window_for(issued)
    assert start == issued and end == cst(2025, 5, 8, 10, 0)
    assert c.validity.contains(cst(2025, 5, 7, 23, 0), issued)
    assert not c.validity.contains(cst(2025, 5, 8, 12, 0), issued)  # day 8: VOUCHER_EXPIRED


# ---- 4. Elderly home adaptation (适老化改造) ------------------------------------------------------------


def test_elderly_terms_and_holders() -> None:
    c = policy("elderly-home-adaptation")
    assert [(f.region_code, f.share_bp) for f in c.funders] == [("310000", 5000), ("310104", 5000)]
    assert (c.kind, c.face_value_fen, c.quantity) == ("percent", 300_000, 2_000)
    assert c.validity == FixedWindow(cst(2025, 3, 1, 0, 0), cst(2026, 1, 1, 0, 0))
    assert c.check_holder({"age": 60, "residence_region": "310104"}) == []
    assert [f.rule for f in c.check_holder({"age": 59, "residence_region": "310101"})] == [
        "age >= 60",
        "residence_region within 310104",
    ]
    assert c.split_fen(100_001) == (("310000", 50_001), ("310104", 50_000))


@pytest.mark.parametrize(
    ("order_fen", "mcc", "tags", "subsidy_fen"),
    [
        (100_000, "1520", (), 30_000),  # 30% of ¥1,000
        (333_333, "5200", (), 99_999),  # rounds down to the fen
        (2_000_000, "5200", (), 300_000),  # capped at ¥3,000
        (500_000, "5999", ("aging-adaptation-certified",), 150_000),  # certified merchant of another category
    ],
)
def test_elderly_percentage(order_fen: int, mcc: str, tags: tuple[str, ...], subsidy_fen: int) -> None:
    ev = policy("elderly-home-adaptation").evaluate(pay(order_fen, mcc=mcc, tags=tags))
    assert ev.ok and ev.subsidy_fen == subsidy_fen and ev.payable_fen == order_fen - subsidy_fen


def test_elderly_refusals() -> None:
    c = policy("elderly-home-adaptation")
    [small] = c.evaluate(pay(99_999, mcc="1520")).failures
    assert small.rule == "spend at least ¥1,000"
    [other] = c.evaluate(pay(200_000, mcc="5812")).failures
    assert other.rule.startswith('merchant.mcc in {"1520", "5200"} or')
    assert other.actual == {"merchant.mcc": "5812", "merchant.tags": []}
    [outside] = c.evaluate(pay(200_000, mcc="1520", region="320505")).failures
    assert outside.rule == "merchant.region within 310000"


# ---- 5. Graduates, culture and sport, weekends ----------------------------------------------------------


def test_graduates() -> None:
    c = policy("graduate-culture-sports")
    assert (c.kind, c.face_value_fen, c.quantity) == ("threshold", 5_000, 60_000)  # budget / face value
    assert c.check_holder({"graduate_year": 2025}) == []
    assert c.check_holder({"graduate_year": 2024})[0].expected == "2025"
    saturday_morning = cst(2025, 6, 7, 9, 0)
    ev = c.evaluate(pay(20_000, mcc="7832", at=saturday_morning))
    assert ev.ok and ev.subsidy_fen == 5_000 and ev.payable_fen == 15_000


@pytest.mark.parametrize(
    ("at", "rule"),
    [
        (cst(2025, 6, 9, 12, 0), "payment.weekday in {Saturday, Sunday}"),  # a Monday
        (cst(2025, 6, 8, 8, 59, 59), "payment.time >= 09:00"),  # Sunday, too early
        (cst(2025, 6, 8, 22, 0), "payment.time < 22:00"),  # 22:00 is not included
        # 15:30 UTC on Saturday is 23:30 China time: too late, whatever the server's zone.
        (dt.datetime(2025, 6, 7, 15, 30, tzinfo=dt.timezone.utc), "payment.time < 22:00"),
        # 17:00 UTC on Sunday is Monday 01:00 in China: both the day and the hour fail.
        (dt.datetime(2025, 6, 8, 17, 0, tzinfo=dt.timezone.utc), "payment.weekday in {Saturday, Sunday}"),
    ],
)
def test_graduates_weekend_hours(at: dt.datetime, rule: str) -> None:
    ev = policy("graduate-culture-sports").evaluate(pay(30_000, mcc="7922", at=at))
    assert not ev.ok and ev.failures[0].rule == rule


def test_graduates_explain_values_read_in_china_time() -> None:
    ev = policy("graduate-culture-sports").evaluate(pay(30_000, mcc="7922", at=cst(2025, 6, 9, 21, 30)))
    assert ev.failures[0].actual == "Monday"


# ---- 6. County fair (新大集) -----------------------------------------------------------------------------


def test_county_fair() -> None:
    c = policy("county-fair-rural")
    assert (c.issuer_region, c.daily_cap_fen, c.distribution) == ("330000", 200_000, "first_come")
    assert (c.face_value_fen, c.quantity, c.timezone) == (1_000, 10_000, "Asia/Shanghai")
    ok = c.evaluate(pay(5_000, mcc="5499", region="330127", tags=("farm-produce",)))
    assert ok.ok and ok.subsidy_fen == 1_000 and ok.payable_fen == 4_000
    failures = c.evaluate(pay(5_000, mcc="5411", region="330100", tags=())).failures
    assert [f.rule for f in failures] == [
        'merchant.tags has "farm-produce"',
        "merchant.region within {330127, 330122, 330112}",
    ]
    assert failures[1].expected == "within one of {330112, 330122, 330127}"
