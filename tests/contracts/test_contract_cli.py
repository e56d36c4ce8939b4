"""`voucher-engine contract check | explain`, through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from contract_helpers import CONTRACTS_DIR, POLICY_FILES, source
from typer.testing import CliRunner

from voucher_engine.contracts import compile_contract
from voucher_engine.contracts.cli import app
from voucher_engine.contracts.sample import explain_payment

runner = CliRunner()
DINING = str(CONTRACTS_DIR / "shanghai-dining-2025.contract")


def payment(order_fen: int, at: str = "2025-01-15T12:00:00+08:00", mcc: str = "5812") -> str:
    return json.dumps(
        {"merchant": {"mcc": mcc, "region_code": "310104", "tags": []}, "at": at, "order_amount_fen": order_fen}
    )


def test_check_all_policies_ok() -> None:
    result = runner.invoke(app, ["check", *(str(CONTRACTS_DIR / f"{n}.contract") for n in POLICY_FILES)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok: ") == 6


def test_check_prints_compiler_style_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.contract"
    bad.write_text(source("shanghai-dining-2025").replace("310000: 100%", "310000: 90%"), encoding="utf-8")
    result = runner.invoke(app, ["check", str(bad), DINING])
    assert result.exit_code == 1
    assert f"{bad}:5:1: error: the funders' shares add up to 90%, they must add up to 100%" in result.output
    assert f"{DINING}: ok" in result.output


def test_check_json_and_unreadable_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--json", DINING])
    assert result.exit_code == 0 and json.loads(result.output)["summary"]["quantity"] == 500_000
    result = runner.invoke(app, ["check", str(tmp_path / "missing.contract")])
    assert result.exit_code == 1 and "cannot read the file" in result.output
    big = tmp_path / "big.contract"
    big.write_text("#" * (70 * 1024), encoding="utf-8")
    result = runner.invoke(app, ["check", str(big)])
    assert result.exit_code == 1 and "64 KiB" in result.output


def test_explain_success_and_failure() -> None:
    result = runner.invoke(app, ["explain", DINING, "--payment", payment(12000)])
    assert result.exit_code == 0, result.output
    assert "subsidy ¥20.00 (2000 fen)" in result.output and "result: ok" in result.output
    result = runner.invoke(app, ["explain", DINING, "--payment", payment(9999), "--json"])
    answer = json.loads(result.output)
    assert result.exit_code == 1  # a refusal exits 1 (issue 14, item 12)
    assert answer["code"] == "RULE_NOT_SATISFIED" and answer["eligible"] is False
    assert answer["explain"][0]["rule"] == "spend ¥100" and answer["explain"][0]["line"] == 9


def test_explain_validity_and_holder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["explain", DINING, "--payment", payment(12000, at="2025-02-01T10:00:00+08:00")])
    assert "VOUCHER_EXPIRED" in result.output
    holder = tmp_path / "holder.json"
    holder.write_text('{"age": 17, "residence_region": "310104"}')
    result = runner.invoke(app, ["explain", DINING, "--payment", payment(12000), "--holder", f"@{holder}", "--json"])
    answer = json.loads(result.output)
    assert result.exit_code == 1 and answer["code"] == "NOT_ELIGIBLE"
    assert answer["holder_explain"][0]["rule"] == "age >= 18"
    suzhou = str(CONTRACTS_DIR / "suzhou-ecny-red-envelope.contract")
    envelope = json.dumps(
        {
            "merchant": {"mcc": "5411", "region_code": "320505", "tags": ["ecny-signed"]},
            "at": "2025-05-09T10:00:00+08:00",
            "order_amount_fen": 100,
        }
    )
    result = runner.invoke(app, ["explain", suzhou, "--payment", envelope, "--issued-at", "2025-05-01T10:00:00+08:00"])
    assert "VOUCHER_EXPIRED" in result.output


def test_a_refused_payment_shows_no_subsidy_on_the_command_line_as_in_the_console() -> None:
    # The payment's own conditions hold (a ¥120 dinner), but the voucher expired on 2025-02-01: the till would be
    # refused, so the subsidy shown is 0 and the whole order is payable, in the CLI as in the console's answer.
    late = payment(12000, at="2025-02-01T10:00:00+08:00")
    result = runner.invoke(app, ["explain", DINING, "--payment", late, "--json"])
    answer = json.loads(result.output)
    assert result.exit_code == 1 and answer["code"] == "VOUCHER_EXPIRED" and answer["explain"] == []
    assert answer["subsidy_fen"] == 0 and answer["payable_fen"] == 12000
    assert answer == explain_payment(compile_contract(source("shanghai-dining-2025")), json.loads(late))
    text = runner.invoke(app, ["explain", DINING, "--payment", late]).output
    assert "all payment conditions hold" in text
    assert "subsidy ¥0.00 (0 fen), the holder pays ¥120.00" in text and "result: VOUCHER_EXPIRED" in text


def test_explain_bad_input() -> None:
    result = runner.invoke(app, ["explain", DINING, "--payment", '{"order_amount_fen": 1.5}'])
    assert result.exit_code == 2 and "error:" in result.output
    result = runner.invoke(app, ["explain", DINING, "--payment", "{not json"])
    assert result.exit_code == 2
