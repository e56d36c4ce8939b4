"""The window detector (issue 15): each window pattern planted through the real API opens its flag, with its
evidence and outcome; an honest busy merchant's lunch rush opens none; a second pass opens nothing new."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest_asyncio
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redemption"))

from redemption_world import Till, World  # noqa: E402

from service_support import Service, start_service  # noqa: E402
from voucher_engine.ledger import sequencer  # noqa: E402
from voucher_engine.risk import detector  # noqa: E402

CONTRACT = """campaign "{name}" issuer 310000
budget ¥1,000,000
funders {{
    310000: 100%
}}
voucher threshold: spend ¥100, get ¥20 off
quantity 10,000
limit 10 per holder
distribution {distribution}
valid from 2025-01-01 00:00 to 2025-12-31 23:59 China time
payment {{
    merchant.region within 310000
}}
"""
SHOPS = ("busy-noodles", "broker-till", "family-diner", "corner-shop", "tea-house", "bakery", "florist", "gym")
# Each with its own campaign's rules (test_a_campaigns_risk_section_...).
RULED_SHOPS = ("defaults-diner", "loose-diner", "tight-diner", "defaults-cafe", "wide-band-shop", "defaults-shop")


def _contract(name: str, distribution: str = "targeted", risk: tuple[str, ...] = ()) -> str:
    source = CONTRACT.format(name=name, distribution=distribution)
    if not risk:
        return source
    section = "risk {\n" + "".join(f"    {line}\n" for line in risk) + "}\n\n"
    return source.replace("payment {", section + "payment {")


def _at(day: int, hour: int, minute: int = 0) -> str:
    return (
        datetime.fromisoformat("2025-03-03T00:00:00+08:00") + timedelta(days=day, hours=hour, minutes=minute)
    ).isoformat()


class Plant:
    """Vouchers for many wallets, and tills that spend them at chosen minutes of business time."""

    def __init__(self, service, world: World):
        self.service, self.world = service, world
        self.codes: dict[str, list[tuple[str, str]]] = {}
        self.next_wallet = 0

    async def vouchers(self, campaign_id: str, count: int, *, wallet: str | None = None) -> list[tuple[str, str]]:
        """`count` vouchers of the campaign: each for a new wallet, or all for one wallet."""
        wallets = [wallet] * count if wallet else [self._wallet() for _ in range(count)]
        holders = [{"wallet_id": w, "id_hash": "h-" + w} for w in wallets]
        gov = self.service.auth(self.world.gov["310000"])
        issued = await self.service.client.post(
            f"/v1/campaigns/{campaign_id}/issuances", json={"holders": holders}, headers=gov
        )
        assert issued.status_code == 201, issued.text
        found: list[tuple[str, str]] = []
        for w in dict.fromkeys(wallets):
            found += [(w, v["code"]) for v in await self.world.vouchers(w, campaign_id) if v["status"] == "issued"]
        return found

    def _wallet(self) -> str:
        self.next_wallet += 1
        return f"62{self.next_wallet:014d}"

    async def spend(self, shop: str, vouchers: list[tuple[str, str]], at: str, amount_fen=lambda i: 12_000 + 37 * i):
        await self.world.set_clock(at)
        ids = []
        for i, (wallet, code) in enumerate(vouchers):
            answer = await self.world.tills[shop].redeem(code, amount_fen(i), wallet=wallet)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        return ids


@pytest_asyncio.fixture(loop_scope="session")
async def service(database_url: str, tmp_path) -> AsyncIterator[Service]:
    """The app with no detector loop in its worker (as under `serve`, where a process of its own runs it): the tests
    run the passes themselves (`_caught_up`) once a pattern is planted. A pass of the worker's own in the middle of
    a burst would open the flag on the part of it seen so far (a new merchant flagged at its 15th redemption of 16),
    and the evidence the tests assert would depend on when it ran."""
    svc, close = await start_service(database_url, tmp_path / "data", test_clock=True, risk_detector="process")
    try:
        yield svc
    finally:
        await close()


@pytest_asyncio.fixture(loop_scope="session")
async def plant(service) -> Plant:
    return await _plant(service)


async def _plant(service) -> Plant:
    world = World(service)
    issuer_id = await service.issuer("310000")
    world.gov["310000"] = await service.token("gov", issuer_id)
    await world.set_clock(_at(-10, 9))  # every shop registered well before the days the tests spend on
    for shop in SHOPS + RULED_SHOPS:
        await service.merchant(shop, mcc="5812", region_code="310104")
        key = await service.pos_key(shop)
        world.tills[shop] = Till(service, shop, key["key_id"], key["secret"])
    return Plant(service, world)


async def _caught_up(service) -> None:
    """Every committed transaction sequenced and taken in by the detector."""
    engine = service.state.engine
    for _ in range(200):
        await sequencer.drain(engine)
        await detector.catch_up(engine)
        async with engine.connect() as conn:
            behind = await conn.scalar(
                sa.text("SELECT (SELECT coalesce(max(seq), 0) FROM ledger_sequence) > last_seq FROM risk_w_cursor")
            )
        if not behind:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the detector did not catch up")


async def _flags(service, **params) -> list[dict]:
    answer = await service.client.get("/v1/risk/flags", params=params, headers=service.admin)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def _launch(plant: Plant, name: str, distribution: str = "targeted", risk: tuple[str, ...] = ()) -> str:
    world = plant.world
    return await world.launch("", [], source=_contract(name, distribution, risk))


async def test_velocity_against_its_own_history_and_an_honest_lunch_rush(service, plant):
    campaign = await _launch(plant, "Dining A")
    vouchers = await plant.vouchers(campaign, 4 + 24 + 24 + 26)
    busy, broker = vouchers[:50], vouchers[50:]
    # Day 0: the noodle shop's lunch rush, two a minute-ish; the broker's till a few sales.
    for minute in range(0, 48, 2):
        await plant.spend("busy-noodles", busy[minute // 2 : minute // 2 + 1], _at(0, 11, 30 + minute))
    await plant.spend("broker-till", broker[:4], _at(0, 15))
    # Day 1: the same rush at the noodle shop (a little busier); the broker rings up 24 vouchers in ten minutes.
    for minute in range(0, 52, 2):
        await plant.spend("busy-noodles", busy[24 + minute // 2 : 25 + minute // 2], _at(1, 11, 30 + minute))
    burst = []
    for minute in range(8):
        burst += await plant.spend("broker-till", broker[4 + 3 * minute : 7 + 3 * minute], _at(1, 15, minute))
    await _caught_up(service)

    flags = await _flags(service)
    assert [f["evidence"] for f in flags if f["merchant_id"] == "busy-noodles"] == []  # its own history
    (flag,) = [f for f in flags if f["merchant_id"] == "broker-till"]
    assert (flag["signal"], flag["outcome"], flag["status"], flag["campaign_id"]) == (
        "merchant_velocity",
        "flag",
        "open",
        campaign,
    )
    assert set(flag["redemption_ids"]) == set(burst)
    evidence = flag["evidence"]
    assert evidence["redemptions_in_hour"] == 24 and evidence["history_busiest_hour"] == 4
    assert "over_history" in evidence["met"] and evidence["rule"].startswith("merchant_velocity")

    # Incremental and idempotent: a second pass reads nothing; the same events read again open nothing new.
    async with service.state.engine.begin() as conn:
        again = await detector.run_pass(conn)
    assert again.taken == 0 and again.findings == []
    async with service.state.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE risk_w_cursor SET last_seq = 0"))
    await _caught_up(service)
    assert len(await _flags(service)) == len(flags)


async def test_threshold_share_and_exact_repeat(service, plant):
    campaign = await _launch(plant, "Dining B")
    vouchers = await plant.vouchers(campaign, 14)
    ids = []
    for minute in range(14):  # a family restaurant rings up exactly ¥100.00, again and again
        ids += await plant.spend(
            "family-diner", vouchers[minute : minute + 1], _at(2, 18, 3 * minute), lambda i: 10_000
        )
    await _caught_up(service)
    flags = {f["signal"]: f for f in await _flags(service, merchant_id="family-diner")}
    assert set(flags) == {"threshold_share", "exact_repeat"}
    share = flags["threshold_share"]
    assert share["outcome"] == "hold" and set(share["redemption_ids"]) == set(ids)
    assert share["evidence"]["orders"] == 14 and share["evidence"]["orders_within_band"] == 14
    assert share["evidence"]["min_spend_fen"] == 10_000 and share["evidence"]["most_repeated_amount_fen"] == 10_000
    merchant = await service.client.get("/v1/merchants/family-diner", headers=service.admin)
    assert share["id"] in merchant.json()["payout_hold"]["reason"] and share["hold_caused"] is True  # held
    repeat = flags["exact_repeat"]
    assert repeat["outcome"] == "flag" and repeat["evidence"]["order_amount_fen"] == 10_000
    assert repeat["evidence"]["repeats"] >= repeat["evidence"]["limit_times"]


async def test_pair_recurrence_and_holder_spread(service, plant):
    first, second = await _launch(plant, "Dining C"), await _launch(plant, "Dining D")
    regular = "6299000000000001"
    pair = (await plant.vouchers(first, 3, wallet=regular)) + (await plant.vouchers(second, 3, wallet=regular))
    ids = []
    for day, voucher in enumerate(pair):  # one holder, six vouchers, two campaigns, one shop, "sales" at ¥101
        ids += await plant.spend("corner-shop", [voucher], _at(day, 19), lambda i: 10_100)
    rover = "6299000000000002"
    spread = await plant.vouchers(first, 4, wallet=rover)
    roving = []
    for minute, shop in enumerate(("tea-house", "bakery", "florist", "gym")):  # four shops in eight minutes
        roving += await plant.spend(shop, spread[minute : minute + 1], _at(3, 10, 2 * minute))
    await _caught_up(service)

    flags = await _flags(service)
    (recurring,) = [f for f in flags if f["signal"] == "pair_recurrence"]
    assert recurring["merchant_id"] == "corner-shop" and set(recurring["redemption_ids"]) == set(ids)
    assert recurring["evidence"]["holder"] == "h-" + regular and recurring["evidence"]["redemptions"] == 6
    assert recurring["evidence"]["hugging"] == 6 and recurring["evidence"]["actual"] == 6
    assert sorted(recurring["evidence"]["campaigns"]) == sorted([first, second])
    (roving_flag,) = [f for f in flags if f["signal"] == "holder_spread"]
    assert roving_flag["merchant_id"] is None and roving_flag["outcome"] == "flag"
    assert roving_flag["evidence"]["merchant_ids"] == ["bakery", "florist", "gym", "tea-house"]
    assert set(roving_flag["redemption_ids"]) == set(roving)
    assert {f["signal"] for f in flags} == {"pair_recurrence", "holder_spread"}


async def test_new_merchants_sudden_volume_and_claims_burst(service, plant):
    campaign = await _launch(plant, "Dining E")
    await plant.world.set_clock(_at(4, 9))
    await service.merchant("new-kiosk", mcc="5812", region_code="310104")
    key = await service.pos_key("new-kiosk")
    plant.world.tills["new-kiosk"] = Till(service, "new-kiosk", key["key_id"], key["secret"])
    vouchers = await plant.vouchers(campaign, 16)
    ids = []
    for minute in range(16):
        ids += await plant.spend("new-kiosk", vouchers[minute : minute + 1], _at(5, 14, 3 * minute))

    rush = await _launch(plant, "First come F", "first come, first served")
    await plant.world.set_clock(_at(5, 10))
    gov = service.auth(plant.world.gov["310000"])
    farm = [f"6288123456780{i:03d}" for i in range(12)]  # a block of wallets opened in a row
    people = [f"62{i:02d}{(i * 7919) % 10**12:012d}" for i in range(20)]
    for wallet in people[:10] + farm + people[10:]:
        claimed = await service.client.post(f"/v1/campaigns/{rush}/claims", json={"wallet_id": wallet}, headers=gov)
        assert claimed.status_code == 201, claimed.text
    await _caught_up(service)

    flags = await _flags(service)
    (new,) = [f for f in flags if f["merchant_id"] == "new-kiosk"]
    assert (new["signal"], new["outcome"]) == ("new_merchant_volume", "flag")
    assert set(new["redemption_ids"]) == set(ids) and new["evidence"]["redemptions_in_hour"] == 16
    (burst,) = [f for f in flags if f["signal"] == "claims_burst"]
    assert burst["campaign_id"] == rush and burst["merchant_id"] is None
    assert burst["evidence"]["wallet_block"] == "628812345678" and burst["evidence"]["claims_in_minute"] == 12
    assert len(flags) == 2


async def test_a_campaigns_risk_section_loosens_and_tightens_its_window_rules(service, plant):
    """The detector judges the windows a campaign's redemptions touch under that campaign's rules: the family
    restaurant's pattern (14 orders at exactly the minimum spend) is flagged under the defaults and not under a
    campaign that asks for 20 orders; five such orders are not flagged under the defaults (12 orders, 8 repeats)
    and are under a campaign that asks for 4."""
    defaults = await _launch(plant, "Dining G")
    loose = await _launch(plant, "Dining H", risk=("threshold_share at_least 20: hold", "exact_repeat times 20: flag"))
    tight = await _launch(plant, "Dining I", risk=("threshold_share at_least 4: hold", "exact_repeat times 4: flag"))
    at_minimum = lambda i: 10_000  # noqa: E731 - ¥100.00, exactly the minimum spend, every time
    planted: dict[str, list[str]] = {}
    for shop, campaign, count in (
        ("defaults-diner", defaults, 14),
        ("loose-diner", loose, 14),
        ("tight-diner", tight, 5),
        ("defaults-cafe", defaults, 5),
    ):
        vouchers = await plant.vouchers(campaign, count)
        planted[shop] = []
        for minute in range(count):
            planted[shop] += await plant.spend(shop, vouchers[minute : minute + 1], _at(6, 18, 3 * minute), at_minimum)
    await _caught_up(service)

    def signals(shop: str) -> dict[str, dict]:
        return {f["signal"]: f for f in flagged if f["merchant_id"] == shop}

    flagged = await _flags(service)
    assert set(signals("defaults-diner")) == {"threshold_share", "exact_repeat"}
    assert signals("loose-diner") == {}  # the same pattern, under a campaign that loosened both rules
    assert signals("defaults-cafe") == {}  # five are below the defaults
    tightened = signals("tight-diner")  # and above the tightened campaign's
    assert set(tightened) == {"threshold_share", "exact_repeat"}
    share, repeat = tightened["threshold_share"], tightened["exact_repeat"]
    assert share["outcome"] == "hold" and set(share["redemption_ids"]) == set(planted["tight-diner"])
    assert share["campaign_id"] == tight and share["evidence"]["limit_at_least"] == 4
    assert share["evidence"]["source"] == "contract" and share["evidence"]["rule"] == "threshold_share at_least 4: hold"
    assert repeat["evidence"]["limit_times"] == 4 and repeat["evidence"]["repeats"] == 5


async def test_a_pairs_sales_hug_within_their_own_campaigns_band(service, plant):
    """One holder, six vouchers over two campaigns, one shop, every sale at ¥108 on a ¥100 minimum spend (8 % above
    it): under the defaults (threshold_share within 3 %) the sales do not hug and the pair is a regular; under two
    campaigns that widen the band to 10 %, the same pair hugs and is flagged."""
    wide = ("threshold_share within 10%: hold",)
    plain = [await _launch(plant, "Dining J"), await _launch(plant, "Dining K")]
    widened = [await _launch(plant, "Dining L", risk=wide), await _launch(plant, "Dining M", risk=wide)]
    planted = {}
    for shop, campaigns, wallet in (
        ("defaults-shop", plain, "6299000000000011"),
        ("wide-band-shop", widened, "6299000000000012"),
    ):
        vouchers = [v for c in campaigns for v in await plant.vouchers(c, 3, wallet=wallet)]
        planted[shop] = []
        for day, voucher in enumerate(vouchers):
            planted[shop] += await plant.spend(shop, [voucher], _at(day, 19), lambda i: 10_800)
    await _caught_up(service)

    flags = await _flags(service)
    assert [f for f in flags if f["merchant_id"] == "defaults-shop"] == []
    (pair,) = [f for f in flags if f["merchant_id"] == "wide-band-shop"]
    assert pair["signal"] == "pair_recurrence" and set(pair["redemption_ids"]) == set(planted["wide-band-shop"])
    assert pair["evidence"]["hugging"] == 6 and pair["evidence"]["redemptions"] == 6
    assert sorted(pair["evidence"]["campaigns"]) == sorted(widened)
