"""The checker: each kind of mistake is an error at the right place, in words a policy officer understands."""

from __future__ import annotations

import pytest
from contract_helpers import source

from voucher_engine.contracts import ContractInvalid, Diagnostic, check_contract, compile_contract

DINING = source("shanghai-dining-2025")


def errors(text: str) -> list[Diagnostic]:
    result = check_contract(text)
    assert not result.ok and result.summary == {}
    return result.errors


def one_error(text: str) -> Diagnostic:
    [error] = errors(text)
    return error


def warnings(text: str) -> list[str]:
    result = check_contract(text)
    assert result.ok, [str(e) for e in result.errors]
    return [w.message for w in result.warnings]


def test_wrong_type_merchant_mcc_greater_than_number() -> None:
    e = one_error(DINING.replace('merchant.mcc in {"5812", "5813", "5814"}', "merchant.mcc > 5"))
    assert (e.line, e.column) == (22, 5)
    assert "merchant category code" in e.message and "`>`" in e.message
    assert e.to_dict() == {"line": 22, "column": 5, "message": e.message}


def test_unknown_name_suggests_the_right_one() -> None:
    e = one_error(DINING.replace("age >= 18", "agee >= 18"))
    assert (e.line, e.column) == (17, 5)
    assert "no holder attribute called `agee`" in e.message and "did you mean `age`" in e.message


def test_names_in_the_wrong_section() -> None:
    assert "put it in the `payment` section" in one_error(DINING.replace("age >= 18", 'merchant.mcc = "5812"')).message
    assert (
        "put it in the `holder` section"
        in one_error(DINING.replace("merchant.region within 310000", "age >= 18")).message
    )
    assert "order item" in one_error(DINING.replace("age >= 18", "item.energy_grade = 1")).message


def test_shares_must_add_up_to_100_percent() -> None:
    e = one_error(DINING.replace("310000: 100%", "310000: 60%\n    310104: 30%"))
    assert (e.line, e.column) == (5, 1)
    assert e.message == "the funders' shares add up to 90%, they must add up to 100%"
    assert "named twice" in one_error(DINING.replace("310000: 100%", "310000: 50%, 310000: 50%")).message
    assert "finer than 0.01%" in errors(DINING.replace("310000: 100%", "310000: 99.995%, 310104: 0.005%"))[0].message


def test_shares_in_basis_points() -> None:
    c = compile_contract(DINING.replace("310000: 100%", "000000: 33.34%, 310000: 33.33%, 310104: 33.33%"))
    assert [f.share_bp for f in c.funders] == [3334, 3333, 3333]
    assert c.split_fen(100) == (("000000", 34), ("310000", 33), ("310104", 33))
    assert c.split_fen(1) == (("000000", 1), ("310000", 0), ("310104", 0))


def test_voucher_worth_more_than_the_order_it_needs() -> None:
    e = one_error(DINING.replace("spend ¥100, get ¥20 off", "spend ¥10, get ¥20 off"))
    assert e.line == 9 and "worth ¥20.00" in e.message and "¥10.00" in e.message
    fixed = DINING.replace("voucher threshold: spend ¥100, get ¥20 off", "voucher fixed ¥20").replace(
        "merchant.region within 310000", "merchant.region within 310000; order.amount >= ¥10"
    )
    assert "order.amount >= ¥10" in one_error(fixed).message


def test_quantity_times_subsidy_above_budget() -> None:
    e = one_error(DINING.replace("quantity 500,000", "quantity 500,001"))
    assert e.line == 10
    assert "¥10,000,020.00, more than the budget of ¥10,000,000.00" in e.message
    # Where only a cap bounds the subsidy the engine checks escrow at redemption: a warning, not an error.
    percent = DINING.replace("voucher threshold: spend ¥100, get ¥20 off", "voucher percent: 10% off, up to ¥50")
    assert any("more than the budget" in w for w in warnings(percent))
    assert compile_contract(percent).needs_escrow_check


def test_default_quantity_is_budget_over_face_value() -> None:
    c = compile_contract(DINING.replace("quantity 500,000", ""))
    assert c.quantity == 500_000
    tiny = DINING.replace("quantity 500,000", "").replace("budget ¥10,000,000", "budget ¥10")
    assert "cannot pay for even one voucher" in one_error(tiny).message


