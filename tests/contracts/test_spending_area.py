"""The spending area (contracts/area.py): a campaign is spent only inside its issuer's region.

Refused at check time with the line and column of the condition that names a region outside; a contract that does
not confine `merchant.region` is confined to its issuer's region by an added rule that the till enforces. The
central government (000000) may spend anywhere.
"""

from __future__ import annotations

from contract_helpers import pay

from voucher_engine.contracts import check_contract, compile_contract


def suzhou(payment: str, issuer: str = "320500") -> str:
    return f"""campaign "Suzhou dining" issuer {issuer}
budget ¥100,000
voucher fixed: ¥10 off
quantity 1,000
valid during 2025 China time
payment {{
    {payment}
}}
"""


def errors(source: str) -> list[tuple[int, int, str]]:
    result = check_contract(source)
    return [(e.line, e.column, e.message) for e in result.errors]


def test_a_region_outside_the_issuers_is_refused_at_its_line_and_column() -> None:
    found = errors(suzhou("merchant.region within 310000"))
    assert len(found) == 1
    line, column, message = found[0]
    assert (line, column) == (7, 5)
    assert "310000" in message and "outside the issuer's region 320500" in message


def test_a_wider_region_than_the_issuers_is_refused() -> None:
    # Jiangsu (320000) contains Suzhou (320500) but is not within it.
    assert errors(suzhou("merchant.region within 320000"))[0][:2] == (7, 5)


def test_every_allowed_region_is_checked_in_sets_and_alternatives() -> None:
    message = errors(suzhou("merchant.region in {320505, 310104}"))[0][2]
    assert "merchants in 310104, outside" in message
    found = errors(suzhou('merchant.region within 320505 or merchant.mcc = "5812" and merchant.region = 110105'))
    # Reported at the comparison that names it, not at the start of the line.
    assert [f[:2] for f in found] == [(7, 64)] and "110105" in found[0][2]
    # A double negation allows what it names.
    assert "310000" in errors(suzhou("not (merchant.region not within 310000)"))[0][2]


def test_regions_named_only_to_exclude_them_may_lie_anywhere() -> None:
    assert check_contract(suzhou("merchant.region not within 310000")).ok
    assert check_contract(suzhou("merchant.region != 310104")).ok


def test_a_contract_that_does_not_confine_the_region_is_confined_at_the_till() -> None:
    for payment in (
        'merchant.mcc = "5812"',
        "merchant.region not within 320581",
        'merchant.region within 320505 or merchant.mcc = "5812"',
    ):
        contract = compile_contract(suzhou(payment))
        assert "merchant.region within 320500" in contract.summary()["payment_conditions"], payment
        refused = contract.evaluate(pay(5000, mcc="5812", region="310104"))
        assert not refused.ok
        failure = [f for f in refused.failures if f.rule == "merchant.region within 320500"]
        assert failure, (payment, refused.failures)
        # Explained at the issuer's code on the first line.
        assert (failure[0].line, failure[0].column) == (1, 33)
        assert failure[0].actual == "310104"
        assert contract.evaluate(pay(5000, mcc="5812", region="320505")).ok


def test_a_confined_contract_gets_no_extra_rule() -> None:
    contract = compile_contract(suzhou("merchant.region within 320505"))
    assert contract.summary()["payment_conditions"] == ["merchant.region within 320505"]


def test_a_contract_with_no_payment_section_is_confined_too() -> None:
    source = suzhou("x").replace("payment {\n    x\n}\n", "")
    contract = compile_contract(source)
    assert contract.summary()["payment_conditions"] == ["merchant.region within 320500"]
    assert not contract.evaluate(pay(5000, region="310104")).ok
    assert contract.evaluate(pay(5000, region="320505")).ok


def test_the_central_government_may_spend_anywhere() -> None:
    assert check_contract(suzhou("merchant.region within 310000", issuer="000000")).ok
    contract = compile_contract(suzhou('merchant.mcc = "5812"', issuer="000000"))
    assert contract.summary()["payment_conditions"] == ['merchant.mcc = "5812"']
    assert contract.evaluate(pay(5000, region="650102")).ok
