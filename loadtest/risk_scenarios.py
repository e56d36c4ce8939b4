"""Risk control's scenario generator (issue 15): `python loadtest/risk_scenarios.py [--seed N] [--days N] ...`.

Days of legitimate traffic — hundreds of merchants (restaurants with lunch and dinner rushes, groceries, convenience
stores open at night, a few set-menu shops, a few honest new merchants), thousands of holders, busier weekends,
honest refunds and an honest first-come rush — with each fraud pattern planted by a known set of actors, all of it
run through the real service: `voucher-engine serve --test-clock` over a fresh database, every redemption a signed
till request, every claim a claim, business time moved minute by minute with `PUT /v1/test/clock`. Then it reads
`GET /v1/risk/flags` and prints, per pattern, the precision and recall of the flags against the planted truth, and
the share of honest merchants flagged. Targets on the default scenario: precision and recall ≥ 0.9 per pattern,
honest merchants flagged ≤ 1 %. A command that prints figures, not a test.

Patterns and their planted actors (an actor is what a flag is judged by: a merchant, a holder, a block of wallets):
  merchant_velocity   brokers' tills: ordinary shops that ring up 30–45 bought vouchers in a quarter of an hour
  threshold           orders that hug the minimum spend (threshold_share: most orders 0–3 % above it) and exact
                      amounts repeated (exact_repeat: exactly ¥100.00, ten times in an hour)
  pair_recurrence     a holder and a shop splitting subsidies: eight vouchers of two campaigns, always there, each
                      a "sale" rung at the minimum spend (honest regulars use their vouchers at their shop too)
  new_merchant_volume shops registered on day 2 that sell 20–30 vouchers an hour from day 3
  holder_spread       one holder (id_hash) at five shops in twenty minutes (a spoofed location, a stolen account)
  claims_burst        bots: 25 claims from one block of wallets within two minutes of a first-come opening
  odd_hour            restaurants redeeming between 03:00 and 05:00 (judged per redemption, in the batch)
  refund_reredeem     the same voucher refunded and redeemed again at one shop, twice (judged per redemption)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import random
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_campaigns import database  # noqa: E402
from harness import free_port, stop, wait_ready  # noqa: E402
from voucher_engine.db.engine import plain_url  # noqa: E402
from voucher_engine.merchants.client import signed_headers  # noqa: E402

START = datetime.fromisoformat("2025-03-06T00:00:00+08:00")  # a Thursday: the days run over a weekend
CONTRACT = """campaign "{name}" issuer 310000
budget ¥100,000,000
funders {{
    310000: 100%
}}
voucher threshold: spend ¥{spend}, get ¥{off} off
quantity 1,000,000
limit 10 per holder
distribution {distribution}
valid from 2025-01-01 00:00 to 2025-12-31 23:59 China time
payment {{
    merchant.region within 310000
}}
"""
CAMPAIGNS = {"A": (100, 20), "B": (200, 40), "C": (50, 10)}  # minimum spend and subsidy, yuan
DISTRICTS = ("310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112")
BANKS = ("6217", "6222", "6228", "6230", "6212")
# Category: (share of merchants, opening hours as (from, to) in hours, peaks as (centre hour, width, weight))
CATEGORIES = {
    "5812": (0.45, (10, 23.5), ((12.0, 0.6, 3.0), (18.5, 0.9, 2.5))),  # restaurants: lunch and dinner rushes
    "5814": (0.15, (7, 23), ((8.0, 0.5, 1.0), (12.2, 0.5, 3.0), (18.3, 0.8, 1.5))),  # fast food
    "5411": (0.20, (8, 22), ((10.5, 1.5, 1.0), (17.5, 1.5, 1.5))),  # groceries
    "5499": (0.10, (0, 24), ((8.0, 1.0, 1.0), (19.0, 2.0, 1.0), (23.5, 1.5, 0.6))),  # convenience, round the clock
    "5311": (0.10, (10, 22), ((15.0, 2.5, 1.0), (20.0, 1.0, 1.0))),  # department stores
}
REGULARS = 0.5  # the share of holders with a favourite shop
REGULAR_SHARE = 0.2  # the share of a shop's customers who are its regulars (where it has any)
WEEKDAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 1.15, 1.45, 1.35)  # Monday..Sunday


@dataclass
class Merchant:
    id: str
    mcc: str
    district: str
    daily: float  # redemptions on an ordinary weekday
    registered_day: int = -30
    set_menu: tuple[int, ...] = ()  # fixed prices in fen (an honest shop whose amounts repeat)
    key_id: str = ""
    secret: str = ""


@dataclass
class Holder:
    wallet: str
    id_hash: str
    district: str
    vouchers: dict[str, int] = field(default_factory=dict)  # campaign letter -> how many to issue
    codes: dict[str, list[str]] = field(default_factory=dict)  # filled after issuance


@dataclass
class Event:
    at: datetime
    kind: str  # redeem | refund | claim
    merchant: str = ""
    holder: str = ""  # wallet
    campaign: str = ""  # letter
    amount_fen: int = 0
    tag: str = ""  # a redemption a later refund or re-redemption refers to
    ref: str = ""  # the tag referred to
    wallet: str = ""  # claims


@dataclass
class Truth:
    """The planted actors per pattern, and every merchant that is honest."""

    actors: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    honest_merchants: set[str] = field(default_factory=set)


# Which flags judge which pattern, and what a flag names as its actor.
PATTERNS = {
    "merchant_velocity": ("merchant_velocity",),
    "threshold": ("threshold_share", "exact_repeat"),
    "pair_recurrence": ("pair_recurrence",),
    "new_merchant_volume": ("new_merchant_volume",),
    "holder_spread": ("holder_spread",),
    "claims_burst": ("claims_burst",),
    "odd_hour": ("odd_hour",),
    "refund_reredeem": ("refund_reredeem",),
}


def actor_of(flag: dict) -> str:
    evidence = flag.get("evidence") or {}
    if flag["signal"] == "holder_spread":
        return str(evidence.get("holder"))
    if flag["signal"] == "claims_burst":
        return str(evidence.get("wallet_block"))
    return str(flag["merchant_id"])


class World:
    """The scenario, built from a seed: merchants, holders, planted actors and the time-ordered events."""

    def __init__(self, seed: int, days: int, merchants: int, holders: int):
        self.rng = random.Random(seed)
        self.days = days
        self.merchants: dict[str, Merchant] = {}
        self.holders: dict[str, Holder] = {}
        self.events: list[Event] = []
        self.truth = Truth()
        self._serial = 0
        self._make_merchants(merchants)
        self._make_holders(holders)
        self._honest_traffic()
        self._plant()
        self.events.sort(key=lambda e: e.at)

    # -- people ---------------------------------------------------------------------------------------------------

    def _wallet(self) -> str:
        return self.rng.choice(BANKS) + f"{self.rng.randrange(10**12):012d}"

    def _make_merchants(self, count: int) -> None:
        rng = self.rng
        weights = [c[0] for c in CATEGORIES.values()]
        for n in range(count):
            mcc = rng.choices(list(CATEGORIES), weights)[0]
            daily = min(70.0, math.exp(rng.gauss(math.log(7), 0.7)))  # median 7 a day, the busiest 40-70
            m = Merchant(f"m{n:04d}", mcc, DISTRICTS[n % len(DISTRICTS)], daily)
            if mcc == "5812" and rng.random() < 0.08:
                m.set_menu = tuple(rng.sample((10800, 12800, 13800, 16800, 18800, 22800), 3))
            self.merchants[m.id] = m
        for n in range(count // 20):  # honest new merchants, registered on days 1-2, slow to start
            m = Merchant(f"n{n:03d}", "5812", DISTRICTS[n % len(DISTRICTS)], rng.uniform(2, 8), rng.choice((1, 2)))
            self.merchants[m.id] = m
        self.truth.honest_merchants = set(self.merchants)

    def _make_holders(self, count: int) -> None:
        for n in range(count):
            wallet = self._wallet()
            h = Holder(wallet, "h" + hashlib.sha256(wallet.encode()).hexdigest()[:24], DISTRICTS[n % len(DISTRICTS)])
            h.vouchers = {
                "A": self.rng.choice((1, 2, 3)),
                "B": self.rng.choice((0, 1, 2)),
                "C": self.rng.choice((1, 2)),
            }
            self.holders[wallet] = h
        self._left = {w: dict(h.vouchers) for w, h in self.holders.items()}
        self._by_district: dict[str, list[str]] = defaultdict(list)
        for w, h in self.holders.items():
            self._by_district[h.district].append(w)
        # Regulars: some holders have a favourite shop in their district, which takes some of its customers from
        # them (an honest holder–merchant pair that recurs).
        self._regulars: dict[str, list[str]] = defaultdict(list)
        shops: dict[str, list[str]] = defaultdict(list)
        for m in self.merchants.values():
            shops[m.district].append(m.id)
        for w, h in self.holders.items():
            if self.rng.random() < REGULARS:
                self._regulars[self.rng.choice(shops[h.district])].append(w)

    def _new_holder(self, vouchers: dict[str, int], district: str = DISTRICTS[0]) -> Holder:
        wallet = self._wallet()
        h = Holder(wallet, "h" + hashlib.sha256(wallet.encode()).hexdigest()[:24], district, dict(vouchers))
        self.holders[wallet] = h
        return h

    # -- amounts and times ----------------------------------------------------------------------------------------

    def _honest_amount(self, campaign: str, merchant: Merchant) -> int:
        spend = CAMPAIGNS[campaign][0] * 100
        if merchant.set_menu:
            fitting = [p for p in merchant.set_menu if p >= spend]
            if fitting:
                return self.rng.choice(fitting)
        if self.rng.random() < 0.22:  # people round up to just over the threshold: honest, and common
            return spend + self.rng.choice((0, 0, 100, 150, 200, 290))
        excess = math.exp(self.rng.gauss(math.log(0.35), 0.6))
        return int(spend * (1 + excess) / 10) * 10

    def _minute_of_day(self, mcc: str) -> float:
        _, (open_h, close_h), peaks = CATEGORIES[mcc]
        while True:
            if self.rng.random() < 0.3:
                hour = self.rng.uniform(open_h, close_h)
            else:
                centre, width, _ = self.rng.choices(peaks, [p[2] for p in peaks])[0]
                hour = self.rng.gauss(centre, width)
            if open_h <= hour < close_h:
                return hour * 60

    def _when(self, day: int, minute: float) -> datetime:
        return START + timedelta(days=day, minutes=int(minute))

    def _take_voucher(self, wallet: str, prefer: str | None = None) -> str | None:
        left = self._left[wallet]
        options = [c for c, n in left.items() if n > 0]
        if not options:
            return None
        campaign = prefer if prefer in options else self.rng.choice(options)
        left[campaign] -= 1
        return campaign

    def _tag(self) -> str:
        self._serial += 1
        return f"t{self._serial}"

    # -- honest traffic -------------------------------------------------------------------------------------------

    def _honest_traffic(self) -> None:
        rng = self.rng
        for day in range(self.days):
            weekday = (START + timedelta(days=day)).weekday()
            for m in list(self.merchants.values()):
                if day < m.registered_day:
                    continue
                count = _poisson(rng, m.daily * WEEKDAY_FACTOR[weekday])
                pool, regulars = self._by_district[m.district], self._regulars[m.id]
                for _ in range(count):
                    choose = pool if not regulars or rng.random() >= REGULAR_SHARE else regulars
                    wallet = next((w for w in (rng.choice(choose) for _ in range(8)) if self._take_peek(w)), None)
                    if wallet is None:
                        continue
                    campaign = self._take_voucher(wallet)
                    assert campaign is not None
                    at = self._when(day, self._minute_of_day(m.mcc))
                    tag = self._tag()
                    self.events.append(
                        Event(at, "redeem", m.id, wallet, campaign, self._honest_amount(campaign, m), tag=tag)
                    )
                    roll = rng.random()
                    if roll < 0.01:  # a partial refund: the voucher is not given back
                        self.events.append(Event(at + timedelta(minutes=rng.randint(10, 300)), "refund", ref=tag))
                    elif roll < 0.014:  # the whole order refunded; sometimes rung up again, corrected
                        back = at + timedelta(minutes=rng.randint(5, 60))
                        self.events.append(Event(back, "refund", ref=tag, amount_fen=-1))
                        if rng.random() < 0.5:
                            amount = self._honest_amount(campaign, m)
                            self.events.append(
                                Event(back + timedelta(minutes=3), "redeem", m.id, wallet, campaign, amount, ref=tag)
                            )

    def _take_peek(self, wallet: str) -> bool:
        return any(n > 0 for n in self._left[wallet].values())

    # -- planted patterns -----------------------------------------------------------------------------------------

    def _honest_pick(
        self, mcc: str | None = None, exclude: set[str] | None = None, max_daily: float = 1e9, min_daily: float = 0.0
    ) -> Merchant:
        pool = [
            m
            for m in self.merchants.values()
            if m.registered_day < 0
            and min_daily <= m.daily <= max_daily
            and m.id in self.truth.honest_merchants
            and (mcc is None or m.mcc == mcc)
            and m.id not in (exclude or set())
        ]
        return self.rng.choice(pool)

    def _actor(self, pattern: str, merchant: Merchant) -> Merchant:
        self.truth.honest_merchants.discard(merchant.id)
        self.truth.actors[pattern].add(merchant.id)
        return merchant

    def _plant(self) -> None:
        rng = self.rng
        days = self.days
        # Brokers: bought vouchers (one each from many sellers) rung up in a quarter of an hour, late in the run.
        for _ in range(10):
            m = self._actor("merchant_velocity", self._honest_pick(max_daily=12.0))  # an ordinary shop
            start = self._when(rng.randint(max(2, days - 2), days - 1), rng.uniform(14 * 60, 16 * 60))
            for i in range(rng.randint(30, 45)):
                seller = self._new_holder({"A": 1})
                self.events.append(
                    Event(
                        start + timedelta(seconds=20 * i), "redeem", m.id, seller.wallet, "A", 10_000 + 100 * (i % 40)
                    )
                )
        # Threshold share: most orders 0-3 % above the minimum spend, at an ordinary pace, every day.
        for _ in range(8):
            m = self._actor("threshold", self._honest_pick("5812", max_daily=4.0))  # a family restaurant
            for day in range(days):
                for _ in range(rng.randint(4, 7)):
                    buyer = self._new_holder({"A": 1}, m.district)
                    amount = 10_000 + rng.randrange(0, 300, 10)
                    at = self._when(day, self._minute_of_day("5812"))
                    self.events.append(Event(at, "redeem", m.id, buyer.wallet, "A", amount))
        # Exact amounts repeated: exactly ¥100.00 (or ¥200.00), ten times in under an hour, once a day for two days.
        for _ in range(8):
            m = self._actor("threshold", self._honest_pick())
            for day in rng.sample(range(days), 2):
                start = self._when(day, rng.uniform(11 * 60, 20 * 60))
                campaign = rng.choice(("A", "B"))
                for i in range(10):
                    buyer = self._new_holder({campaign: 1}, m.district)
                    self.events.append(
                        Event(start + timedelta(minutes=5 * i), "redeem", m.id, buyer.wallet, campaign,
                              CAMPAIGNS[campaign][0] * 100)
                    )  # fmt: skip
        # A holder and a shop splitting subsidies: eight vouchers of two campaigns, always at that shop.
        for _ in range(10):
            m = self._actor("pair_recurrence", self._honest_pick(min_daily=5.0))  # a real business
            partner = self._new_holder({"A": 4, "C": 4}, m.district)
            for i, campaign in enumerate(rng.sample(["A"] * 4 + ["C"] * 4, 8)):
                at = self._when(i * days // 8, rng.uniform(10 * 60, 21 * 60))
                spend = CAMPAIGNS[campaign][0] * 100
                amount = spend + spend * rng.randrange(0, 250) // 10_000  # a fake sale, rung at the threshold
                self.events.append(Event(at, "redeem", m.id, partner.wallet, campaign, amount))
        # New merchants' sudden volume: registered on day 2, 20-30 vouchers an hour from day 3.
        for n in range(6):
            m = Merchant(f"x{n:03d}", "5812", DISTRICTS[n % len(DISTRICTS)], 0.0, 2)
            self.merchants[m.id] = m
            self.truth.actors["new_merchant_volume"].add(m.id)
            for day in range(3, days):
                start = self._when(day, rng.uniform(11 * 60, 19 * 60))
                for i in range(rng.randint(20, 30)):
                    buyer = self._new_holder({"C": 1}, m.district)
                    self.events.append(
                        Event(start + timedelta(minutes=2 * i), "redeem", m.id, buyer.wallet, "C",
                              self._honest_amount("C", m))
                    )  # fmt: skip
        # One holder at five shops in twenty minutes.
        for _ in range(10):
            rover = self._new_holder({"A": 2, "B": 2, "C": 2})
            self.truth.actors["holder_spread"].add(rover.id_hash)
            shops: set[str] = set()
            start = self._when(rng.randrange(days), rng.uniform(10 * 60, 20 * 60))
            for i, campaign in enumerate(("A", "B", "C", "A", "C")):
                shop = self._honest_pick(exclude=shops)
                shops.add(shop.id)
                at = start + timedelta(minutes=4 * i)
                self.events.append(
                    Event(at, "redeem", shop.id, rover.wallet, campaign, self._honest_amount(campaign, shop))
                )
        # Odd hours: restaurants redeeming between 03:00 and 05:00.
        for _ in range(8):
            m = self._actor("odd_hour", self._honest_pick("5812"))
            day = rng.randrange(1, days)
            for _ in range(5):
                buyer = self._new_holder({"A": 1}, m.district)
                at = self._when(day, rng.uniform(3 * 60, 5 * 60))
                self.events.append(Event(at, "redeem", m.id, buyer.wallet, "A", self._honest_amount("A", m)))
        # Recycling: the same voucher refunded and redeemed again at the shop, twice over, for three vouchers.
        for _ in range(8):
            m = self._actor("refund_reredeem", self._honest_pick())
            for _ in range(3):
                buyer = self._new_holder({"A": 1}, m.district)
                at = self._when(rng.randrange(days), rng.uniform(10 * 60, 20 * 60))
                tag = self._tag()
                self.events.append(Event(at, "redeem", m.id, buyer.wallet, "A", 12_000, tag=tag))
                for cycle in range(2):
                    at += timedelta(minutes=8)
                    self.events.append(Event(at, "refund", ref=tag, amount_fen=-1))
                    at += timedelta(minutes=4)
                    self.events.append(
                        Event(at, "redeem", m.id, buyer.wallet, "A", 12_000 + 100 * (cycle + 1), ref=tag)
                    )
        # A first-come campaign's opening on day 2 at 10:00: a rush of people, and bots from blocks of wallets.
        opening = self._when(min(2, days - 1), 10 * 60)
        for _ in range(600):
            self.events.append(
                Event(opening + timedelta(seconds=rng.expovariate(1 / 240)), "claim", wallet=self._wallet())
            )
        for _ in range(6):
            block = rng.choice(BANKS) + f"{rng.randrange(10**8):08d}"
            self.truth.actors["claims_burst"].add(block)
            start = opening + timedelta(seconds=rng.uniform(0, 600))
            for i in range(25):
                self.events.append(
                    Event(start + timedelta(seconds=4.5 * i), "claim", wallet=block + f"{rng.randrange(10**4):04d}")
                )


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, int(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


# -- running it through the service -----------------------------------------------------------------------------------


class Runner:
    """The scenario against a served instance: set-up over the API, then the events minute by minute."""

    def __init__(self, http: httpx.AsyncClient, admin: str, world: World, concurrency: int, url: str, data_dir: Path):
        self.http, self.world, self.url, self.data_dir = http, world, url, data_dir
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.gate = asyncio.Semaphore(concurrency)
        self.campaigns: dict[str, str] = {}
        self.tagged: dict[str, tuple[str, str, str, int]] = {}  # tag -> (redemption id, code, merchant, amount)
        self.statuses: dict[str, int] = defaultdict(int)
        self.gov: dict[str, str] = {}
        self.auditor: dict[str, str] = {}

    async def send(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A request, sent again once if the connection broke under it (a till retries the same way)."""
        make = kwargs.pop("signed", None)
        for attempt in range(3):
            try:
                if make is not None:
                    kwargs["headers"] = make()
                return await self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    async def call(self, method: str, path: str, body=None, headers=None, expect=(200, 201)) -> dict:
        answer = await self.send(method, path, json=body, headers=headers or self.admin)
        if answer.status_code not in expect:
            raise SystemExit(f"{method} {path} answered {answer.status_code}: {answer.text[:500]}")
        return answer.json() if answer.content else {}

    async def clock(self, at: datetime) -> None:
        await self.call("PUT", "/v1/test/clock", {"now": at.isoformat()})

    async def set_up(self) -> None:
        w = self.world
        await self.clock(START - timedelta(days=30))
        issuer = (await self.call("POST", "/v1/issuers", {"name": "Shanghai", "region_code": "310000"}))["id"]
        token = await self.call("POST", "/v1/tokens", {"role": "gov", "issuer_id": issuer})
        self.gov = {"Authorization": f"Bearer {token['token']}"}
        token = await self.call("POST", "/v1/tokens", {"role": "auditor"})
        self.auditor = {"Authorization": f"Bearer {token['token']}"}
        for registered in sorted({m.registered_day for m in w.merchants.values()}):
            await self.clock(START + timedelta(days=registered, hours=8))
            group = [m for m in w.merchants.values() if m.registered_day == registered]
            await asyncio.gather(*(self._merchant(m) for m in group))
        await self.clock(START - timedelta(days=1))
        for letter, (spend, off) in {**CAMPAIGNS, "D": (100, 20)}.items():
            distribution = "first come, first served" if letter == "D" else "targeted"
            source = CONTRACT.format(name=f"Scenario {letter}", spend=spend, off=off, distribution=distribution)
            campaign = await self.call("POST", "/v1/campaigns", {"source": source}, self.gov)
            for action in ("fund", "activate"):
                await self.call("POST", f"/v1/campaigns/{campaign['id']}/{action}", headers=self.gov)
            self.campaigns[letter] = campaign["id"]
        for letter in CAMPAIGNS:
            holders = [
                {"wallet_id": h.wallet, "id_hash": h.id_hash}
                for h in w.holders.values()
                for _ in range(h.vouchers.get(letter, 0))
            ]
            for chunk in range(0, len(holders), 5_000):
                await self._issue(self.campaigns[letter], holders[chunk : chunk + 5_000])
        await self._codes()

    async def _merchant(self, m: Merchant) -> None:
        async with self.gate:
            body = {"name": m.id, "mcc": m.mcc, "region_code": m.district, "settlement_wallet": "0000000000000001"}
            await self.call("PUT", f"/v1/merchants/{m.id}", body)
            key = await self.call("POST", f"/v1/merchants/{m.id}/keys")
            m.key_id, m.secret = key["key_id"], key["secret"]

    async def _issue(self, campaign_id: str, holders: list[dict]) -> None:
        answer = await self.call(
            "POST", f"/v1/campaigns/{campaign_id}/issuances", {"holders": holders}, self.gov, expect=(201, 202)
        )
        while answer.get("status") not in (None, "done", "finished", "completed", "failed"):
            await asyncio.sleep(0.5)
            answer = await self.call("GET", f"/v1/issuances/{answer['issuance_id']}", headers=self.gov)

    async def _codes(self) -> None:
        """Each holder's voucher codes: what its wallet app shows (`GET /v1/wallets/{id}/vouchers`), made here from
        the vouchers' rows and the server's secret instead, which is the same and saves thousands of requests."""
        from voucher_engine.campaigns.codes import make_code
        from voucher_engine.config import Settings
        from voucher_engine.secrets_store import load_server_secret

        secret = load_server_secret(Settings(database_url=self.url, data_dir=self.data_dir).resolved_server_secret_path)
        letters = {v: k for k, v in self.campaigns.items()}
        conn = await asyncpg.connect(plain_url(self.url))
        try:
            rows = await conn.fetch("SELECT campaign_id, id, wallet_id FROM vouchers ORDER BY campaign_id, id")
        finally:
            await conn.close()
        for row in rows:
            holder = self.world.holders[row["wallet_id"]]
            code = make_code(secret, row["campaign_id"], row["id"])
            holder.codes.setdefault(letters[row["campaign_id"]], []).append(code)

    async def run(self, tick_minutes: int, progress: bool = True) -> None:
        """The events tick by tick: business time set to the tick's start, then its events, a few at a time."""
        by_minute: dict[datetime, list[Event]] = defaultdict(list)
        for event in self.world.events:
            at = event.at.replace(second=0, microsecond=0)
            by_minute[at - timedelta(minutes=at.minute % tick_minutes)].append(event)
        started, done = time.perf_counter(), 0
        for n, minute in enumerate(sorted(by_minute)):
            await self.clock(minute)
            events = by_minute[minute]
            # Events that refer to an earlier one (a refund, the same voucher again) go after the rest, in order.
            await asyncio.gather(*(self._event(e) for e in events if not e.ref))
            for e in events:
                if e.ref:
                    await self._event(e)
            done += len(events)
            if progress and n % 200 == 0:
                rate = done / max(0.001, time.perf_counter() - started)
                print(
                    f"  … {minute:%a %H:%M}  {done:,} of {len(self.world.events):,} events ({rate:,.0f}/s)", flush=True
                )

    async def _event(self, e: Event) -> None:
        async with self.gate:
            if e.kind == "claim":
                answer = await self.send(
                    "POST",
                    f"/v1/campaigns/{self.campaigns['D']}/claims",
                    json={"wallet_id": e.wallet},
                    headers=self.gov,
                )
                self.statuses[f"claim {answer.status_code}"] += 1
            elif e.kind == "refund":
                await self._refund(e)
            else:
                await self._redeem(e)

    async def _redeem(self, e: Event) -> None:
        holder = self.world.holders[e.holder]
        if e.ref:  # the same voucher again (after a whole refund)
            if e.ref not in self.tagged:
                self.statuses["redeem skipped"] += 1
                return
            code = self.tagged[e.ref][1]
        else:
            codes = holder.codes.get(e.campaign) or []
            if not codes:
                self.statuses["redeem no voucher"] += 1
                return
            code = codes.pop()
        answer = await self._signed(e.merchant, "POST", "/v1/redemptions", {
            "voucher_code": code, "wallet_id": holder.wallet, "pos_txn_id": secrets.token_hex(8),
            "order_amount_fen": e.amount_fen,
        })  # fmt: skip
        self.statuses[f"redeem {answer.status_code}"] += 1
        if answer.status_code == 201 and (e.tag or e.ref):  # a refund later refers to the latest redemption
            self.tagged[e.tag or e.ref] = (answer.json()["id"], code, e.merchant, e.amount_fen)

    async def _refund(self, e: Event) -> None:
        if e.ref not in self.tagged:
            self.statuses["refund skipped"] += 1
            return
        redemption_id, _, merchant, amount = self.tagged[e.ref]
        whole = e.amount_fen == -1
        body = {
            "refund_id": secrets.token_hex(6),
            "amount_fen": amount if whole else amount * 3 // 10,
            "reason": "return",
        }
        answer = await self._signed(merchant, "POST", f"/v1/redemptions/{redemption_id}/refunds", body)
        self.statuses[f"refund {answer.status_code}"] += 1

    async def _signed(self, merchant_id: str, method: str, path: str, body: dict) -> httpx.Response:
        m = self.world.merchants[merchant_id]
        raw = orjson.dumps(body)
        return await self.send(
            method, path, content=raw, signed=lambda: signed_headers(m.key_id, m.secret, method, path, raw)
        )

    async def flags(self) -> list[dict]:
        items, cursor = [], None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            answer = await self.send("GET", "/v1/risk/flags", params=params, headers=self.admin)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


