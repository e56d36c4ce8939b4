"""Issue 14 items 10 and 12, as the auditor met them, against the served demo:

- docs/ledger.md's commands, pasted as they are into a shell that sourced demo.env (they use `$VE` and `$AUDITOR`):
  the key pinned, a checkpoint checked with OpenSSL, an inclusion proof, a consistency proof between two
  checkpoints (`ledger check-consistency`), the whole export verified offline;
- the offline checks lead with the real cause: a wrong key is "does not verify under the pinned key", no
  `--checkpoint` is "no checkpoint was given", and "an old checkpoint replayed" only when that is what it is;
- `ledger verify` and `ledger export` draw a progress bar on standard error when it is a terminal, and nothing
  otherwise; standard output is the same either way.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from firsthour_support import CLI, Demo, _run, _sourced

DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"

GROW = """campaign "Auditor's second look" issuer 310000
budget ¥1,000
voucher fixed ¥10 off
valid during 2025
"""


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_auditor_pastes_docs_ledger_md(served: Demo):
    for tool in ("curl", "jq", "openssl", "xxd"):
        if not _which(tool):
            pytest.skip(f"docs/ledger.md's commands need {tool}")
    folder = served.cwd
    if not (folder / ".venv").exists():  # the README's venv, in the folder the demo was started from
        (folder / ".venv").symlink_to(sys.prefix)
    (folder / "grow.contract").write_text(GROW)
    blocks = _blocks("sh")
    assert all("$BASE" not in b and "$TOKEN" not in b for b in blocks)
    later = next(i for i, b in enumerate(blocks) if "check-consistency" in b)
    # Between the checkpoint kept in step 2 and the newer one, the ledger grows (a campaign funded).
    grow = (
        "ID=$(voucher-engine campaign create ../grow.contract --json | jq -r .id)\n"
        "voucher-engine campaign fund $ID >/dev/null\nsleep 1\n"
    )
    script = "set -euo pipefail\n" + "".join(blocks[:later]) + grow + "".join(blocks[later:])
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE") and k not in ("DATABASE_URL", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"  # `voucher-engine` comes from the activated venv, as for a newcomer
    ran = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=240)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    out = ran.stdout
    assert "Signature Verified Successfully" in out
    assert re.search(r"^OK: included in the signed tree of \d+ transactions$", out, re.M), out
    m = re.search(r"^OK: the signed tree of (\d+) transactions extends the signed tree of (\d+)", out, re.M)
    assert m and int(m[1]) > int(m[2]), out
    assert "OK: every hash, the tree, every checkpoint signature and every balance verify" in out

    # The Python fold in step 3, run over the files the commands wrote.
    [fold] = _blocks("python")
    folded = subprocess.run([sys.executable, "-c", fold], cwd=folder / "audit", capture_output=True, text=True)
    assert folded.returncode == 0, folded.stderr


def _which(tool: str) -> bool:
    return subprocess.run(["which", tool], capture_output=True).returncode == 0


def _fetch(served: Demo, tmp_path: Path) -> dict[str, str]:
    """What an auditor holds: the pinned key, the newest checkpoint, a transaction and its proof, the export."""
    env = _sourced(served.cwd / "ve-demo-data" / "demo.env")
    auth = {"Authorization": f"Bearer {env['AUDITOR']}"}
    base = env["VE"]
    (tmp_path / "ledger.pub.pem").write_text(httpx.get(f"{base}/v1/ledger/public-key", timeout=30).json()["pem"])
    csv = httpx.get(f"{base}/v1/ledger/export?format=csv", headers=auth, timeout=30).text
    (tmp_path / "ledger.csv").write_text(csv)
    rows = int(csv.strip().splitlines()[-1].split(",")[0])
    cp = httpx.get(f"{base}/v1/ledger/checkpoints?tree_size={rows}", headers=auth, timeout=30).json()
    (tmp_path / "cp.json").write_text(json.dumps(cp))
    first = httpx.get(f"{base}/v1/ledger/checkpoints?tree_size=1", headers=auth, timeout=30).json()
    (tmp_path / "cp-1.json").write_text(json.dumps(first))
    proof = httpx.get(f"{base}/v1/ledger/consistency?from=1&to={rows}", headers=auth, timeout=30).json()
    (tmp_path / "consistency.json").write_text(json.dumps(proof))
    tx = httpx.get(f"{base}/v1/ledger/transactions?limit=1", headers=auth, timeout=30).json()["items"][0]
    (tmp_path / "tx.json").write_text(json.dumps(tx))
    inclusion = httpx.get(f"{base}/v1/ledger/transactions/{tx['id']}/proof", headers=auth, timeout=30).json()
    (tmp_path / "proof.json").write_text(json.dumps(inclusion))
    wrong = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "wrong.pub.pem").write_bytes(
        wrong.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return env


def test_offline_checks_lead_with_the_real_cause(served: Demo, tmp_path: Path):
    env = _fetch(served, tmp_path)

    def run(command: str) -> subprocess.CompletedProcess:
        return _run(command, env, tmp_path)

    # A wrong key: the first thing said is that the signature does not verify under it; no talk of replays.
    wrong = run("voucher-engine ledger verify --csv ledger.csv --checkpoint cp.json --public-key wrong.pub.pem")
    assert wrong.returncode == 1
    failed = next(line for line in wrong.stdout.splitlines() if line.startswith("FAILED"))
    assert failed.startswith("FAILED at seq 1: checkpoint: the checkpoint's signature does not verify under the pinned")
    assert "replayed" not in wrong.stdout, wrong.stdout
    proof = run("voucher-engine ledger check-proof --transaction tx.json --proof proof.json --public-key wrong.pub.pem")
    assert proof.returncode == 1 and proof.stdout.startswith(
        "FAILED: the checkpoint's signature does not verify under the pinned key"
    )
    assert "replayed" not in proof.stdout
    # No --checkpoint: said so, first.
    bare = run("voucher-engine ledger verify --csv ledger.csv --public-key ledger.pub.pem")
    failed = next(line for line in bare.stdout.splitlines() if line.startswith("FAILED"))
    assert bare.returncode == 1 and failed.startswith("FAILED at seq 1: checkpoint: no checkpoint was given")
    assert "replayed" not in bare.stdout

    # An old checkpoint whose signature verifies: now it is what a replay looks like, and it says so.
    old = run("voucher-engine ledger verify --csv ledger.csv --checkpoint cp-1.json --public-key ledger.pub.pem")
    failed = next(line for line in old.stdout.splitlines() if line.startswith("FAILED"))
    assert old.returncode == 1 and failed.startswith(
        "FAILED at seq 2: checkpoint: the newest checkpoint given covers 1"
    )
    assert "its signature verifies" in failed and "replaying an old checkpoint" in failed

    # check-consistency, beside check-proof (docs/ledger.md's run shows it passing): a "newer" checkpoint that is
    # older than the first is the replay, and says so.
    swapped = run(
        "voucher-engine ledger check-consistency --first cp.json --second cp-1.json --proof consistency.json"
        " --public-key ledger.pub.pem"
    )
    assert swapped.returncode == 1 and "older than the first" in swapped.stdout and "replayed" in swapped.stdout


def _with_terminal_stderr(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes, str]:
    """Run with standard error on a pseudo-terminal (as in a person's shell) and standard output piped."""
    master, slave = pty.openpty()
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            seen.extend(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    return process.returncode, stdout, seen.decode(errors="replace")


def test_verify_and_export_show_progress_on_a_terminal_only(served: Demo, tmp_path: Path):
    env = _sourced(served.cwd / "ve-demo-data" / "demo.env")
    piped = subprocess.run([*CLI, "ledger", "export", "--out", "-"], env=env, cwd=tmp_path, capture_output=True)
    assert piped.returncode == 0 and piped.stderr == b"", piped  # silent when standard error is not a terminal
    code, stdout, terminal = _with_terminal_stderr([*CLI, "ledger", "export", "--out", "-"], env, tmp_path)
    assert code == 0 and "exporting" in terminal and "transactions" in terminal, terminal
    assert stdout.startswith(b"seq,id,kind,at,postings,refs,hash,prev_hash\n")
    # The same rows either way (the terminal's run came later: the ledger may have grown meanwhile).
    assert stdout.splitlines()[: len(piped.stdout.splitlines())] == piped.stdout.splitlines()

    code, stdout, terminal = _with_terminal_stderr([*CLI, "ledger", "verify"], env, tmp_path)
    assert code == 0 and "verifying" in terminal, terminal
    lines = stdout.decode().splitlines()
    assert lines[0].startswith("transactions: ") and lines[-1] == (
        "OK: every hash, the tree, every checkpoint signature and every balance verify"
    )
