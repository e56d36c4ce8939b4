"""Money governance against a real `voucher-engine serve --workers 2`, over real connections:

- 20 fundings of one issuer race (20 connections at once, both workers) against one appropriation: together they
  never exceed it, and exactly as many as fit are funded;
- a revoked token is refused at once by every worker, on the general path and on the claims fast path, whether it
  was revoked over the API or with `voucher-engine token revoke`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest_asyncio

CLI = [sys.executable, "-m", "voucher_engine.cli"]

CAMPAIGN = """campaign "Race {n}" issuer 310000
budget ¥1,000
voucher fixed: ¥10 off
quantity 100
valid from 2025-01-01 to 2034-12-31 China time
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(service) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_")}
    env.update(
        DATABASE_URL=service.settings.database_url, VE_DATA_DIR=str(service.settings.data_dir), VE_DB_POOL_SIZE="12"
    )
    return env


@pytest_asyncio.fixture(loop_scope="session")
async def server(service):
    """The service's database served by a real two-worker server; answers its base URL."""
    port = _free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--workers", "2", "--port", str(port)],
        env=_env(service),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "server not ready"
            await asyncio.sleep(0.2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _at_once(base: str, requests: list[tuple[str, str, dict]]) -> list[httpx.Response]:
    """Each request on a connection of its own, all sent together."""
    barrier = asyncio.Barrier(len(requests))

    async def one(method: str, path: str, headers: dict) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            await client.get("/healthz")  # the connection is open before the race starts
            await barrier.wait()
            return await client.request(method, path, headers=headers)

    return await asyncio.gather(*(one(*request) for request in requests))


async def test_20_racing_fundings_never_exceed_one_appropriation(service, server):
    issuer_id = await service.issuer("310000")
    gov = service.auth(await service.token("gov", issuer_id))
    budget_fen = 100_000
    ceiling_fen = 7 * budget_fen + budget_fen // 2
    patched = await service.client.patch(
        f"/v1/issuers/{issuer_id}", json={"appropriation_fen": ceiling_fen}, headers=service.admin
    )
    assert patched.status_code == 200, patched.text
    ids = []
    for n in range(20):
        created = await service.client.post("/v1/campaigns", json={"source": CAMPAIGN.format(n=n)}, headers=gov)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])

    answers = await _at_once(server, [("POST", f"/v1/campaigns/{cid}/fund", gov) for cid in ids])

    outcomes = Counter(
        (answer.status_code, answer.json().get("code") if answer.status_code != 200 else "ok") for answer in answers
    )
    assert outcomes == {(200, "ok"): 7, (409, "INSUFFICIENT_FUNDS"): 13}, outcomes
    shown = (await service.client.get(f"/v1/issuers/{issuer_id}", headers=service.admin)).json()
    assert shown["committed_fen"] == 7 * budget_fen <= ceiling_fen
    funded = [cid for cid, answer in zip(ids, answers) if answer.status_code == 200]
    for cid in ids:
        detail = (await service.client.get(f"/v1/campaigns/{cid}", headers=gov)).json()
        assert detail["status"] == ("funded" if cid in funded else "draft")
        assert detail["totals"]["funded_fen"] == (budget_fen if cid in funded else 0)


async def test_a_revoked_token_is_refused_at_once_by_every_worker(service, server):
    issuer_id = await service.issuer("330000")
    made = await service.client.post("/v1/tokens", json={"role": "gov", "issuer_id": issuer_id}, headers=service.admin)
    token_id, token = made.json()["id"], made.json()["token"]
    gov = service.auth(token)
    claim = ("POST", "/v1/campaigns/cmp_none/claims", gov)
    listing = ("GET", "/v1/campaigns", gov)

    # In use on both paths, over many connections (both workers take some).
    before = await _at_once(server, [listing, claim] * 12)
    # (The claim has no body: once authenticated it is refused for that, not for its token.)
    assert {a.status_code for a in before[0::2]} == {200} and 401 not in {a.status_code for a in before[1::2]}

    async with httpx.AsyncClient(base_url=server) as admin:
        revoked = await admin.delete(f"/v1/tokens/{token_id}", headers=service.admin)
    assert revoked.status_code == 204, revoked.text

    after = await _at_once(server, [listing, claim] * 12)
    assert [a.status_code for a in after] == [401] * 24
    assert {a.json()["code"] for a in after} == {"UNAUTHENTICATED"}

    # The same through the command line.
    made = await service.client.post("/v1/tokens", json={"role": "auditor"}, headers=service.admin)
    auditor_id, auditor = made.json()["id"], service.auth(made.json()["token"])
    assert {a.status_code for a in await _at_once(server, [("GET", "/v1/campaigns", auditor)] * 8)} == {200}
    done = await asyncio.to_thread(
        subprocess.run, [*CLI, "token", "revoke", auditor_id], env=_env(service), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert {a.status_code for a in await _at_once(server, [("GET", "/v1/campaigns", auditor)] * 8)} == {401}

    # The listing shows both, revoked, with their last use; never a secret.
    listed = await service.client.get("/v1/tokens", headers=service.admin)
    rows = {row["id"]: row for row in listed.json()["items"]}
    for revoked_id in (token_id, auditor_id):
        assert rows[revoked_id]["revoked_at"] and rows[revoked_id]["last_used_at"]
    assert token not in listed.text
    out = await asyncio.to_thread(
        subprocess.run, [*CLI, "token", "list"], env=_env(service), capture_output=True, text=True
    )
    assert (
        out.returncode == 0
        and auditor_id in out.stdout
        and '"revoked_at":null' not in out.stdout.split(auditor_id)[1].split("\n")[0]
    )