def test_missing_and_duplicated_sections() -> None:
    e = one_error(DINING.replace("budget ¥10,000,000", ""))
    assert (e.line, e.column) == (1, 1) and "no `budget` section" in e.message
    e = one_error(DINING + "\nbudget ¥5")
    assert e.line == 26 and "`budget` twice (first on line 4)" in e.message


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('"5812", "5813", "5814"', "5812, 5813", 'written in quotes, like "5812"'),
        ('"5812", "5813", "5814"', '"581"', "not a merchant category code"),
        ("age >= 18", 'age >= "18"', "write 18 without quotes"),
        ("merchant.region within 310000", "order.amount >= 100", "write it with ¥"),
        ("within 310000\n}\n\npayment", "within 990000\n}\n\npayment", "990000 is not a region code"),
        ("2025-01-31 23:59", "2025-01-32 23:59", "not a date in the calendar"),
        ("2025-01-01 00:00", "2025-02-01 00:00", "ends before it starts"),
        ("budget ¥10,000,000", "budget ¥10,000,000.001", "more than two decimal places"),
        ("budget ¥10,000,000", "budget ¥0", "must be more than ¥0"),
        ("age >= 18", "payment.weekday = Funday", "`payment` section"),
        ("merchant.region within 310000", "payment.weekday = Funday", "not a day of the week"),
        ("merchant.region within 310000", "payment.time < 24:00", "not a time of day"),
        ("merchant.region within 310000", 'merchant.tags = "x"', "tested with `has`"),
        ("merchant.region within 310000", "merchant.region > 310000", "use `within` for areas"),
        ("merchant.region within 310000", "merchant.mcc is present", "always known"),
        ("age >= 18", "age in 18", "needs a set in braces"),
        ("age >= 18", "age = {18, 19}", "use `in {...}`"),
        ("voucher threshold: spend ¥100, get ¥20 off", "voucher percent: 120% off, up to ¥20", "at most 100%"),
        ("China time", 'China time\ntimezone "Mars/Base"', "not a time zone I know"),
        ("China time", 'China time\ntimezone "Europe/London"', "says China time"),
        ("limit 1 per holder", "limit 0 per holder", "at least 1"),
        (
            "distribution targeted",
            'distribution targeted\nitems { item.sku = "x" }',
            "only applies to a `voucher per item`",
        ),
        (
            'campaign "Shanghai dining vouchers 2025" issuer 310000',
            'campaign "x" issuer 31000',
            "six-digit region code",
        ),
    ],
)
def test_plain_language_errors(old: str, new: str, words: str) -> None:
    assert old in DINING
    found = errors(DINING.replace(old, new, 1))
    assert any(words in e.message for e in found), [str(e) for e in found]
    assert all(e.line >= 1 and e.column >= 1 for e in found)


def test_syntax_errors_point_at_the_problem() -> None:
    e = one_error(DINING.replace("age >= 18", "age >= "))
    assert e.line == 18 and "did not expect" in e.message
    e = one_error(DINING.replace("age >= 18", "age @ 18"))
    assert (e.line, e.column) == (17, 9) and "'@'" in e.message
    e = one_error(DINING.replace('campaign "Shanghai dining vouchers 2025"', 'campaign "Shanghai'))
    assert "not closed" in e.message
    e = one_error("campaign")
    assert "ends too early" in e.message
    e = one_error("hello world")
    assert "a new section starts with campaign" in e.message
    assert one_error("").message == "the contract is empty"


def test_compile_contract_raises_contract_invalid_with_all_errors() -> None:
    bad = DINING.replace("age >= 18", "agee >= 18").replace("310000: 100%", "310000: 90%")
    with pytest.raises(ContractInvalid) as caught:
        compile_contract(bad)
    assert [e.line for e in caught.value.errors] == [5, 17]
    assert "line 5" in str(caught.value)


def test_never_true_warnings() -> None:
    assert any(
        "can never be true together with `age >= 18`" in w
        for w in warnings(DINING.replace("age >= 18", "age >= 18; age < 16"))
    )
    assert any(
        "can never be true" in w
        for w in warnings(
            DINING.replace(
                "merchant.region within 310000", "merchant.region within 310104\n merchant.region within 310115"
            )
        )
    )
    assert any(
        "can never be true" in w
        for w in warnings(
            DINING.replace(
                'merchant.mcc in {"5812", "5813", "5814"}', 'merchant.mcc in {"5812"}; merchant.mcc = "5411"'
            )
        )
    )
    assert any("the set is empty" in w for w in warnings(DINING.replace('{"5812", "5813", "5814"}', "{}")))
    assert any(
        "can never be true" in w
        for w in warnings(
            DINING.replace("merchant.region within 310000", "payment.time >= 22:00; payment.time < 09:00")
        )
    )
    assert any(
        "together with `spend ¥100`" in w
        for w in warnings(DINING.replace("merchant.region within 310000", "order.amount < ¥50"))
    )
    assert warnings(DINING) == []


def test_summary_is_json() -> None:
    import json

    summary = check_contract(DINING).summary
    assert json.loads(json.dumps(summary)) == summary
    assert summary["validity"] == {
        "kind": "fixed",
        "valid_from": "2025-01-01T00:00:00+08:00",
        "valid_until": "2025-02-01T00:00:00+08:00",
        "end": "exclusive",
    }
    assert summary["funders"] == [{"region_code": "310000", "share_bp": 10000}]


def test_compiled_contract_is_immutable_and_identified() -> None:
    import hashlib

    c = compile_contract(DINING)
    assert c.sha256 == hashlib.sha256(DINING.encode()).hexdigest() and c.source == DINING
    with pytest.raises(AttributeError):
        c.quantity = 1  # type: ignore[misc]


