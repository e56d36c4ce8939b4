"""Issue 14, items 2 and 7, as the user met them: a holders CSV saved by Excel or WPS on Chinese Windows (GB18030),
a cell that is not a number (the CLI names line, column and value), and holders rejected with their reasons
(`explain`, and a note when an attribute came as the wrong JSON type)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from campaign_helpers import dining, make_gov, set_clock, wallet

CLI = [sys.executable, "-m", "voucher_engine.cli", "issue"]


def _issue(service, campaign_id: str, path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": service.settings.database_url}
    return subprocess.run(
        [*CLI, campaign_id, str(path), "--quiet"], env=env, capture_output=True, text=True, timeout=120
    )


async def test_a_gb18030_csv_from_excel_issues_and_a_bad_cell_is_named(service, tmp_path):
    await set_clock(service, "2025-01-10T10:00:00+08:00")
    shanghai = await make_gov(service, "310000")
    campaign = await shanghai.active(dining(quantity="10"))
    rows = f"wallet_id,姓名,age,residence_region\n{wallet(1)},张三,30,310104\n{wallet(2)},李四,45,310105\n"
    gbk = tmp_path / "holders-gbk.csv"
    gbk.write_bytes(rows.encode("gb18030"))
    done = _issue(service, campaign["id"], gbk)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["issued"] == 2

    bom = tmp_path / "holders-utf8-bom.csv"
    bom.write_bytes(("\ufeff" + rows.replace(wallet(1), wallet(3)).replace(wallet(2), wallet(4))).encode("utf-8"))
    done = _issue(service, campaign["id"], bom)
    assert done.returncode == 0 and json.loads(done.stdout)["issued"] == 2, done.stderr

    bad = tmp_path / "holders-bad-age.csv"
    bad.write_bytes(
        f"wallet_id,age,residence_region\n{wallet(5)},30,310104\n{wallet(6)},三十,310104\n".encode("gb18030")
    )
    done = _issue(service, campaign["id"], bad)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "line 3, column 'age': '三十' is not a whole number" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_rejected_holders_say_why(service):
    await set_clock(service, "2025-01-10T10:00:00+08:00")
    shanghai = await make_gov(service, "310000")
    campaign = await shanghai.active(dining(quantity="10"))
    result = await shanghai.issue(
        campaign["id"],
        [
            {"wallet_id": wallet(1), "attributes": {"age": 30, "residence_region": "310104"}},
            {"wallet_id": wallet(2), "attributes": {"age": 16, "residence_region": "310104"}},
            {"wallet_id": wallet(3), "attributes": {"age": 30, "residence_region": 310104}},
        ],
    )
    assert result["issued"] == 1
    young, numeric = result["rejected"]
    assert young["code"] == "NOT_ELIGIBLE" and young["explain"][0]["rule"] == "age >= 18"
    assert {"line", "column", "expected"} <= young["explain"][0].keys()
    assert "actual" not in young["explain"][0]  # no holder attribute comes back in an answer
    assert numeric["code"] == "NOT_ELIGIBLE" and numeric["explain"][0]["rule"].startswith("residence_region")
    assert "JSON int" in numeric["explain"][0]["note"] and '"310104"' in numeric["explain"][0]["note"]
