"""Money governance against a real `voucher-engine serve --workers 2`, over real connections:

- 20 fundings of one issuer race (20 connections at once, both workers) against one appropriation: together they
  never exceed it, and exactly as many as fit are funded;
- a revoked token is refused at once by every worker, on the general path and on the claims fast path, whether it
  was revoked over the API or with `voucher-engine token revoke`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from reliability_helpers import RealServer, create_database, drop_database, start_service

CLI = [sys.executable, "-m", "voucher_engine.cli"]

CAMPAIGN = """campaign "Race {n}" issuer 310000
budget ¥1,000
voucher fixed: ¥10 off
quantity 100
valid from 2025-01-01 to 2034-12-31 China time
"""


def _env(service) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_")}
    env.update(DATABASE_URL=service.settings.database_url, VE_DATA_DIR=str(service.settings.data_dir))
    return env


@dataclass
class Arena:
    service: Any
    base: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def arena(server_url, template_database, tmp_path_factory):
    """A database of its own, the app in process over it (for setting up), and a real two-worker server over the
    same database (for the races); shared by this module's tests, which use issuers of their own."""
    name, url = await create_database(server_url, template_database)
    data_dir = tmp_path_factory.mktemp("governance") / "data"
    service, close = await start_service(url, data_dir)
    server = None
    try:
        server = RealServer(url, data_dir, workers=2, pool_size=12)
        # Generous: the machine these run on may be shared with other suites.
        await server.ready(timeout_s=180)
        yield Arena(service, server.base_url)
    finally:
        if server is not None:
            server.stop()
        await close()
        await drop_database(server_url, name)


async def _at_once(base: str, requests: list[tuple[str, str, dict]]) -> list[httpx.Response]:
    """Each request on a connection of its own, all sent together."""
    barrier = asyncio.Barrier(len(requests))

    async def one(method: str, path: str, headers: dict) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            await client.get("/healthz")  # the connection is open before the race starts
            await barrier.wait()
            return await client.request(method, path, headers=headers)

    return await asyncio.gather(*(one(*request) for request in requests))


async def test_20_racing_fundings_never_exceed_one_appropriation(arena):
    service, server = arena.service, arena.base
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


async def test_a_revoked_token_is_refused_at_once_by_every_worker(arena):
    service, server = arena.service, arena.base
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
