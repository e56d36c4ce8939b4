"""Issue 14 as the user met it: the demo started in a subprocess from an empty folder, its printed commands pasted
into a second shell that sourced demo.env, then the demo restarted (items 1, 3 and 12).

- `ledger verify` with no --data-dir checks the demo's ledger (demo.env exports VE_DATA_DIR), and in a folder
  without engine data it refuses instead of creating an empty database and passing;
- the printed `pos redeem` and `pos refund` are safe to run twice (no second refund), a retry under a new
  pos_txn_id is told which redemption it made, a conflicting refund names the field that differs;
- `--json` prints what jq reads; `--version`; a restarted demo prints a voucher that can still be spent.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from firsthour_support import CLI, Demo, _clean_env, _free_port, _run, _sourced


def test_the_demo_as_a_newcomer_meets_it(tmp_path: Path):
    version = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and re.fullmatch(r"voucher-engine \d+\.\d+\.\S+\n", version.stdout)

    # Item 1: nothing here yet. A reading command refuses the empty default folder and creates nothing.
    refused = subprocess.run([*CLI, "ledger", "verify"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True)
    assert refused.returncode == 2 and "no engine data in ve-data" in refused.stderr, refused
    assert not (tmp_path / "ve-data").exists()

    demo = Demo(tmp_path, _free_port())
    try:
        printed = demo.printed()
        env = _sourced(tmp_path / "ve-demo-data" / "demo.env")
        assert Path(env["VE_DATA_DIR"]) == (tmp_path / "ve-demo-data").resolve()
        assert ". .venv/bin/activate" in printed  # a second terminal needs the venv (item 12)
        commands = [line.strip() for line in printed.splitlines() if line.strip().startswith("voucher-engine ")]
        by_verb = {" ".join(c.split()[1:3]): c for c in commands}

        # Item 1: with no --data-dir and outside the demo's folder, still the demo's ledger (via demo.env).
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        refused = _run("voucher-engine ledger verify", _clean_env(), elsewhere)
        assert refused.returncode == 2 and "no engine data" in refused.stderr
        verified = _run(by_verb["ledger verify"], env, elsewhere)
        assert verified.returncode == 0 and "OK:" in verified.stdout, verified
        assert not re.search(r"transactions: 0;", verified.stdout)

        assert _run(by_verb["pos ping"], env, tmp_path).returncode == 0
        quoted = _run(by_verb["pos quote"] + " --json", env, tmp_path)
        assert quoted.returncode == 0 and json.loads(quoted.stdout)["eligible"] is True  # --json: jq reads it

        # Item 8: an item fact beside `sku` instead of under `attributes` is refused, saying where it goes.
        misplaced = '[{"sku": "FR-1", "category": "appliance.refrigerator", "amount_fen": 12000, "energy_grade": 1}]'
        refused = _run(by_verb["pos quote"] + f" --items '{misplaced}' --json", env, tmp_path)
        problem = json.loads(refused.stdout)
        assert refused.returncode == 1 and problem["code"] == "VALIDATION_ERROR"
        assert "Unknown field items.0.energy_grade" in problem["detail"] and "attributes" in problem["detail"]

        # Item 3: the printed redeem, twice: one redemption, the second answer is the same one.
        first = _run(by_verb["pos redeem"] + " --json", env, tmp_path)
        again = _run(by_verb["pos redeem"] + " --json", env, tmp_path)
        assert first.returncode == 0 and again.returncode == 0, (first, again)
        redemption = json.loads(first.stdout)
        assert json.loads(again.stdout)["id"] == redemption["id"]
        changed = _run(
            by_verb["pos redeem"].replace("--amount-fen 12000", "--amount-fen 15000") + " --json", env, tmp_path
        )
        problem = json.loads(changed.stdout)
        assert changed.returncode == 1 and problem["code"] == "IDEMPOTENCY_CONFLICT"
        assert problem["fields"] == ["order_amount_fen"], problem
        # A retry under a new pos_txn_id is told which of its own redemptions spent the voucher.
        other_txn = re.sub(r"--pos-txn-id \S+", "--pos-txn-id retry-with-new-id", by_verb["pos redeem"])
        spent = _run(other_txn + " --json", env, tmp_path)
        problem = json.loads(spent.stdout)
        assert spent.returncode == 1 and problem["code"] == "VOUCHER_ALREADY_REDEEMED"
        assert problem["redemption_id"] == redemption["id"]
        assert problem["pos_txn_id"] == redemption["pos_txn_id"]
        # The same retry without --json says so to a person.
        assert "you redeemed it already" in _run(other_txn, env, tmp_path).stderr

        # The printed refund, twice: refunded once (the second is the same refund, 200).
        refund = by_verb["pos refund"]
        assert "--refund-id" in refund
        r1 = _run(refund + " --json", env, tmp_path)
        r2 = _run(refund + " --json", env, tmp_path)
        assert r1.returncode == 0 and r2.returncode == 0, (r1, r2)
        assert json.loads(r1.stdout) == json.loads(r2.stdout)
        assert json.loads(r2.stdout)["redemption"]["refunded_fen"] == 12000
        # The same refund id with another reason: the conflict names the field.
        conflict = _run(refund + " --reason 'changed mind' --json", env, tmp_path)
        problem = json.loads(conflict.stdout)
        assert conflict.returncode == 1 and problem["code"] == "IDEMPOTENCY_CONFLICT"
        assert problem["fields"] == ["reason"] and "reason" in problem["detail"]

        # Without an idempotency key the till commands refuse to run, rather than invent one.
        no_key = _run(re.sub(r" --pos-txn-id \S+", "", by_verb["pos redeem"]), env, tmp_path)
        assert no_key.returncode == 2 and "--pos-txn-id" in no_key.stderr
        no_key = _run(re.sub(r" --refund-id \S+", "", refund), env, tmp_path)
        assert no_key.returncode == 2 and "--refund-id" in no_key.stderr
    finally:
        demo.stop()

    # Item 12: a restarted demo prints a voucher that can still be spent (the refund above gave the first one
    # back, so spend it first to make the point).
    demo = Demo(tmp_path, _free_port())
    try:
        env = _sourced(tmp_path / "ve-demo-data" / "demo.env")
        printed = demo.printed()
        commands = [line.strip() for line in printed.splitlines() if line.strip().startswith("voucher-engine ")]
        by_verb = {" ".join(c.split()[1:3]): c for c in commands}
        spent = _run(by_verb["pos redeem"] + " --json", env, tmp_path)
        assert spent.returncode == 0 and json.loads(spent.stdout)["refunded_fen"] == 0, spent  # a new redemption
    finally:
        demo.stop()
    demo = Demo(tmp_path, _free_port())
    try:
        env = _sourced(tmp_path / "ve-demo-data" / "demo.env")
        commands = [line.strip() for line in demo.printed().splitlines() if line.strip().startswith("voucher-engine ")]
        by_verb = {" ".join(c.split()[1:3]): c for c in commands}
        quoted = _run(by_verb["pos quote"] + " --json", env, tmp_path)
        assert json.loads(quoted.stdout)["eligible"] is True, quoted.stdout
        spent = _run(by_verb["pos redeem"] + " --json", env, tmp_path)
        assert spent.returncode == 0 and json.loads(spent.stdout)["refunded_fen"] == 0, spent
    finally:
        demo.stop()


CONTRACT = """# A campaign written by an officer, posted as the file it is.
campaign "Xuhui weekend dining" issuer 310000
budget ¥100,000
voucher threshold: spend ¥100, get ¥20 off
valid during 2025
payment {
    merchant.region within 310104
}
"""


def test_an_officer_runs_a_campaign_from_the_command_line(served: Demo):
    """Item 6: campaign / issuer / merchant / key commands against a served instance, with demo.env's tokens."""
    tmp_path = served.cwd
    (tmp_path / "dining.contract").write_text(CONTRACT)
    (tmp_path / "broken.contract").write_text(CONTRACT.replace("¥100,000", "¥10"))
    env = _sourced(tmp_path / "ve-demo-data" / "demo.env")
    checked = _run("voucher-engine campaign check dining.contract", env, tmp_path)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked
    broken = _run("voucher-engine campaign create broken.contract", env, tmp_path)
    assert broken.returncode == 1 and "CONTRACT_INVALID" in broken.stderr and "line 3, column 1" in broken.stderr, (
        broken
    )

    created = _run("voucher-engine campaign create dining.contract --json", env, tmp_path)
    assert created.returncode == 0, created
    campaign = json.loads(created.stdout)
    assert campaign["status"] == "draft" and campaign["contract_source"] == CONTRACT  # sent as text/plain
    cid = campaign["id"]
    for action in ("fund", "activate"):
        moved = _run(f"voucher-engine campaign {action} {cid}", env, tmp_path)
        assert moved.returncode == 0 and cid in moved.stdout, moved
    assert _run(f"voucher-engine campaign pause {cid}", env, tmp_path).returncode == 0
    again = _run(f"voucher-engine campaign pause {cid}", env, tmp_path)
    assert again.returncode == 1 and "INVALID_STATE" in again.stderr

    plan = _run(f"voucher-engine campaign close {cid} --dry-run", env, tmp_path)
    assert plan.returncode == 0 and "would return ¥100,000.00" in plan.stdout and "dry run" in plan.stdout, plan
    shown = json.loads(_run(f"voucher-engine campaign show {cid}", env, tmp_path).stdout)
    assert shown["status"] == "paused"  # the dry run changed nothing
    closed = _run(f"voucher-engine campaign close {cid} --json", env, tmp_path)
    assert closed.returncode == 0 and json.loads(closed.stdout)["status"] == "closed"
    assert cid in _run("voucher-engine campaign list", env, tmp_path).stdout

    issuer = _run("voucher-engine issuer create --name 'Suzhou Commerce' --region 320500", env, tmp_path)
    assert issuer.returncode == 0 and "320500" in issuer.stdout, issuer
    assert "320500" in _run("voucher-engine issuer list", env, tmp_path).stdout
    put = _run(
        "voucher-engine merchant put gusu-tea --name 'Gusu Tea' --mcc 5814 --region 320508"
        " --wallet 0012345678909999 --tag ecny-signed",
        env,
        tmp_path,
    )
    assert put.returncode == 0 and "gusu-tea" in put.stdout, put
    key = _run("voucher-engine key create gusu-tea", env, tmp_path)
    assert key.returncode == 0 and key.stdout.startswith("export KEY_ID="), key
    key_id = key.stdout.split()[1].removeprefix("KEY_ID=")
    assert _run(f"voucher-engine key revoke gusu-tea {key_id}", env, tmp_path).returncode == 0
    # A gov token may not register merchants: the refusal is one line, exit 1.
    refused = _run("voucher-engine merchant suspend gusu-tea --token " + env["GOV"], env, tmp_path)
    assert refused.returncode == 1 and "FORBIDDEN" in refused.stderr