def test_money_literals_are_exact() -> None:
    for written, fen in [("¥20", 2000), ("CNY 20.00", 2000), ("¥0.1", 10), ("￥1,234.56", 123456), ("CNY20", 2000)]:
        c = compile_contract(
            DINING.replace("quantity 500,000", "").replace(
                "spend ¥100, get ¥20 off", f"spend ¥2,000, get {written} off"
            )
        )
        assert c.face_value_fen == fen, written


def test_declared_attributes() -> None:
    text = DINING.replace("holder {", "declare holder.hukou as region\nholder {\n    hukou within 310000")
    c = compile_contract(text)
    assert c.check_holder({"age": 20, "residence_region": "310104", "hukou": "310115"}) == []
    assert c.check_holder({"age": 20, "residence_region": "310104"})[0].rule == "hukou within 310000"
    assert "already known" in one_error(DINING.replace("holder {", "declare holder.age as integer\nholder {")).message


def test_a_budget_below_one_voucher_without_a_limit_line_is_an_error_not_a_crash():
    """Found by the reliability suite: the per-holder warning looked for a `limit` line that was not there."""
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "contracts" / "county-fair-rural.contract").read_text()
    result = check_contract(source.replace("budget ¥100,000", "budget ¥5"))
    assert not result.ok
    assert any("cannot pay for even one voucher" in error.message for error in result.errors)


# -- limits before analysis, and the checker's cost -------------------------------------------------------------


def _bench():
    """loadtest/bench_checker.py, whose generators build the worst contracts we know of."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "loadtest" / "bench_checker.py"
    spec = importlib.util.spec_from_file_location("bench_checker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_worst_case_is_checked_quickly() -> None:
    """The bound is 50 ms (shown by `voucher-engine bench checker`); here ten times that, in CPU time, for CI.
    Before, the first of these took minutes: the satisfiability pass re-checked every pair at every rule."""
    import gc
    import time

    bench = _bench()
    for name, make in bench.GENERATORS.items():
        text = make()
        # This thread's CPU time: on a shared machine the wall time also counts waiting for a core. The collector
        # is off while it is measured: late in the suite a full collection walks every test's leftovers and took a
        # second inside one check in CI (1,186 ms measured; 16 ms with the same contract alone).
        gc.collect()
        gc.disable()
        try:
            started = time.thread_time()
            check_contract(text)
            took_ms = (time.thread_time() - started) * 1000
        finally:
            gc.enable()
        assert took_ms < 500, (name, took_ms)


def test_limits_are_enforced_before_any_analysis() -> None:
    """Over a limit, the limit is the one error: nothing else was analysed (here an unknown name on every line)."""
    many = DINING.replace("age >= 18", "\n".join(f"agee != {i}" for i in range(198)))  # and 3 others
    assert [e.message for e in errors(many)] == ["the contract has 201 conditions; the limit is 200"]
    funders = DINING.replace("310000: 100%", ", ".join(f"{310100 + i}00: 5%" for i in range(17)))
    assert [e.message for e in errors(funders)] == ["there are 17 funders; the limit is 16"]


def test_conditions_and_tokens_are_counted_before_parsing() -> None:
    """Five thousand conditions are refused by counting, before the parser sees a token of them."""
    flood = DINING.replace("age >= 18", " ".join(f"age != {i % 10}" for i in range(5_000)))
    assert [e.message for e in errors(flood)] == ["the contract has 5,003 conditions; the limit is 200"]
    some = "{" + ", ".join(f'"{5000 + i}"' for i in range(400)) + "}"
    wide = DINING.replace("merchant.region within 310000", "\n".join(f"merchant.mcc not in {some}" for _ in range(3)))
    assert "words, numbers and symbols; the limit is 1,500" in one_error(wide).message
    # Comparisons written in quotes or comments are not counted.
    quoted = DINING.replace('"Shanghai dining vouchers 2025"', '"' + "a = 1 " * 30 + '"') + "# b = 2 " * 300
    assert check_contract(quoted).ok


@pytest.mark.parametrize(
    "before, after",
    [
        ("quantity 500,000", "quantity " + "9" * 5_000),
        ("limit 1 per holder", "limit " + "9" * 4_301 + " per holder"),
        ("310000: 100%", "310000: " + "1" * 5_000 + "%"),
        ("age >= 18", "age >= " + "9" * 5_000),
        ("get ¥20 off", "get ¥" + "9" * 5_000 + " off"),
    ],
)
def test_numerals_of_thousands_of_digits_are_errors_not_crashes(before: str, after: str) -> None:
    """Python refuses int() of more than 4,300 digits with a ValueError; that was a 500 over HTTP."""
    assert before in DINING
    messages = [e.message for e in errors(DINING.replace(before, after))]
    assert any("too long" in m or "largest amount" in m for m in messages), messages
