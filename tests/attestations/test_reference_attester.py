"""The reference attester end to end, as docs/attestations.md runs it: keygen, registration, a campaign that
requires attestations, `sign` for one holder (a claim), `sign-csv` for a list and `voucher-engine issue` on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from campaign_helpers import wallet
from test_attestations import campaign_text
from typer.testing import CliRunner

from voucher_engine.attestations.cli import app

NAME = "Shanghai public data operator"


async def test_keygen_sign_and_issue_from_the_command_line(service, shanghai, tmp_path):
    runner = CliRunner()
    key = tmp_path / "attester.pem"
    made = runner.invoke(app, ["keygen", "--out", str(key)])
    assert made.exit_code == 0, made.output
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert runner.invoke(app, ["keygen", "--out", str(key)]).exit_code == 2  # never overwrites a key
    registered = await service.client.post(
        "/v1/attesters", json={"name": NAME, "public_key": made.stdout.strip()}, headers=service.admin
    )
    assert registered.status_code == 201, registered.text
    attester_id = registered.json()["id"]

    claims_campaign = await shanghai.active(campaign_text(attested_by=NAME, distribution="first come"))
    source = tmp_path / "campaign.contract"
    source.write_text(claims_campaign["contract_source"])
    common = ["--key", str(key), "--attester-id", attester_id, "--contract", str(source)]
    signed = runner.invoke(
        app,
        [
            "sign",
            *common,
            "--campaign",
            claims_campaign["id"],
            "--wallet",
            wallet(1),
            "--attributes",
            '{"age": 30, "residence_region": "310104"}',
        ],
    )
    assert signed.exit_code == 0, signed.output
    claim = await shanghai.post(
        f"/v1/campaigns/{claims_campaign['id']}/claims", {"wallet_id": wallet(1), "attestation": signed.stdout.strip()}
    )
    assert claim.status_code == 201, claim.text
    young = runner.invoke(
        app,
        [
            "sign",
            *common,
            "--campaign",
            claims_campaign["id"],
            "--wallet",
            wallet(2),
            "--attributes",
            '{"age": 16, "residence_region": "310104"}',
        ],
    )
    assert young.exit_code == 1 and "age >= 18" in young.stderr and "16" not in young.stderr

    targeted = await shanghai.active(campaign_text(attested_by=NAME))
    holders = tmp_path / "holders.csv"
    holders.write_text(
        "wallet_id,id_hash,age,residence_region\n"
        f"{wallet(1)},alice,30,310104\n{wallet(2)},,17,310104\n{wallet(3)},carol,40,310105\n"
    )
    attested = tmp_path / "attested.csv"
    listed = runner.invoke(app, ["sign-csv", *common, "--campaign", targeted["id"], str(holders), str(attested)])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == {"attested": 2, "not_eligible": 1}
    assert attested.read_text().splitlines()[0] == "wallet_id,id_hash,attestation"  # no attribute column
    env = {**os.environ, "DATABASE_URL": service.settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "voucher_engine.cli", "issue", targeted["id"], str(attested), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["issued"] == 2
    # The same file again: every attestation is spent.
    again = subprocess.run(
        [sys.executable, "-m", "voucher_engine.cli", "issue", targeted["id"], str(attested), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [r["check"] for r in json.loads(again.stdout)["rejected"]] == ["replayed", "replayed"]
