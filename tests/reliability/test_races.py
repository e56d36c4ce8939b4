"""Races, over many real connections to a real `voucher-engine serve --workers 2` (two processes racing on the same
rows through PostgreSQL), each released at the same instant: the same envelope's balance, the same claim stock, the
same idempotency key (redemptions and refunds), refunds against a close, and the last fen of a daily cap. Exactly
once, every time, and the books balance after each.

(In-process races — two tills on one voucher, 20 concurrent retries, 2,000 claims on 500 stock, 5,000 attempts on
1,000 vouchers against a real server — are in tests/redemption and tests/campaigns.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest_asyncio
from reliability_helpers import (
    RealServer,
    assert_books_balance,
    build_world,
    create_database,
    drop_database,
    start_service,
)

from voucher_engine.campaigns.codes import make_codes
from voucher_engine.merchants.client import signed_headers

NOW = "2025-03-10T12:00:00+08:00"


def contract(
    name: str,
    voucher: str,
    *,
    distribution: str = "targeted",
    extra: str = "",
    budget: str = "¥10,000",
    quantity: int = 100,
) -> str:
    return f"""campaign "{name}" issuer 310000
budget {budget}
funders {{
    310000: 60%
    310104: 40%
}}
voucher {voucher}
quantity {quantity}
{extra}
distribution {distribution}
valid during 2025
payment {{
    merchant.region within 310000
}}
"""


class Arena:
    """The in-process service (for setting up), its world, and the real two-worker server the races go to."""

    def __init__(self, service, world, server: RealServer):
        self.service = service
        self.world = world
        self.server = server
        self.gov = service.auth(world.gov["310000"])
        self.till = world.tills["xuhui-noodles"]

    async def campaign(self, source: str, wallets: list[str]) -> tuple[str, dict[str, str]]:
        """Create, fund, activate and issue one voucher to each wallet: (campaign id, code by wallet)."""
        holders = [{"wallet_id": w, "id_hash": "h-" + w, "attributes": {}} for w in wallets]
        campaign_id = await self.world.launch("", holders, source=source)
        async with self.service.state.engine.connect() as conn:
            rows = (
                await conn.exec_driver_sql("SELECT wallet_id, id FROM vouchers WHERE campaign_id = $1", (campaign_id,))
            ).all()
        codes = make_codes(self.service.state.server_secret, campaign_id, [row.id for row in rows])
        return campaign_id, {row.wallet_id: code for row, code in zip(rows, codes)}

    async def race(self, calls: list[tuple[str, str, Any, str]]) -> list[httpx.Response]:
        """Send every (method, path, body, who) at once, each over a connection of its own; who is "till" (signed)
        or "gov". Every client connects first, then all are released together."""
        clients = [httpx.AsyncClient(base_url=self.server.base_url, timeout=60) for _ in calls]
        try:
            await asyncio.gather(*(client.get("/healthz") for client in clients))  # connections open and warm
            go = asyncio.Event()

            async def one(client: httpx.AsyncClient, method: str, path: str, body: Any, who: str):
                raw = orjson.dumps(body) if body is not None else b""
                if who == "till":
                    headers = signed_headers(self.till.key_id, self.till.secret, method, path, raw)
                else:
                    headers = {**self.gov, "Content-Type": "application/json"}
                await go.wait()
                return await client.request(method, path, content=raw, headers=headers)

            tasks = [asyncio.create_task(one(client, *call)) for client, call in zip(clients, calls)]
            await asyncio.sleep(0.05)
            go.set()
            return list(await asyncio.gather(*tasks))
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    async def sql(self, statement: str, *args) -> list:
        async with self.service.state.engine.connect() as conn:
            return (await conn.exec_driver_sql(statement, args)).all()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def arena(server_url, template_database, tmp_path_factory):
    name, url = await create_database(server_url, template_database)
    data_dir = tmp_path_factory.mktemp("races") / "data"
    service, close = await start_service(url, data_dir, test_clock=True)
    server = None
    try:
        world = await build_world(service)
        await world.set_clock(NOW)
        server = RealServer(url, data_dir, workers=2, pool_size=20)
        await server.ready()
        yield Arena(service, world, server)
    finally:
        if server is not None:
            server.stop()
        await close()
        await drop_database(server_url, name)


def _codes(responses: list[httpx.Response]) -> Counter:
    return Counter(r.json().get("code", r.status_code) if r.status_code >= 400 else r.status_code for r in responses)


def _wallets(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:0{16 - len(prefix)}d}" for n in range(count)]


async def test_forty_payments_race_for_one_envelopes_balance(arena):
    """A ¥200 envelope, 40 payments of ¥30 at once: six pay ¥30, one pays the last ¥20, the rest are refused; the
    envelope pays out exactly its face value."""
    wallet = "7100000000000001"
    campaign, codes = await arena.campaign(contract("Race envelope", "balance: ¥200", quantity=10), [wallet])
    calls = [
        (
            "POST",
            "/v1/redemptions",
            {"voucher_code": codes[wallet], "wallet_id": wallet, "pos_txn_id": f"env-{n}", "order_amount_fen": 3000},
            "till",
        )
        for n in range(40)
    ]
    answers = await arena.race(calls)
    settled = [r.json() for r in answers if r.status_code == 201]
    assert _codes(answers) == Counter({201: 7, "VOUCHER_ALREADY_REDEEMED": 33}), _codes(answers)
    assert sorted(s["subsidy_fen"] for s in settled) == [2000] + [3000] * 6
    assert sum(s["subsidy_fen"] for s in settled) == 20000
    (balance,) = (await arena.sql("SELECT balance_fen FROM vouchers WHERE campaign_id = $1", campaign))[0]
    assert balance == 0
    await assert_books_balance(arena.service.settings.database_url)


async def test_ninety_claims_race_for_thirty_vouchers_across_workers(arena):
    source = contract(
        "Race claims", "fixed ¥10 off", distribution="first come, first served", quantity=30, budget="¥300"
    )
    campaign = await arena.world.launch("", [], source=source)
    wallets = _wallets("72", 90)
    calls = [
        ("POST", f"/v1/campaigns/{campaign}/claims", {"wallet_id": w, "id_hash": "h-" + w, "attributes": {}}, "gov")
        for w in wallets
    ]
    answers = await arena.race(calls)
    assert _codes(answers) == Counter({201: 30, "SOLD_OUT": 60}), _codes(answers)
    won = {r.json()["wallet_id"] for r in answers if r.status_code == 201}
    rows = await arena.sql("SELECT wallet_id FROM vouchers WHERE campaign_id = $1", campaign)
    assert {row.wallet_id for row in rows} == won and len(rows) == 30


async def test_one_idempotency_key_raced_from_forty_connections(arena):
    """30 copies of one till transaction and 10 conflicting bodies under the same pos_txn_id, at once: one
    redemption, every 2xx is that redemption, every other answer is IDEMPOTENCY_CONFLICT; then the same for one
    refund_id, and for distinct refunds that together exceed the order."""
    wallet = "7300000000000001"
    campaign, codes = await arena.campaign(contract("Race idempotency", "threshold: spend ¥50, get ¥20 off"), [wallet])
    body = {"voucher_code": codes[wallet], "wallet_id": wallet, "pos_txn_id": "same-till-txn", "order_amount_fen": 6000}
    calls = [("POST", "/v1/redemptions", body, "till")] * 30
    calls += [("POST", "/v1/redemptions", {**body, "order_amount_fen": 6001 + n}, "till") for n in range(10)]
    answers = await arena.race(calls)
    ok = [r for r in answers if r.status_code < 300]
    assert Counter(r.status_code for r in ok)[201] == 1, _codes(answers)
    assert len({r.json()["id"] for r in ok}) == 1
    assert all(r.json()["code"] == "IDEMPOTENCY_CONFLICT" for r in answers if r.status_code >= 300), _codes(answers)
    winner = next(r.json() for r in ok if r.status_code == 201)
    assert all(r.json() == winner for r in ok)
    rows = await arena.sql("SELECT id FROM redemptions WHERE pos_txn_id = 'same-till-txn'")
    assert [row.id for row in rows] == [winner["id"]]

    path = f"/v1/redemptions/{winner['id']}/refunds"
    refund = {"refund_id": "same-refund", "amount_fen": 1000, "reason": "race"}
    answers = await arena.race([("POST", path, refund, "till")] * 20)
    assert Counter(r.status_code for r in answers) == Counter({201: 1, 200: 19}), _codes(answers)
    assert len({orjson.dumps(r.json()) for r in answers}) == 1
    # Distinct refunds of ¥10 each on what is left (¥50 of the ¥60 order): five fit, fifteen are refused.
    answers = await arena.race(
        [("POST", path, {"refund_id": f"part-{n}", "amount_fen": 1000, "reason": "race"}, "till") for n in range(20)]
    )
    assert _codes(answers) == Counter({201: 5, "REFUND_EXCEEDS_ORDER": 15}), _codes(answers)
    ((refunded, clawed),) = await arena.sql(
        "SELECT refunded_fen, subsidy_refunded_fen FROM redemptions WHERE id = $1", winner["id"]
    )
    assert refunded == 6000 and clawed == 2000
    await assert_books_balance(arena.service.settings.database_url)


async def test_refunds_race_a_close(arena):
    """20 full refunds and the campaign's close, at once: whichever lands first, every refund settles once, the
    clawback of any refund after the close goes on to the funders, and the closed escrow is empty to the fen."""
    wallets = _wallets("74", 20)
    campaign, codes = await arena.campaign(
        contract("Race close", "threshold: spend ¥50, get ¥20 off", budget="¥1,000.03", quantity=50), wallets
    )
    paid = []
    for wallet in wallets:
        response = await arena.till.redeem(codes[wallet], 6000, wallet=wallet)
        assert response.status_code == 201, response.text
        paid.append(response.json())
    calls = [
        (
            "POST",
            f"/v1/redemptions/{p['id']}/refunds",
            {"refund_id": "back", "amount_fen": 6000, "reason": "race"},
            "till",
        )
        for p in paid
    ]
    calls.insert(10, ("POST", f"/v1/campaigns/{campaign}/close", None, "gov"))
    answers = await arena.race(calls)
    assert answers[10].status_code == 200 and answers[10].json()["status"] == "closed", answers[10].text
    refunds = answers[:10] + answers[11:]
    assert all(r.status_code == 201 for r in refunds), _codes(refunds)
    assert all(r.json()["subsidy_clawback_fen"] == 2000 for r in refunds)
    detail = (await arena.service.client.get(f"/v1/campaigns/{campaign}", headers=arena.gov)).json()
    totals = detail["totals"]
    assert totals["outstanding_fen"] == 0
    assert totals["redeemed_fen"] == totals["refunded_fen"] == 20 * 2000
    assert totals["returned_fen"] == totals["funded_fen"] == 1_000_03
    recon = await arena.service.client.get(
        f"/v1/ledger/campaigns/{campaign}/reconciliation",
        headers=arena.service.auth(await arena.service.token("auditor")),
    )
    assert recon.json()["balanced"] is True, recon.text
    await assert_books_balance(arena.service.settings.database_url)


async def test_the_last_fen_of_a_daily_cap(arena):
    """A daily cap of ¥30.01 and vouchers paying 100% up to ¥10: 40 payments of ¥10 at once settle exactly three
    (¥30.00); then 20 payments of 1 fen at once settle exactly one — the last fen — and the day is spent to the cap."""
    wallets = _wallets("75", 60)
    source = contract("Race cap", "percent: 100% off, up to ¥10", extra="daily cap ¥30.01", budget="¥1,000")
    campaign, codes = await arena.campaign(source, wallets)

    def pay(wallet: str, amount_fen: int):
        return (
            "POST",
            "/v1/redemptions",
            {
                "voucher_code": codes[wallet],
                "wallet_id": wallet,
                "pos_txn_id": f"cap-{wallet}",
                "order_amount_fen": amount_fen,
            },
            "till",
        )

    answers = await arena.race([pay(w, 1000) for w in wallets[:40]])
    assert _codes(answers) == Counter({201: 3, "DAILY_BUDGET_EXHAUSTED": 37}), _codes(answers)
    answers = await arena.race([pay(w, 1) for w in wallets[40:]])
    assert _codes(answers) == Counter({201: 1, "DAILY_BUDGET_EXHAUSTED": 19}), _codes(answers)
    ((spent, cap),) = await arena.sql("SELECT spent_fen, cap_fen FROM daily_spend WHERE campaign_id = $1", campaign)
    assert spent == cap == 3001
    ((settled,),) = await arena.sql("SELECT sum(subsidy_fen) FROM redemptions WHERE campaign_id = $1", campaign)
    assert settled == 3001
    await assert_books_balance(arena.service.settings.database_url)
