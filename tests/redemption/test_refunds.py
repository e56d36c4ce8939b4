"""Refunds: proportional clawback rounded in the fund's favour, restore on a whole refund, and the books."""

from __future__ import annotations

from redemption_world import WALLET, holder

from voucher_engine.ledger import service as ledger
from voucher_engine.redemption.decide import clawback_for


def test_clawback_rounds_in_the_funds_favour_and_sums_to_the_subsidy():
    # ¥20 off ¥120: refunding ¥1 owes 2000 × 100 / 12000 = 16.67 fen → 17 to the fund.
    assert clawback_for(2000, 12000, 0, 0, 100) == 17
    total, refunded, clawed = 0, 0, 0
    for amount in (100, 3333, 1, 8566):  # adds up to the whole order
        part = clawback_for(2000, 12000, refunded, clawed, amount)
        refunded += amount
        clawed += part
        total += part
    assert refunded == 12000 and total == 2000


async def _balances(world, campaign):
    async with world.service.state.engine.begin() as conn:
        return (await ledger.balance(conn, f"escrow:{campaign}"), await ledger.balance(conn, "merchant:xuhui-noodles"))


async def test_partial_then_whole_refund(world):
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder()])
    code = await world.code(campaign)
    till = world.tills["xuhui-noodles"]
    paid = (await till.redeem(code, 12000)).json()
    escrow_after_pay, merchant_after_pay = await _balances(world, campaign)

    # ¥10 back: the kept ¥110 still meets the ¥100 minimum, so the proportional share (2000 × 1000 / 12000 → 167).
    partial = await till.refund(paid["id"], 1000)
    assert partial.status_code == 201
    assert partial.json()["subsidy_clawback_fen"] == 167 and partial.json()["voucher_restored"] is False
    assert partial.json()["redemption"]["status"] == "partially_refunded"
    assert (await world.vouchers(WALLET, campaign))[0]["status"] == "redeemed"
    assert await _balances(world, campaign) == (escrow_after_pay + 167, merchant_after_pay - 167)

    rest = await till.refund(paid["id"], 11000)
    assert rest.json()["subsidy_clawback_fen"] == 1833 and rest.json()["voucher_restored"] is True
    assert rest.json()["redemption"]["status"] == "refunded"
    assert (await world.vouchers(WALLET, campaign))[0]["status"] == "issued"
    assert await _balances(world, campaign) == (escrow_after_pay + 2000, merchant_after_pay - 2000)
    again = await till.redeem(code, 12000)
    assert again.status_code == 201  # usable again


async def test_whole_refund_after_the_window_expires_the_voucher(world):
    await world.set_clock("2025-01-31T20:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder()])
    code = await world.code(campaign)
    till = world.tills["xuhui-noodles"]
    paid = (await till.redeem(code, 12000)).json()
    await world.set_clock("2025-02-03T10:00:00+08:00")
    refund = await till.refund(paid["id"], 12000)
    assert refund.status_code == 201 and refund.json()["voucher_restored"] is False
    assert refund.json()["voucher_status"] == "expired"


async def test_refund_after_close_goes_back_to_the_funders(world):
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder()])
    code = await world.code(campaign)
    till = world.tills["xuhui-noodles"]
    paid = (await till.redeem(code, 12000)).json()
    await world.set_clock("2025-02-05T10:00:00+08:00")
    gov = world.service.auth(world.gov["310000"])
    assert (await world.service.client.post(f"/v1/campaigns/{campaign}/close", headers=gov)).status_code == 200
    refund = await till.refund(paid["id"], 12000)
    assert refund.status_code == 201, refund.text
    escrow, merchant = await _balances(world, campaign)
    assert escrow == 0 and merchant == 0
    async with world.service.state.engine.begin() as conn:
        fiscal = await ledger.balance(conn, "fiscal:iss_310000")
    assert fiscal == 0  # every fen funded came back: 10,000,000 yuan out, all of it returned


async def test_a_retried_refund_answers_the_first_answer_and_moves_nothing_more(world):
    # The lean path answers a new refund from what it wrote and a retry from the stored rows: the till must get the
    # same document both times, and the books must move once.
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder()])
    till = world.tills["xuhui-noodles"]
    paid = (await till.redeem(await world.code(campaign), 12000)).json()
    first = await till.refund(paid["id"], 1000, refund_id="till7-r1", reason="one bowl back")
    assert first.status_code == 201, first.text
    balances = await _balances(world, campaign)
    again = await till.refund(paid["id"], 1000, refund_id="till7-r1", reason="one bowl back")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await _balances(world, campaign) == balances
    other = await till.refund(paid["id"], 2000, refund_id="till7-r1", reason="one bowl back")
    assert other.status_code == 409 and other.json()["code"] == "IDEMPOTENCY_CONFLICT"
