"""The settlement tests' world: the redemption tests' till and campaign launcher, four Shanghai restaurants, an
auditor, and helpers that read balances and statements the way an operator and an auditor would."""

from __future__ import annotations

import base64
import importlib.util
import io
import sys
from pathlib import Path


def _load(name: str, path: Path):
    """A shared test module, loaded once by path under a name of its own."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_rw = _load(
    "ve_settlement_redemption_world", Path(__file__).resolve().parents[1] / "redemption" / "redemption_world.py"
)
Till, World, holder, CONTRACTS = _rw.Till, _rw.World, _rw.holder, _rw.CONTRACTS

RESTAURANTS = ("rest-a", "rest-b", "rest-c", "rest-h")
DINING = (CONTRACTS / "shanghai-dining-2025.contract").read_text()
SUBSIDY = 2000  # spend ¥100, get ¥20 off: a ¥120 order earns the merchant 2000 fen
BUDGET = 1_000_000_000


def wallet(i: int) -> str:
    return f"62000000{i:08d}"


class SettlementWorld(World):
    async def launch_dining(self, holders: int, *, source: str = DINING) -> tuple[str, list[str]]:
        wallets = [wallet(i) for i in range(1, holders + 1)]
        campaign_id = await self.launch("", [holder(w) for w in wallets], source=source)
        codes = [await self.code(campaign_id, w) for w in wallets]
        return campaign_id, list(zip(wallets, codes))

    async def redeem(self, merchant_id: str, wallet_code: tuple[str, str], amount_fen: int = 12000) -> dict:
        wallet_id, code = wallet_code
        answer = await self.tills[merchant_id].redeem(code, amount_fen, wallet=wallet_id)
        assert answer.status_code == 201, answer.text
        return answer.json()

    async def balance(self, account: str) -> int:
        answer = await self.service.client.get(f"/v1/ledger/accounts/{account}", headers=self.auditor)
        if answer.status_code == 404:
            return 0  # never opened: holds nothing
        assert answer.status_code == 200, answer.text
        return answer.json()["balance_fen"]

    async def balances(self, merchant_id: str) -> dict[str, int]:
        return {kind: await self.balance(f"{kind}:{merchant_id}") for kind in ("merchant", "payout", "settled")}

    async def run(self, cutoff: str) -> dict:
        answer = await self.service.client.post("/v1/payout-runs", json={"cutoff": cutoff}, headers=self.service.admin)
        assert answer.status_code == 201, answer.text
        return answer.json()

    async def confirm(self, run_id: str, items: list[tuple[str, str]], expect: int = 200) -> dict:
        body = {"items": [{"item_id": i, "status": s, "bank_reference": f"BANK-{i}"} for i, s in items]}
        answer = await self.service.client.post(
            f"/v1/payout-runs/{run_id}/confirmations", json=body, headers=self.service.admin
        )
        assert answer.status_code == expect, answer.text
        return answer.json()

    async def clawback(self, redemption_id: str, headers: dict | None = None, expect: int = 201) -> dict:
        answer = await self.service.client.post(
            f"/v1/redemptions/{redemption_id}/clawback",
            json={"reason": "fraud confirmed"},
            headers=headers or self.service.admin,
        )
        assert answer.status_code == expect, answer.text
        return answer.json()


async def build(service) -> SettlementWorld:
    world = SettlementWorld(service)
    world.issuers = {}
    for region in ("000000", "310000", "310104"):
        issuer_id = await service.issuer(region)
        world.issuers[region] = issuer_id
        world.gov[region] = await service.token("gov", issuer_id)
    world.auditor = service.auth(await service.token("auditor"))
    for merchant_id in RESTAURANTS:
        await service.merchant(merchant_id, mcc="5812", region_code="310104")
        key = await service.pos_key(merchant_id)
        world.tills[merchant_id] = Till(service, merchant_id, key["key_id"], key["secret"])
    return world


async def assert_verified(service) -> None:
    """`voucher-engine ledger verify` over the test's database (every hash, balance, total and kind's shape), and
    the reliability suite's books checks (per merchant: settled + payout + merchant = credited - refunds - clawbacks;
    payout and settled accounts equal their items; every clawback and item has its ledger transactions)."""

    from voucher_engine.ledger import verify

    report = await verify.verify_database(service.state.engine, None)
    assert report.ok, report.document()
    # The auditor's offline check: the whole export and a signed checkpoint, against the pinned key.
    auditor = service.auth(await service.token("auditor"))
    # Signing a checkpoint writes: the operator's (auditors are read-only); the auditor then reads it.
    made = await service.client.post("/v1/ledger/checkpoints", headers=service.admin)
    assert made.status_code == 201, made.text
    key = (await service.client.get("/v1/ledger/public-key")).json()["public_key"]
    export = await service.client.get("/v1/ledger/export?format=csv", headers=auditor)
    assert export.status_code == 200, export.text
    offline = verify.verify_csv(io.StringIO(export.text), base64.b64decode(key), [made.json()])
    assert offline.ok and offline.transactions == made.json()["tree_size"], offline.document()
    assert await books_problems(service) == {}


async def books_problems(service) -> dict:
    """The reliability suite's books checks (SQL over the ledger and settlement tables) on the test's database."""
    import asyncpg

    from voucher_engine.db.engine import plain_url

    books = _load("ve_settlement_books", Path(__file__).resolve().parents[1] / "reliability" / "reliability_books.py")
    conn = await asyncpg.connect(plain_url(service.settings.database_url))
    try:
        return await books.books_problems(conn)
    finally:
        await conn.close()


CO_FUNDED = (
    DINING.replace("budget ¥10,000,000", "budget ¥2,000")
    .replace("quantity 500,000", "quantity 100")
    .replace("    310000: 100%        # Shanghai municipal finance", "    310000: 70%\n    310104: 30%")
)


async def launch_co_funded(world: SettlementWorld, holders: int) -> tuple[str, list[tuple[str, str]]]:
    """The dining contract at ¥2,000, funded 70 % by the city and 30 % by Xuhui district (which consents first,
    where the engine asks for consent)."""
    client, city = world.service.client, world.service.auth(world.gov["310000"])
    created = await client.post("/v1/campaigns", json={"source": CO_FUNDED}, headers=city)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    approve = f"/v1/campaigns/{campaign_id}/funders/{world.issuers['310104']}/approve"
    approved = await client.post(approve, headers=world.service.auth(world.gov["310104"]))
    assert approved.status_code in (200, 201, 404, 405), approved.text  # 404/405: no consent step on this build
    for action in ("fund", "activate"):
        moved = await client.post(f"/v1/campaigns/{campaign_id}/{action}", headers=city)
        assert moved.status_code == 200, moved.text
    wallets = [wallet(100 + i) for i in range(holders)]
    issued = await client.post(
        f"/v1/campaigns/{campaign_id}/issuances", json={"holders": [holder(w) for w in wallets]}, headers=city
    )
    assert issued.status_code == 201, issued.text
    return campaign_id, [(w, await world.code(campaign_id, w)) for w in wallets]
