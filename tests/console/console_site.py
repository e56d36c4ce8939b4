"""The console tests' site: data made through the public API, and a served instance over it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
from redemption_world import CONTRACTS as WORLD_CONTRACTS
from redemption_world import ISSUER_REGIONS, MERCHANTS, Till, World, holder

from voucher_engine.ledger import sequencer
from voucher_engine.risk import detector
from voucher_engine.stats import service as stats

EXTRA_MERCHANTS = {"jingan-bar": ("5813", "310106", []), "pudong-fastfood": ("5814", "310115", [])}
HOSTILE_NAME = '<img src=x onerror="document.title=1">Odd & Co'
MERCHANT_BODY = {"mcc": "5812", "region_code": "310104", "settlement_wallet": "0000000000000009", "tags": []}
SPEND = [  # (day, merchant, order fen) for the dining campaign: 11 redemptions on four days at three merchants
    ("2025-01-05T11:30:00+08:00", "xuhui-noodles", 12000),
    ("2025-01-05T12:10:00+08:00", "jingan-bar", 25000),
    ("2025-01-05T19:00:00+08:00", "pudong-fastfood", 10500),
    ("2025-01-06T12:00:00+08:00", "xuhui-noodles", 18800),
    ("2025-01-06T18:30:00+08:00", "xuhui-noodles", 30000),
    ("2025-01-06T20:45:00+08:00", "jingan-bar", 15000),
    ("2025-01-07T12:15:00+08:00", "pudong-fastfood", 11000),
    ("2025-01-07T13:00:00+08:00", "xuhui-noodles", 42000),
    ("2025-01-08T11:50:00+08:00", "jingan-bar", 16600),
    ("2025-01-08T12:30:00+08:00", "pudong-fastfood", 20000),
    ("2025-01-08T18:00:00+08:00", "xuhui-noodles", 13300),
]
# Two more, at hours when the shop is shut (docs/risk.md: restaurants 03:00–06:00, fast food 04:00–06:00): the
# redemption batch opens an odd_hour risk flag (outcome flag) for each, for the risk view to show and decide.
ODD_HOURS = [
    ("2025-01-09T04:10:00+08:00", "xuhui-noodles", 15000),
    ("2025-01-09T04:40:00+08:00", "pudong-fastfood", 12500),
]


@dataclass
class Site:
    tokens: dict[str, str]  # role -> bearer token (gov: Shanghai; cofunder: the Xuhui government, a gov)
    dining: str  # campaign ids
    elderly: str
    redemption_ids: list[str]
    ledger_tx_ids: list[str]
    odd_hour_ids: list[str]  # the redemptions that opened the two odd_hour flags
    issuers: dict[str, str] = field(default_factory=dict)
    base_url: str = ""


async def build(service) -> Site:
    world = World(service)
    issuers = {}
    for region in ISSUER_REGIONS:
        issuers[region] = await service.issuer(region, name=f"财政 {region}")
        world.gov[region] = await service.token("gov", issuers[region])
    for merchant_id, (mcc, region, tags) in {**MERCHANTS, **EXTRA_MERCHANTS}.items():
        await service.merchant(merchant_id, mcc=mcc, region_code=region, tags=tags)
        key = await service.pos_key(merchant_id)
        world.tills[merchant_id] = Till(service, merchant_id, key["key_id"], key["secret"])
    hostile = {**MERCHANT_BODY, "name": HOSTILE_NAME}
    assert (await service.client.put("/v1/merchants/odd-name", json=hostile, headers=service.admin)).status_code < 300
    await world.set_clock("2025-01-04T09:00:00+08:00")
    wallets = [f"62000000000002{i:02d}" for i in range(len(SPEND) + len(ODD_HOURS))]
    dining = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
    settled = []
    for (when, merchant, order_fen), wallet in zip(SPEND, wallets[: len(SPEND)], strict=True):
        await world.set_clock(when)
        answer = await world.tills[merchant].redeem(await world.code(dining, wallet), order_fen, wallet=wallet)
        assert answer.status_code == 201, answer.text
        settled.append(answer.json())
    await world.set_clock("2025-01-08T20:00:00+08:00")
    refund = await world.tills["xuhui-noodles"].refund(settled[7]["id"], 21000, reason="partial return")
    assert refund.status_code == 201, refund.text
    odd = []
    for (when, merchant, order_fen), wallet in zip(ODD_HOURS, wallets[len(SPEND) :], strict=True):
        await world.set_clock(when)
        answer = await world.tills[merchant].redeem(await world.code(dining, wallet), order_fen, wallet=wallet)
        assert answer.status_code == 201, answer.text
        odd.append(answer.json())  # each opens its odd_hour flag in the redemption batch (docs/risk.md)
    await world.set_clock("2025-01-09T09:00:00+08:00")
    gov = service.auth(world.gov["310000"])
    elderly = await service.client.post(
        "/v1/campaigns",
        json={"source": (WORLD_CONTRACTS / "elderly-home-adaptation.contract").read_text()},
        headers=gov,
    )
    assert elderly.status_code == 201, elderly.text
    await sequencer.drain(service.state.engine)
    await stats.catch_up(service.state.engine)
    await detector.catch_up(service.state.engine)
    auditor = await service.token("auditor")
    made = await service.client.post("/v1/ledger/checkpoints", headers=service.admin)
    assert made.status_code in (200, 201), made.text
    return Site(
        tokens={
            "gov": world.gov["310000"],
            "cofunder": world.gov["310104"],
            "auditor": auditor,
            "admin": service.admin_token,
        },
        dining=dining,
        elderly=elderly.json()["id"],
        redemption_ids=[r["id"] for r in settled],
        ledger_tx_ids=[r["ledger_tx_id"] for r in settled],
        odd_hour_ids=[r["id"] for r in odd],
        issuers=issuers,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(database_url: str, data_dir) -> tuple[subprocess.Popen, str]:
    """`voucher-engine serve` over the site's database (one worker, the ledger in its own process)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_")}
    # The webhook test subscribes a loopback receiver that is never there (port 9): deliveries fail and are retried.
    env.update(
        DATABASE_URL=database_url, VE_DATA_DIR=str(data_dir), VE_LOG_LEVEL="warning", VE_WEBHOOK_ALLOW_PRIVATE="1"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "voucher_engine.cli", "serve", "--workers", "1", "--port", str(port), "--test-clock"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the console test server did not start")
        time.sleep(0.2)
