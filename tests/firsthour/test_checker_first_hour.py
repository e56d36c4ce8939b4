"""Issue 14 item 9, as the officer met it: the checker's gaps, on the command line (`voucher-engine contract check`
in a subprocess) and over HTTP (`POST /v1/contracts/check` on the served demo, and `campaign check`).

- `310199` is not a GB/T 2260 code (the list ships as package data): an error naming it;
- `merchant.region = 310000` matches no merchant registered in one of Shanghai's districts: a warning that says
  "did you mean `merchant.region within 310000`?";
- `990000` is six digits: the message says it is not a region code in GB/T 2260 (no province 99), not "six digits";
- every error at once: the budget error is there beside the others.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from firsthour_support import CLI, Demo, _run, _sourced

# What the officer wrote: a made-up district, a province with `=`, a funder's code that does not exist, shares that
# do not add up, and more vouchers than the budget pays for.
OFFICER = """campaign "Shanghai district dining" issuer 310000
budget ¥10,000
funders {
    310000: 60%
    990000: 30%
}
voucher threshold: spend ¥100, get ¥20 off
quantity 1,000
valid during 2025
payment {
    merchant.region = 310000
    merchant.region != 310199
}
"""

WITHIN = "did you mean `merchant.region within 310000`?"


def _check(*files: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "contract", "check", *files], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_contract_check_names_every_error_and_warns_about_equals_on_a_province(tmp_path):
    (tmp_path / "district.contract").write_text(OFFICER)
    checked = _check("district.contract", cwd=tmp_path)
    assert checked.returncode == 1, checked
    lines = checked.stdout.splitlines()
    errors = [line for line in lines if ": error: " in line]
    warnings = [line for line in lines if ": warning: " in line]
    # Every error at once, the budget's included.
    assert any(
        line.startswith("district.contract:8:1: error: 1,000 vouchers worth up to ¥20.00") and "budget" in line
        for line in errors
    ), checked.stdout
    assert any("add up to 90%" in line for line in errors), checked.stdout
    # 990000: six digits, but no province 99 — said so, and not "those are six digits".
    [bad_funder] = [line for line in errors if "990000" in line]
    assert bad_funder.startswith("district.contract:5:5: error:")
    assert "990000 is not a region code in GB/T 2260" in bad_funder and "no province 99" in bad_funder
    assert "six digits" not in bad_funder
    # 310199: a district Shanghai does not have, named.
    [made_up] = [line for line in errors if "310199" in line]
    assert made_up.startswith("district.contract:12:24: error: 310199 is not a region code in GB/T 2260")
    # `=` with a province: a warning, at the condition, saying what was meant.
    [equals] = warnings
    assert equals.startswith("district.contract:11:5: warning:") and WITHIN in equals

    # Corrected as the messages say: it passes, and `within` draws no warning; `=` alone is a warning, exit 0.
    fixed = OFFICER.replace("990000: 30%", "000000: 40%").replace("310199", "310104")
    (tmp_path / "fixed.contract").write_text(fixed.replace("quantity 1,000", "quantity 500"))
    (tmp_path / "within.contract").write_text(
        fixed.replace("quantity 1,000", "quantity 500").replace("region = 310000", "region within 310000")
    )
    # With them, the reference policies: every region they name is in GB/T 2260.
    policies = sorted(str(p) for p in (Path(__file__).resolve().parents[2] / "contracts").glob("*.contract"))
    checked = _check("fixed.contract", "within.contract", *policies, cwd=tmp_path)
    assert checked.returncode == 0 and ": error: " not in checked.stdout, checked
    assert "fixed.contract:11:5: warning:" in checked.stdout and WITHIN in checked.stdout
    assert "within.contract: ok:" in checked.stdout and "within.contract:11" not in checked.stdout


def test_the_service_answers_the_same_errors_and_warnings(served: Demo):
    env = _sourced(served.cwd / "ve-demo-data" / "demo.env")
    headers = {"Authorization": f"Bearer {env['GOV']}", "Content-Type": "text/plain; charset=utf-8"}
    answer = httpx.post(f"{env['VE']}/v1/contracts/check", content=OFFICER.encode(), headers=headers, timeout=30)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "CONTRACT_INVALID"
    errors = {(e["line"], e["column"]): e["message"] for e in problem["errors"]}
    assert "990000 is not a region code in GB/T 2260" in errors[(5, 5)]
    assert errors[(12, 24)].startswith("310199 is not a region code in GB/T 2260")
    assert errors[(8, 1)].startswith("1,000 vouchers worth up to ¥20.00") and "budget" in errors[(8, 1)]
    # The warnings come with the errors, as warnings (the console's editor shows them as such).
    [warning] = problem["warnings"]
    assert (warning["line"], warning["column"]) == (11, 5) and WITHIN in warning["message"]

    # Without the errors: 200, ok, and the warning.
    fixed = OFFICER.replace("990000: 30%", "000000: 40%").replace("310199", "310104")
    fixed = fixed.replace("quantity 1,000", "quantity 500")
    answer = httpx.post(f"{env['VE']}/v1/contracts/check", content=fixed.encode(), headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.json()["ok"] is True, answer.text
    assert [w["line"] for w in answer.json()["warnings"]] == [11]

    # The officer's command line over the same API prints them too.
    (served.cwd / "officer.contract").write_text(OFFICER)
    refused = _run("voucher-engine campaign check officer.contract", env, served.cwd)
    assert refused.returncode == 1 and "CONTRACT_INVALID" in refused.stderr
    assert "line 12, column 24: 310199 is not a region code" in refused.stderr
    assert "warning: line 11, column 5:" in refused.stderr and WITHIN in refused.stderr
