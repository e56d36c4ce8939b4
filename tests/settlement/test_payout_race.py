"""A payout run racing redemptions on real database connections never pays money credited after its cutoff, and
never pays anything twice: every fen credited is paid exactly once over the runs."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import datetime

from settlement_world import SUBSIDY, assert_verified

MERCHANTS = ("rest-a", "rest-b", "rest-c")


async def test_a_payout_run_racing_redemptions_pays_each_fen_once_and_none_after_its_cutoff(sw, service):
    from voucher_engine import clock

    await sw.set_clock("2025-01-10T10:00:00+08:00")
    _, vouchers = await sw.launch_dining(36)
    rng = random.Random(13)
    plan = [(rng.choice(MERCHANTS), voucher) for voucher in vouchers]
    cutoffs: list[datetime] = []

    done = asyncio.Event()

    async def runs() -> list[dict]:
        made = []
        while not done.is_set():
            cutoffs.append(clock.now())
            made.append(await sw.run(cutoffs[-1].isoformat()))
            await asyncio.sleep(0.02)
        return made

    async def redeem(merchant_id: str, voucher) -> dict:
        await asyncio.sleep(rng.random() * 1.5)
        return await sw.redeem(merchant_id, voucher)

    async def redemptions() -> list[dict]:
        try:
            return await asyncio.gather(*(redeem(m, v) for m, v in plan))
        finally:
            done.set()

    redeemed, made = await asyncio.gather(redemptions(), runs())
    cutoffs.append(clock.now())
    made.append(await sw.run(cutoffs[-1].isoformat()))

    credited_before: dict[tuple[int, str], int] = defaultdict(int)
    for answer in redeemed:
        settled_at = datetime.fromisoformat(answer["settled_at"])
        for i, cutoff in enumerate(cutoffs):
            if settled_at < cutoff:
                credited_before[(i, answer["merchant_id"])] += answer["subsidy_fen"]
    paid_so_far: dict[str, int] = defaultdict(int)
    for i, run in enumerate(made):
        for item in run["items"]:
            paid_so_far[item["merchant_id"]] += item["amount_fen"]
            # Never more than what was credited before this run's cutoff, counting every earlier run's payments.
            assert paid_so_far[item["merchant_id"]] <= credited_before[(i, item["merchant_id"])], (i, item)
    # Every fen credited was paid exactly once, and nothing is left behind.
    credited = defaultdict(int)
    for answer in redeemed:
        credited[answer["merchant_id"]] += answer["subsidy_fen"]
    # The runs really raced the redemptions: more than one of them found money to pay.
    assert sum(1 for run in made if run["items"]) >= 2, [len(run["items"]) for run in made]
    assert dict(paid_so_far) == dict(credited)
    assert sum(credited.values()) == len(plan) * SUBSIDY
    for merchant_id in MERCHANTS:
        assert await sw.balances(merchant_id) == {"merchant": 0, "payout": credited[merchant_id], "settled": 0}
    await assert_verified(service)