async def _caught_up(url: str, timeout_s: float = 300.0) -> None:
    """Until every transaction is sequenced and the detector's cursor has reached the ledger's head."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM ledger_transactions) AS txs,"
                " (SELECT coalesce(max(seq), 0) FROM ledger_sequence) AS head,"
                " (SELECT last_seq FROM risk_w_cursor) AS detected"
            )
            if row["txs"] == row["head"] == row["detected"]:
                await asyncio.sleep(2.5)  # one more pass: the claims of the last minutes
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"the detector did not catch up: {dict(row)}")
    finally:
        await conn.close()


def score(world: World, flags: list[dict]) -> list[tuple[str, int, int, int, float, float]]:
    """Per pattern: actors planted, flagged, of which true; precision and recall (entity level)."""
    rows = []
    for pattern, signals in PATTERNS.items():
        truth = world.truth.actors.get(pattern, set())
        flagged = {actor_of(f) for f in flags if f["signal"] in signals}
        true = flagged & truth
        precision = len(true) / len(flagged) if flagged else (1.0 if not truth else 0.0)
        recall = len(true) / len(truth) if truth else 1.0
        rows.append((pattern, len(truth), len(flagged), len(true), precision, recall))
    return rows


def honest_flagged(world: World, flags: list[dict]) -> tuple[int, int, list[str]]:
    named = {f["merchant_id"]: f["signal"] for f in flags if f["merchant_id"]}
    honest = world.truth.honest_merchants
    wrong = sorted(f"{m} ({named[m]})" for m in honest if m in named)
    return len(wrong), len(honest), wrong


async def _scenario(
    url: str, data_dir: Path, port: int, admin: str, world: World, args: argparse.Namespace
) -> tuple[Runner, list[dict]]:
    concurrency = args.concurrency
    # Idle connections are dropped before the server's keep-alive timeout (5 s) can close them under a request.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as http:
        runner = Runner(http, admin, world, concurrency, url, data_dir)
        started = time.perf_counter()
        await runner.set_up()
        print(
            f"  set-up (merchants, keys, campaigns, issuance, codes): {time.perf_counter() - started:.0f} s", flush=True
        )
        started = time.perf_counter()
        await runner.run(args.tick)
        elapsed = time.perf_counter() - started
        print(f"  {len(world.events):,} events through the service in {elapsed:.0f} s", flush=True)
        started = time.perf_counter()
        await _caught_up(url)
        print(f"  detector caught up {time.perf_counter() - started:.1f} s after the last event", flush=True)
        return runner, await runner.flags()


def _admin_token(url: str) -> str:
    async def make() -> str:
        from voucher_engine.auth import service as auth
        from voucher_engine.db.engine import create_engine

        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                token, _ = await auth.create_token(conn, "admin")
            return token
        finally:
            await engine.dispose()

    return asyncio.run(make())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--holders", type=int, default=2500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--tick", type=int, default=5, help="minutes of business time per clock step")
    parser.add_argument("--show-wrong", action="store_true", help="list the honest merchants flagged, and misses")
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    world = World(args.seed, args.days, args.merchants, args.holders)
    kinds = defaultdict(int)
    for e in world.events:
        kinds[e.kind] += 1
    print(
        f"risk scenarios: seed {args.seed}, {args.days} days from {START:%a %Y-%m-%d}, {len(world.merchants)} merchants,"
        f" {len(world.holders):,} holders; {dict(kinds)} (load average {load} on {os.cpu_count()} cores)",
        flush=True,
    )
    wall = time.perf_counter()
    with database() as (url, tmp):
        admin = _admin_token(url)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "VE_DATA_DIR": str(tmp / "data"),
            "VE_LOG_LEVEL": "warning",
            "VE_LOG_FORMAT": "text",
        }
        command = [sys.executable, "-m", "voucher_engine.cli", "serve", "--port", str(port), "--test-clock",
                   "--workers", str(args.workers)]  # fmt: skip
        log = open(tmp / "serve.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_ready(port, server)
            runner, flags = asyncio.run(_scenario(url, tmp / "data", port, admin, world, args))
        finally:
            stop(server)
            log.close()
    print(f"  answers: {dict(sorted(runner.statuses.items()))}")
    print(f"  flags: {len(flags)}")
    print()
    print(f"  {'pattern':<21} {'planted':>7} {'flagged':>7} {'true':>5} {'precision':>9} {'recall':>7}")
    for pattern, planted, flagged, true, precision, recall in score(world, flags):
        print(f"  {pattern:<21} {planted:>7} {flagged:>7} {true:>5} {precision:>9.2f} {recall:>7.2f}")
    wrong, honest, names = honest_flagged(world, flags)
    print(f"  honest merchants flagged: {wrong} of {honest} ({100 * wrong / honest:.2f} %)")
    if args.show_wrong:
        print("   ", ", ".join(names) or "none")
        for pattern, signals in PATTERNS.items():
            flagged = {actor_of(f) for f in flags if f["signal"] in signals}
            truth = world.truth.actors.get(pattern, set())
            print(f"    {pattern}: missed {sorted(truth - flagged)}, wrong {sorted(flagged - truth)}")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  wall time {time.perf_counter() - wall:.0f} s (load average {load})")


if __name__ == "__main__":
    main()
