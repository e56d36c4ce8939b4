"""The risk rules as the contract language has them (no database): a contract's `risk { … }` section checked at
its line and column, the defaults it replaces, and the per-redemption judging the redemption batch calls."""

from __future__ import annotations

from pathlib import Path

from voucher_engine.contracts import check_contract, compile_contract
from voucher_engine.contracts.risk import DEFAULTS, ODD_HOURS

DINING = (Path(__file__).resolve().parents[2] / "contracts" / "shanghai-dining-2025.contract").read_text()


def _with_risk(*lines: str) -> str:
    return DINING + "\nrisk {\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


def test_the_checker_names_each_mistake_at_its_line_and_column():
    source = _with_risk(
        "odd_hours: hold",
        "odd_hour from 00:00: hold",
        "threshold_hugging within 2.555%: flag",
        "refund_reredeem after 0: refuse",
        "merchant_velocity per_minute 5: refuse",
        "holder_spread blah 3: hold",
        "claims_burst per_minute 10: maybe",
        "exact_repeat times 01:00: flag",
    )
    first = len(DINING.splitlines()) + 3
    result = check_contract(source)
    assert not result.ok
    found = [(e.line - first, e.column, e.message) for e in result.errors]
    assert [(line, column) for line, column, _ in found] == [
        (0, 5),
        (1, 5),
        (2, 30),
        (3, 27),
        (4, 37),
        (5, 19),
        (6, 33),
        (7, 24),
    ]
    messages = [m for _, _, m in found]
    assert "no risk signal `odd_hours`" in messages[0]
    assert "both `from` and `to`" in messages[1]
    assert "hundredth of a per cent" in messages[2]
    assert "from 1 to 1000" in messages[3]
    assert "can flag or hold, not refuse" in messages[4]
    assert "no parameter `blah`" in messages[5]
    assert "flag, hold, refuse or off" in messages[6]
    assert "written like 3" in messages[7]


def test_a_section_replaces_the_defaults_of_the_signals_it_names():
    contract = compile_contract(
        _with_risk("odd_hour from 00:00 to 06:00: hold", "refund_reredeem: off", "holder_spread merchants 3: hold")
    )
    texts = [r.text for r in contract.risk.rules]
    assert "odd_hour: flag" not in texts and "odd_hour from 00:00 to 06:00: hold" in texts
    assert not contract.risk.for_signal("refund_reredeem")
    [spread] = contract.risk.for_signal("holder_spread")
    [default] = DEFAULTS.for_signal("holder_spread")
    assert spread.limit("merchants") == 3 and spread.limit("minutes") == default.limit("minutes")  # where not given
    assert contract.summary()["risk_rules"][0] == "odd_hour from 00:00 to 06:00: hold"
    assert compile_contract(DINING).risk.rules == DEFAULTS.rules


def test_per_redemption_judging_by_the_defaults():
    rules = compile_contract(DINING).risk
    noon = 12 * 3600
    assert rules.judge_redemption(mcc="5812", local_seconds=noon, order_amount_fen=10000, refunds_here=0) == ()
    [odd] = rules.judge_redemption(mcc="5812", local_seconds=4 * 3600, order_amount_fen=12000, refunds_here=0)
    assert odd.signal == "odd_hour" and odd.outcome == "flag"
    # Round-the-clock categories have no odd hours; a window past midnight wraps.
    assert ODD_HOURS["5411"] is None
    assert not rules.judge_redemption(mcc="5411", local_seconds=4 * 3600, order_amount_fen=1, refunds_here=0)
    [late] = rules.judge_redemption(mcc="5200", local_seconds=23 * 3600, order_amount_fen=1, refunds_here=0)
    assert late.evidence["odd_hours"] == ["22:00", "07:00"]
    hits = rules.judge_redemption(mcc="5812", local_seconds=noon, order_amount_fen=12000, refunds_here=3)
    assert [(h.signal, h.outcome, h.actual) for h in hits] == [("refund_reredeem", "refuse", 3)]
    assert hits[0].explain()["expected"] == "< 3" and hits[0].explain()["line"] is None
