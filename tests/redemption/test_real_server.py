"""5,000 redemption attempts on 1,000 vouchers from 50 clients against a real `voucher-engine serve --workers 2`:
exactly 1,000 succeed, each once, and the books balance. Separate worker processes race on the same rows."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import orjson
from redemption_world import holder

from voucher_engine.ledger import service as ledger
from voucher_engine.merchants.client import signed_headers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_5000_attempts_on_1000_vouchers_from_50_clients(world):
    svc = world.service
    await world.set_clock("2025-01-15T12:00:00+08:00")
    holders = [holder(f"63{i:014d}") for i in range(1000)]
    campaign = await world.launch("shanghai-dining-2025.contract", holders)
    auditor = svc.auth(await svc.token("auditor"))
    codes: dict[str, str] = {}
    for h in holders:
        listed = await svc.client.get(f"/v1/wallets/{h['wallet_id']}/vouchers", headers=auditor)
        codes[h["wallet_id"]] = listed.json()["items"][0]["code"]

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_")}
    env.update(DATABASE_URL=svc.settings.database_url, VE_DATA_DIR=str(svc.settings.data_dir))
    # Its log to a file: a pipe nobody reads would stop the server once its request lines (one each) filled it.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, "-m", "voucher_engine.cli", "serve", "--workers", "2", "--port", str(port), "--test-clock"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (log.seek(0), log.read().decode()[-3000:])[1]
            assert time.monotonic() < deadline, "server not ready"
            await asyncio.sleep(0.2)

        till = world.tills["xuhui-noodles"]
        attempts = [(wallet, code, f"{wallet}-{n}") for wallet, code in codes.items() for n in range(5)]
        random.Random(5).shuffle(attempts)
        statuses: list[int] = []

        async def client(chunk):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for wallet, code, pos_txn_id in chunk:
                    body = orjson.dumps(
                        {"voucher_code": code, "wallet_id": wallet, "pos_txn_id": pos_txn_id, "order_amount_fen": 12000}
                    )
                    headers = signed_headers(till.key_id, till.secret, "POST", "/v1/redemptions", body)
                    statuses.append((await http.post("/v1/redemptions", content=body, headers=headers)).status_code)

        await asyncio.gather(*(client(attempts[i::50]) for i in range(50)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    assert len(statuses) == 5000
    assert statuses.count(201) == 1000, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(409) == 4000, {s: statuses.count(s) for s in set(statuses)}
    async with svc.state.engine.begin() as conn:
        assert await ledger.balance(conn, f"escrow:{campaign}") == 10_000_000_00 - 1000 * 2000
        assert await ledger.balance(conn, "merchant:xuhui-noodles") == 1000 * 2000
        redeemed = (
            await conn.exec_driver_sql(
                "SELECT count(*), count(DISTINCT voucher_id) FROM redemptions WHERE campaign_id = $1", (campaign,)
            )
        ).one()
    assert tuple(redeemed) == (1000, 1000)
    detail = (await svc.client.get(f"/v1/campaigns/{campaign}", headers=svc.admin)).json()
    assert detail["totals"]["vouchers_redeemed"] == 1000
