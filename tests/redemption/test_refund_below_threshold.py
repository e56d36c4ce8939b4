"""Issue 14, item 11: a partial refund that takes the kept order below the voucher's minimum spend claws back the
whole subsidy (docs/policies.md, "Refunds"); above the minimum, the proportional share, as before.

The user's case: a ¥160,000 car with ¥10,000 off above ¥150,000; ¥50,000 refunded left a ¥110,000 order that kept
¥6,875 of subsidy (¥3,125 clawed back). Now all ¥10,000 come back to escrow.
"""

from __future__ import annotations

from redemption_world import holder

from voucher_engine.ledger import service as ledger
from voucher_engine.redemption.decide import clawback_for

CAR = """campaign "Car trade-up 2025" issuer 310000
budget ¥1,000,000
voucher fixed ¥10,000 off, spend ¥150,000
quantity 100
valid during 2025
payment {
    merchant.region within 310000
}
"""


def test_the_rule_in_numbers():
    # Kept ¥110,000 < ¥150,000: everything (10,000,00 fen) comes back.
    assert clawback_for(1_000_000, 16_000_000, 0, 0, 5_000_000, minimum_order_fen=15_000_000) == 1_000_000
    # Kept ¥155,000 ≥ ¥150,000: the proportional share, rounded up.
    assert clawback_for(1_000_000, 16_000_000, 0, 0, 500_000, minimum_order_fen=15_000_000) == 31_250
    # A second refund that crosses the minimum takes what the first left.
    assert clawback_for(1_000_000, 16_000_000, 500_000, 31_250, 4_500_000, minimum_order_fen=15_000_000) == 968_750
    # No minimum: proportional, as ever.
    assert clawback_for(1_000_000, 16_000_000, 0, 0, 5_000_000) == 312_500


async def _escrow(world, campaign):
    async with world.service.state.engine.begin() as conn:
        return await ledger.balance(conn, f"escrow:{campaign}")


async def test_a_car_refunded_below_the_threshold_gives_the_whole_subsidy_back(world):
    await world.set_clock("2025-05-01T10:00:00+08:00")
    campaign = await world.launch("", [holder()], source=CAR)
    till = world.tills["xuhui-noodles"]
    paid = (await till.redeem(await world.code(campaign), 16_000_000)).json()
    assert paid["subsidy_fen"] == 1_000_000
    escrow_after_pay = await _escrow(world, campaign)

    # ¥5,000 back: the kept ¥155,000 still meets the threshold, so the proportional share (¥312.50).
    small = await till.refund(paid["id"], 500_000)
    assert small.status_code == 201 and small.json()["subsidy_clawback_fen"] == 31_250
    # ¥45,000 more: the kept ¥110,000 is below ¥150,000, so the rest of the subsidy comes back.
    below = await till.refund(paid["id"], 4_500_000)
    assert below.status_code == 201, below.text
    assert below.json()["subsidy_clawback_fen"] == 968_750
    assert below.json()["redemption"]["subsidy_refunded_fen"] == 1_000_000
    assert below.json()["voucher_restored"] is False  # part of the car is kept: the voucher stays spent
    assert await _escrow(world, campaign) == escrow_after_pay + 1_000_000
    # The rest of the order refunded later moves no more subsidy.
    rest = await till.refund(paid["id"], 11_000_000)
    assert rest.status_code == 201 and rest.json()["subsidy_clawback_fen"] == 0
